//! Sealing and opening session tokens with AES-256-GCM (aws-lc-rs).
//!
//! ```text
//! token = base64url-no-pad( version ‖ key id ‖ nonce ‖ ciphertext ‖ tag )
//!                           1 byte    4 bytes  12 bytes  claims     16 bytes
//! associated data = version ‖ key id
//! ```
//!
//! The key id is the first 4 bytes of SHA-256 over a label and the key: it
//! tells which of the configured keys sealed a token, so opening costs one
//! AEAD operation even with several keys (rotation), and it reveals nothing
//! about the key. Authenticating it as associated data means a token cannot
//! be moved to another key slot or format version. Tag comparison is
//! constant-time inside aws-lc; everything compared after it (owner, target,
//! expiry) comes from authenticated plaintext, so its timing reveals nothing
//! an attacker could not read from their own token anyway.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    digest,
    rand::{SecureRandom, SystemRandom},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use super::claims::{EncodeError, Owner, SessionClaims, bounded_target};
use crate::config::SessionSealing;

/// Format version: the first byte of every token.
const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const HEADER_LEN: usize = 1 + KEY_ID_LEN;
const TAG_LEN: usize = 16;
/// Longest token opened, in characters: checked before decoding anything,
/// so a hostile header costs nothing. Headers of this size are still well
/// within what proxies pass.
pub const MAX_TOKEN_LEN: usize = 1024;
/// The decoded size of the longest token.
const MAX_RAW: usize = MAX_TOKEN_LEN / 4 * 3;
/// Room left for the claims in the longest token.
const MAX_PLAINTEXT: usize = MAX_RAW - HEADER_LEN - NONCE_LEN - TAG_LEN;

/// Seals and opens session tokens for one upstream target. Cheap to share
/// behind an `Arc`; `Debug` shows key ids, never keys.
pub struct Sealer {
    /// The first seals; all open.
    keys: Box<[Key]>,
    target: Arc<str>,
    ttl: Duration,
    rng: SystemRandom,
}

struct Key {
    id: [u8; KEY_ID_LEN],
    aead: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.keys.iter().map(|k| k.id.iter().map(|b| format!("{b:02x}")).collect()).collect();
        f.debug_struct("Sealer").field("key_ids", &ids).field("target", &self.target).field("ttl", &self.ttl).finish()
    }
}

/// Why a token could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// No key is configured.
    #[error("no session sealing key")]
    NoKeys,
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
    /// The AEAD refused the key or the input.
    #[error("AEAD failure")]
    Aead,
    /// The claims do not fit a token.
    #[error(transparent)]
    Claims(#[from] EncodeError),
}

/// Why a token was refused. Every case is answered alike (`404`); the
/// distinction is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Too long, not base64url, too short, or an unknown format version.
    #[error("malformed")]
    Malformed,
    /// Sealed with a key not (or no longer) configured.
    #[error("unknown_key")]
    UnknownKey,
    /// The authentication tag does not match: forged or altered.
    #[error("forged")]
    Forged,
    /// Past its expiry.
    #[error("expired")]
    Expired,
    /// Sealed for another upstream or replica.
    #[error("other_target")]
    OtherTarget,
    /// Sealed for another caller.
    #[error("other_owner")]
    OtherOwner,
}

impl OpenError {
    /// A stable label for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            OpenError::Malformed => "malformed",
            OpenError::UnknownKey => "unknown_key",
            OpenError::Forged => "forged",
            OpenError::Expired => "expired",
            OpenError::OtherTarget => "other_target",
            OpenError::OtherOwner => "other_owner",
        }
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    // A clock before 1970 is a broken host: every token then looks fresh to
    // it, but it also seals with expiries in 1970, which other replicas refuse.
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn key_id(key: &[u8; 32]) -> [u8; KEY_ID_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"mcp-guard session key id\0");
    ctx.update(key);
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&ctx.finish().as_ref()[..KEY_ID_LEN]);
    id
}

