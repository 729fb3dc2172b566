//! Static API keys, stored only as SHA-256 hashes.
//!
//! A fast hash is enough here, and a slow one (bcrypt, argon2) would only
//! cost CPU on every request: slow hashes protect low-entropy *passwords*
//! against guessing once the hash leaks. These keys are 256 random bits
//! ([`generate`]); no amount of guessing recovers one from its SHA-256.
//! Presented keys are hashed once and compared with every configured hash in
//! constant time, without stopping at a match, so timing tells nothing about
//! which key, or how much of one, was right.

use std::sync::Arc;

use aws_lc_rs::{constant_time, digest};
use base64::Engine;
use mcp_guard_layers::identity::{AuthMethod, Principal};

/// What a generated key starts with, so a leaked one is recognisable (and
/// so a config holding one where a hash belongs is caught).
pub const KEY_PREFIX: &str = "mcpg_";
const HASH_PREFIX: &str = "sha256:";

/// The configured keys. `PartialEq` compares configurations (reload), never
/// a presented key: that is [`ApiKeys::verify`]'s constant-time job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApiKeys {
    keys: Vec<([u8; 32], Principal)>,
}

impl ApiKeys {
    /// Adds a key by its `sha256:<hex>` hash.
    pub fn add(&mut self, hash: &str, name: &str, scopes: Vec<String>) -> Result<(), String> {
        let digest = parse_hash(hash)?;
        let principal = Principal { subject: name.into(), scopes: Arc::from(scopes), method: AuthMethod::ApiKey };
        self.keys.push((digest, principal));
        Ok(())
    }

    /// True when no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The principal whose key this is.
    pub fn verify(&self, presented: &str) -> Option<Principal> {
        let hashed = digest::digest(&digest::SHA256, presented.as_bytes());
        let mut found = None;
        for (stored, principal) in &self.keys {
            // Every entry is compared; the result is only kept.
            if constant_time::verify_slices_are_equal(hashed.as_ref(), stored).is_ok() {
                found = Some(principal);
            }
        }
        found.cloned()
    }
}

/// `sha256:<64 hex>` → bytes, with a plain message for the mistakes people make.
pub fn parse_hash(text: &str) -> Result<[u8; 32], String> {
    if text.starts_with(KEY_PREFIX) {
        return Err("holds a plaintext API key where its hash belongs: run `mcp-guard hash-key` and store the `sha256:` value it prints".into());
    }
    let hex = text
        .strip_prefix(HASH_PREFIX)
        .ok_or_else(|| "must be `sha256:` followed by 64 hex digits (see `mcp-guard hash-key`)".to_owned())?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("must be `sha256:` followed by 64 hex digits (see `mcp-guard hash-key`)".into());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The `sha256:<hex>` line to put in the config for `key`.
pub fn hash(key: &str) -> String {
    let digest = digest::digest(&digest::SHA256, key.as_bytes());
    let mut out = String::from(HASH_PREFIX);
    for b in digest.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A new key: 256 bits from the system CSPRNG, base64url, with the prefix.
pub fn generate() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "the system random number generator failed".to_owned())?;
    Ok(format!("{KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_hash() {
        let key = generate().expect("rng");
        assert!(key.starts_with(KEY_PREFIX) && key.len() == KEY_PREFIX.len() + 43);
        assert_ne!(key, generate().expect("rng"));
        let mut keys = ApiKeys::default();
        keys.add(&hash(&key), "ci", vec!["mcp:tools".into()]).expect("valid hash");
        keys.add(&hash("other"), "other", vec![]).expect("valid hash");
        let who = keys.verify(&key).expect("known key");
        assert_eq!((&*who.subject, who.method), ("ci", AuthMethod::ApiKey));
        assert_eq!(&*who.scopes, ["mcp:tools".to_owned()]);
        assert!(keys.verify("mcpg_wrong").is_none());
        assert!(keys.verify("").is_none());
    }

    #[test]
    fn plaintext_and_malformed_hashes_are_refused() {
        let key = generate().expect("rng");
        assert!(parse_hash(&key).expect_err("plaintext").contains("plaintext"));
        for bad in ["", "sha256:", "sha256:xyz", "md5:00", &format!("sha256:{}", "0".repeat(63))] {
            assert!(parse_hash(bad).is_err(), "{bad}");
        }
        assert_eq!(hash("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
