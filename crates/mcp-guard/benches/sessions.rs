//! The cost of sealed session tokens, per request: `cargo bench -p mcp-guard --bench sessions`.
//!
//! `open` runs on every request that names a session (base64 decode, one
//! AES-256-GCM open, decoding the claims); `seal` once per new session;
//! `ended_id` is the SHA-256 that keys the ended-session check.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use divan::{Bencher, black_box};
use mcp_guard::{
    config::{SealingKey, SessionSealing},
    session_seal::{EndedId, Owner, Sealer},
};
use mcp_guard_layers::identity::AuthMethod;

fn main() {
    divan::main();
}

/// Sealers with one key, and with the sealing key behind two older ones
/// (opening still costs one AEAD operation: the key id picks the key).
fn sealer(keys: usize) -> Sealer {
    let sealing = SessionSealing {
        keys: (0..keys).map(|i| SealingKey([i as u8 + 1; 32])).collect(),
        ttl: Duration::from_secs(24 * 3600),
        replica_id: None,
    };
    Sealer::new(&sealing, "http://127.0.0.1:9000/mcp").unwrap()
}

fn owner() -> Owner {
    Owner::principal(AuthMethod::Bearer, &"user-7f3c9a12-4b8e-4d21-9e0a-5c6d7e8f9a0b".into())
}

/// rmcp's session ids are UUIDs; stdio's are 64 hex digits.
const SESSION: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

#[divan::bench(args = [1, 3])]
fn seal(bencher: Bencher, keys: usize) {
    let sealer = sealer(keys);
    let claims = sealer.claims(SESSION, owner());
    bencher.bench_local(|| sealer.seal(black_box(&claims)).unwrap());
}

#[divan::bench(args = [1, 3])]
fn open(bencher: Bencher, keys: usize) {
    let sealer = sealer(keys);
    let token = sealer.seal(&sealer.claims(SESSION, owner())).unwrap();
    let owner = owner();
    bencher.bench_local(|| sealer.open_for(black_box(token.as_bytes()), &owner).unwrap());
}

#[divan::bench]
fn open_forged(bencher: Bencher) {
    let sealer = sealer(1);
    let mut token = sealer.seal(&sealer.claims(SESSION, owner())).unwrap().into_bytes();
    let last = token.len() - 2;
    token[last] = if token[last] == b'A' { b'B' } else { b'A' };
    bencher.bench_local(|| sealer.open(black_box(&token)).unwrap_err());
}

#[divan::bench]
fn ended_id(bencher: Bencher) {
    let sealer = sealer(1);
    let claims = sealer.claims(SESSION, owner());
    bencher.bench_local(|| EndedId::of(black_box(&claims)));
}