impl Sealer {
    /// A sealer for sessions of `target` (see [`super::target`]); names
    /// longer than 255 bytes are replaced by their digest.
    pub fn new(sealing: &SessionSealing, target: impl Into<String>) -> Result<Sealer, SealError> {
        if sealing.keys.is_empty() {
            return Err(SealError::NoKeys);
        }
        let keys = sealing
            .keys
            .iter()
            .map(|k| {
                let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k.0).map_err(|_| SealError::Aead)?);
                Ok(Key { id: key_id(&k.0), aead })
            })
            .collect::<Result<_, SealError>>()?;
        let target = bounded_target(target.into()).into();
        Ok(Sealer { keys, target, ttl: sealing.ttl, rng: SystemRandom::new() })
    }

    /// The target this sealer issues and accepts tokens for.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// How long a new token is valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Claims for a new session of this target: `upstream_session`, owned
    /// by `owner`, expiring one TTL from now.
    pub fn claims(&self, upstream_session: &str, owner: Owner) -> SessionClaims {
        SessionClaims {
            upstream_session: upstream_session.into(),
            owner,
            target: Arc::clone(&self.target),
            expires: unix_now().saturating_add(self.ttl.as_secs()),
        }
    }

    /// Seals `claims` with the first key and a fresh random nonce.
    ///
    /// Random 96-bit nonces keep the chance of a repeat under 2^-32 for up
    /// to 2^32 tokens per key (NIST SP 800-38D §8.3): at 100 new sessions a
    /// second, over a year. Rotate keys well before that.
    pub fn seal(&self, claims: &SessionClaims) -> Result<String, SealError> {
        let key = self.keys.first().ok_or(SealError::NoKeys)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut raw = Vec::with_capacity(HEADER_LEN + NONCE_LEN + 128 + TAG_LEN);
        raw.push(VERSION);
        raw.extend_from_slice(&key.id);
        raw.extend_from_slice(&nonce);
        claims.encode(&mut raw, MAX_PLAINTEXT)?;
        let (header, body) = raw.split_at_mut(HEADER_LEN + NONCE_LEN);
        let tag = key
            .aead
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&header[..HEADER_LEN]), body)
            .map_err(|_| SealError::Aead)?;
        raw.extend_from_slice(tag.as_ref());
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// Opens `token`: authentic, unexpired, and for this target.
    pub fn open(&self, token: &[u8]) -> Result<SessionClaims, OpenError> {
        self.open_at(token, unix_now())
    }

    /// As [`open`](Self::open), and sealed for `owner`.
    pub fn open_for(&self, token: &[u8], owner: &Owner) -> Result<SessionClaims, OpenError> {
        let claims = self.open(token)?;
        if claims.owner == *owner { Ok(claims) } else { Err(OpenError::OtherOwner) }
    }

    /// As [`open`](Self::open), at `now` (Unix seconds).
    pub fn open_at(&self, token: &[u8], now: u64) -> Result<SessionClaims, OpenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(OpenError::Malformed);
        }
        let mut buf = [0u8; MAX_RAW];
        let len = URL_SAFE_NO_PAD.decode_slice(token, &mut buf).map_err(|_| OpenError::Malformed)?;
        let raw = &mut buf[..len];
        if raw.len() <= HEADER_LEN + NONCE_LEN + TAG_LEN || raw[0] != VERSION {
            return Err(OpenError::Malformed);
        }
        let (header, rest) = raw.split_at_mut(HEADER_LEN);
        let (nonce, sealed) = rest.split_at_mut(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = (&*nonce).try_into().map_err(|_| OpenError::Malformed)?;
        let mut result = Err(OpenError::UnknownKey);
        // Key ids could collide (2^-32 per pair): try every key with this id.
        for key in self.keys.iter().filter(|k| k.id == header[1..]) {
            // A failed open leaves `sealed` unspecified: work on a copy so the next key sees the original.
            let mut attempt = [0u8; MAX_RAW];
            let attempt = &mut attempt[..sealed.len()];
            attempt.copy_from_slice(sealed);
            let opened = key.aead.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&header[..]), attempt);
            match opened {
                Ok(plaintext) => {
                    result = SessionClaims::decode(plaintext).ok_or(OpenError::Malformed);
                    break;
                }
                Err(_) => result = Err(OpenError::Forged),
            }
        }
        let claims = result?;
        if claims.expires <= now {
            return Err(OpenError::Expired);
        }
        if claims.target != self.target {
            return Err(OpenError::OtherTarget);
        }
        Ok(claims)
    }
}

#[cfg(test)]
#[path = "seal_tests.rs"]
mod tests;
