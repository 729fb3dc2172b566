//! What a sealed token holds, and its compact binary plaintext.
//!
//! ```text
//! expires   u64, big-endian unix seconds
//! owner     tag u8, then: nothing (unknown) | 4 or 16 address bytes |
//!           u8 length + subject bytes | 32-byte SHA-256 of a long subject
//! target    u8 length + bytes
//! session   the rest: the upstream's session id, visible ASCII
//! ```
//!
//! Binary rather than JSON: half the size (the token is sent on every
//! request) and no parser on the path that handles attacker-supplied bytes,
//! although only bytes that passed the AEAD check ever get here.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use aws_lc_rs::digest;
use mcp_guard_layers::identity::{AuthMethod, ClientIp, PeerAddr, Principal};

/// Longest subject or target kept as is; longer ones are kept as digests
/// so every field fits a one-byte length.
const MAX_FIELD: usize = 255;

/// The contents of a sealed session token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionClaims {
    /// The upstream's `Mcp-Session-Id` (or, for stdio and demo upstreams, the gateway's own).
    pub upstream_session: Arc<str>,
    /// Who created the session; only they may use it.
    pub owner: Owner,
    /// Which upstream the session lives in ([`super::target`]).
    pub target: Arc<str>,
    /// Unix seconds after which the token is refused.
    pub expires: u64,
}

/// Who a session belongs to: the same caller the in-memory binding uses
/// (the principal, else the client address), with the way the principal
/// authenticated, so an API key named `alice` and a token whose `sub` is
/// `alice` are different owners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// No principal and no address known (a layer used outside the server).
    Unknown,
    /// An unauthenticated client, by address.
    Ip(IpAddr),
    /// An authenticated subject of up to 255 bytes.
    Principal {
        /// How it authenticated.
        method: AuthMethod,
        /// Its subject.
        subject: Arc<str>,
    },
    /// An authenticated subject longer than 255 bytes, by its SHA-256.
    LongPrincipal {
        /// How it authenticated.
        method: AuthMethod,
        /// SHA-256 of the subject.
        digest: [u8; 32],
    },
}

impl Owner {
    /// The owner a request would have: its principal, else its client IP, else its peer.
    pub fn of(extensions: &http::Extensions) -> Owner {
        if let Some(p) = extensions.get::<Principal>() {
            return Owner::principal(p.method, &p.subject);
        }
        if let Some(ClientIp(ip)) = extensions.get::<ClientIp>() {
            return Owner::Ip(*ip);
        }
        match extensions.get::<PeerAddr>() {
            Some(PeerAddr(addr)) => Owner::Ip(addr.ip()),
            None => Owner::Unknown,
        }
    }

    /// An authenticated owner.
    pub fn principal(method: AuthMethod, subject: &Arc<str>) -> Owner {
        if subject.len() <= MAX_FIELD {
            Owner::Principal { method, subject: Arc::clone(subject) }
        } else {
            Owner::LongPrincipal { method, digest: sha256(subject.as_bytes()) }
        }
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

/// A target name that fits the token: as is up to 255 bytes, else its digest.
pub(crate) fn bounded_target(name: String) -> String {
    if name.len() <= MAX_FIELD {
        return name;
    }
    let mut out = String::from("sha256:");
    for b in sha256(name.as_bytes()) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Why claims cannot be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The upstream session id is empty, too long, or not visible ASCII.
    #[error("the upstream session id is empty, too long or not visible ASCII")]
    SessionId,
    /// The target is longer than 255 bytes.
    #[error("the target name is longer than 255 bytes")]
    Target,
    /// A [`Owner::Principal`] subject is longer than 255 bytes (use [`Owner::principal`]).
    #[error("the subject is longer than 255 bytes")]
    Subject,
}

const UNKNOWN: u8 = 0;
const IPV4: u8 = 1;
const IPV6: u8 = 2;
const API_KEY: u8 = 3;
const BEARER: u8 = 4;
const API_KEY_DIGEST: u8 = 5;
const BEARER_DIGEST: u8 = 6;

/// Visible ASCII, as the transport requires of session ids (0x21–0x7E).
pub(crate) fn visible_ascii(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|b| (0x21..=0x7e).contains(b))
}

impl SessionClaims {
    /// Appends the plaintext to `out`, which may grow by at most `room`
    /// bytes; on error `out` is left as it was.
    pub(crate) fn encode(&self, out: &mut Vec<u8>, room: usize) -> Result<(), EncodeError> {
        let start = out.len();
        let result = self
            .encode_unchecked(out)
            .and_then(|()| if out.len() - start > room { Err(EncodeError::SessionId) } else { Ok(()) });
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn encode_unchecked(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&self.expires.to_be_bytes());
        match &self.owner {
            Owner::Unknown => out.push(UNKNOWN),
            Owner::Ip(IpAddr::V4(ip)) => {
                out.push(IPV4);
                out.extend_from_slice(&ip.octets());
            }
            Owner::Ip(IpAddr::V6(ip)) => {
                out.push(IPV6);
                out.extend_from_slice(&ip.octets());
            }
            Owner::Principal { method, subject } => {
                out.push(if *method == AuthMethod::ApiKey { API_KEY } else { BEARER });
                push_field(out, subject.as_bytes()).ok_or(EncodeError::Subject)?;
            }
            Owner::LongPrincipal { method, digest } => {
                out.push(if *method == AuthMethod::ApiKey { API_KEY_DIGEST } else { BEARER_DIGEST });
                out.extend_from_slice(digest);
            }
        }
        push_field(out, self.target.as_bytes()).ok_or(EncodeError::Target)?;
        let session = self.upstream_session.as_bytes();
        if !visible_ascii(session) {
            return Err(EncodeError::SessionId);
        }
        out.extend_from_slice(session);
        Ok(())
    }

