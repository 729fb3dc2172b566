//! Who sent a request, as request extensions that later layers read.
//!
//! - [`PeerAddr`]: the TCP peer, set by the server at accept time.
//! - [`ClientIp`]: the client's address after trusted proxies are peeled
//!   off (see [`crate::client_ip`]).
//! - [`Principal`]: the authenticated identity, set by authentication.
//!
//! Rate limits, policy and logs key on the most specific one present:
//! the principal, else the client IP.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

/// The TCP peer of the connection a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The client's IP address: the peer's, or the one a trusted proxy reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

/// How a principal proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A static API key.
    ApiKey,
    /// An OAuth 2.1 bearer token (JWT).
    Bearer,
}

/// An authenticated identity: a stable subject name, its scopes, and how it
/// authenticated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal {
    /// Stable subject name (API key name, or the token's `sub`).
    pub subject: Arc<str>,
    /// Granted scopes.
    pub scopes: Arc<[String]>,
    /// How it authenticated.
    pub method: AuthMethod,
}

/// The key a per-caller limit or record is kept under.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CallerKey {
    /// An authenticated subject.
    Principal(Arc<str>),
    /// An unauthenticated client, by address.
    Ip(IpAddr),
    /// Neither is known (a layer used without the server inserting
    /// `PeerAddr`): all such callers share one key.
    Unknown,
}

impl CallerKey {
    /// The key for a request: its principal, else its client IP, else its peer.
    pub fn of(extensions: &http::Extensions) -> CallerKey {
        if let Some(p) = extensions.get::<Principal>() {
            return CallerKey::Principal(Arc::clone(&p.subject));
        }
        if let Some(ClientIp(ip)) = extensions.get::<ClientIp>() {
            return CallerKey::Ip(*ip);
        }
        match extensions.get::<PeerAddr>() {
            Some(PeerAddr(addr)) => CallerKey::Ip(addr.ip()),
            None => CallerKey::Unknown,
        }
    }
}

impl std::fmt::Display for CallerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallerKey::Principal(s) => write!(f, "principal:{s}"),
            CallerKey::Ip(ip) => write!(f, "ip:{ip}"),
            CallerKey::Unknown => f.write_str("unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_key_prefers_principal_then_client_ip_then_peer() {
        let mut ext = http::Extensions::new();
        assert_eq!(CallerKey::of(&ext), CallerKey::Unknown);
        ext.insert(PeerAddr("10.0.0.1:5000".parse().expect("addr")));
        assert_eq!(CallerKey::of(&ext).to_string(), "ip:10.0.0.1");
        ext.insert(ClientIp("203.0.113.9".parse().expect("ip")));
        assert_eq!(CallerKey::of(&ext).to_string(), "ip:203.0.113.9");
        ext.insert(Principal { subject: "alice".into(), scopes: Arc::new([]), method: AuthMethod::ApiKey });
        assert_eq!(CallerKey::of(&ext).to_string(), "principal:alice");
    }
}
