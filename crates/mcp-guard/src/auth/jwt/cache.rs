//! Tokens already verified, remembered briefly.
//!
//! A client sends the same access token with every request, and checking
//! its signature is most of what authentication costs (ES256 ≈ 35 µs, about
//! a quarter of the gateway's CPU under load). So a verified token is kept
//! for at most [`TTL`], and never past its own `exp`: within that time the
//! same token is accepted without a signature check.
//!
//! An entry also records the generation of the key set that verified it: once
//! a new JWKS is fetched (which may have withdrawn the key), the token is
//! verified again. Tokens are keyed by their SHA-256, so no bearer token is
//! kept in memory; the table is bounded.

use std::{collections::HashMap, sync::Mutex};

use aws_lc_rs::digest;

use super::VerifiedToken;

/// Longest a verified token is accepted without a new signature check.
pub(crate) const TTL: u64 = 60;
/// Most tokens remembered; past it expired entries go, then everything.
const MAX_ENTRIES: usize = 10_000;

/// The cache, shared by clones of one verifier.
#[derive(Debug, Default)]
pub(crate) struct VerifiedCache {
    /// Token, the key-set generation that verified it, and until when it holds.
    entries: Mutex<HashMap<[u8; 32], (VerifiedToken, u64, u64)>>,
}

/// The key a token is remembered under.
pub(crate) fn key(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

impl VerifiedCache {
    /// The token verified under `key`, if still remembered at `now`.
    pub(crate) fn get(&self, key: &[u8; 32], generation: u64, now: u64) -> Option<VerifiedToken> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).filter(|(_, g, until)| *g == generation && now < *until).map(|(token, _, _)| token.clone())
    }

    /// Remembers `token`, verified at `now`, until `now + TTL` or its `exp`.
    pub(crate) fn insert(&self, key: [u8; 32], token: &VerifiedToken, generation: u64, now: u64) {
        let until = now.saturating_add(TTL).min(token.expires_at);
        if until <= now {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, _, until)| *until > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (token.clone(), generation, until));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_at: u64) -> VerifiedToken {
        VerifiedToken { subject: "alice".into(), scopes: vec![], client_id: None, expires_at }
    }

    #[test]
    fn remembered_for_the_ttl_and_never_past_exp() {
        let cache = VerifiedCache::default();
        let k = key("a.b.c");
        cache.insert(k, &token(10_000), 7, 1_000);
        assert_eq!(cache.get(&k, 7, 1_000).map(|t| t.subject), Some("alice".into()));
        assert!(cache.get(&k, 7, 1_000 + TTL - 1).is_some());
        assert!(cache.get(&k, 8, 1_000).is_none(), "verified again under a new key set");
        assert!(cache.get(&k, 7, 1_000 + TTL).is_none(), "verified again after the TTL");
        cache.insert(k, &token(1_010), 7, 1_000);
        assert!(cache.get(&k, 7, 1_009).is_some());
        assert!(cache.get(&k, 7, 1_010).is_none(), "never past exp");
        assert!(cache.get(&key("a.b.d"), 7, 1_000).is_none(), "another token is another key");
        cache.insert(key("x"), &token(5), 7, 10);
        assert!(cache.get(&key("x"), 7, 10).is_none(), "an expired token is not remembered");
    }

    #[test]
    fn the_table_is_bounded() {
        let cache = VerifiedCache::default();
        for i in 0..(MAX_ENTRIES + 10) {
            cache.insert(key(&i.to_string()), &token(10_000), 0, 1_000);
        }
        assert!(cache.len() <= MAX_ENTRIES);
    }
}