    /// Reads a plaintext; `None` when it is not one `encode` wrote.
    pub(crate) fn decode(mut bytes: &[u8]) -> Option<SessionClaims> {
        let expires = u64::from_be_bytes(take(&mut bytes, 8)?.try_into().ok()?);
        let owner = match take(&mut bytes, 1)?[0] {
            UNKNOWN => Owner::Unknown,
            IPV4 => Owner::Ip(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(take(&mut bytes, 4)?).ok()?))),
            IPV6 => Owner::Ip(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(take(&mut bytes, 16)?).ok()?))),
            tag @ (API_KEY | BEARER) => {
                Owner::Principal { method: method(tag == API_KEY), subject: field(&mut bytes)? }
            }
            tag @ (API_KEY_DIGEST | BEARER_DIGEST) => Owner::LongPrincipal {
                method: method(tag == API_KEY_DIGEST),
                digest: take(&mut bytes, 32)?.try_into().ok()?,
            },
            _ => return None,
        };
        let target = field(&mut bytes)?;
        if !visible_ascii(bytes) {
            return None;
        }
        let upstream_session = Arc::from(std::str::from_utf8(bytes).ok()?);
        Some(SessionClaims { upstream_session, owner, target, expires })
    }
}

fn method(api_key: bool) -> AuthMethod {
    if api_key { AuthMethod::ApiKey } else { AuthMethod::Bearer }
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) -> Option<()> {
    out.push(u8::try_from(field.len()).ok()?);
    out.extend_from_slice(field);
    Some(())
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Some(head)
}

fn field(bytes: &mut &[u8]) -> Option<Arc<str>> {
    let len = usize::from(take(bytes, 1)?[0]);
    std::str::from_utf8(take(bytes, len)?).ok().map(Arc::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(owner: Owner) -> SessionClaims {
        SessionClaims { upstream_session: "up-1".into(), owner, target: "http://u/mcp".into(), expires: 42 }
    }

    #[test]
    fn every_owner_round_trips() {
        let long: Arc<str> = "x".repeat(300).into();
        for owner in [
            Owner::Unknown,
            Owner::Ip("10.1.2.3".parse().unwrap()),
            Owner::Ip("2001:db8::1".parse().unwrap()),
            Owner::principal(AuthMethod::ApiKey, &"alice".into()),
            Owner::principal(AuthMethod::Bearer, &"alice".into()),
            Owner::principal(AuthMethod::Bearer, &long),
        ] {
            let mut out = Vec::new();
            claims(owner.clone()).encode(&mut out, 1000).unwrap();
            assert_eq!(SessionClaims::decode(&out), Some(claims(owner)));
        }
        assert!(matches!(Owner::principal(AuthMethod::ApiKey, &long), Owner::LongPrincipal { .. }));
        assert_ne!(
            Owner::principal(AuthMethod::ApiKey, &"a".into()),
            Owner::principal(AuthMethod::Bearer, &"a".into())
        );
    }

    #[test]
    fn bad_claims_are_not_encoded_and_bad_bytes_not_decoded() {
        let mut out = Vec::new();
        let mut c = claims(Owner::Unknown);
        c.upstream_session = "has space".into();
        assert_eq!(c.encode(&mut out, 1000), Err(EncodeError::SessionId));
        c.upstream_session = "".into();
        assert_eq!(c.encode(&mut out, 1000), Err(EncodeError::SessionId));
        c.upstream_session = "x".repeat(100).into();
        assert_eq!(c.encode(&mut out, 50), Err(EncodeError::SessionId));
        assert!(out.is_empty());
        c.target = "t".repeat(256).into();
        assert_eq!(c.encode(&mut out, 1000), Err(EncodeError::Target));
        assert_eq!(bounded_target("t".repeat(256)).len(), 7 + 64);
        assert_eq!(bounded_target("stdio:ab".into()), "stdio:ab");
        for bytes in [&b""[..], &[0; 8], &[0, 0, 0, 0, 0, 0, 0, 0, 9], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 200, b'a']] {
            assert_eq!(SessionClaims::decode(bytes), None, "{bytes:?}");
        }
    }
}
