//! The cost of verifying one access token on a warm key cache, in process:
//! `cargo bench -p mcp-guard --bench jwt`.
//!
//! Each algorithm is measured through `verify_uncached` (the signature check
//! every new token pays), and `cached` is the same token again through
//! `verify`, as a client sending it on every request pays.
//!
//! Keys are static; a warm JWKS cache takes the same path plus an `Arc`
//! clone of the key set. So the figures are: splitting and decoding the
//! token, reading its header, the signature check, and reading and checking
//! the claims. On a warm cache `verify` never waits, so its future is polled
//! once with a no-op waker instead of through a runtime. Test-only keys from
//! `tests/fixtures/jwt/`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
};

use divan::Bencher;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, encode, jwk::Jwk};
use mcp_guard::auth::jwt::{HmacSecret, JwtSettings, JwtVerifier, KeySource, VerifiedToken};

const ISSUER: &str = "https://as.example.com";
const AUDIENCE: &str = "https://mcp.example.com/mcp";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn main() {
    divan::main();
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A verifier that trusts one key, and a valid token signed with it.
fn setup(alg: Algorithm) -> (JwtVerifier, String) {
    let (private, public) = match alg {
        Algorithm::RS256 => ("rsa_private.pem", "rsa_public.pem"),
        Algorithm::ES256 => ("ec_private.pem", "ec_public.pem"),
        Algorithm::EdDSA => ("ed25519_private.pem", "ed25519_public.pem"),
        _ => ("", ""),
    };
    let (signing, keys, secret) = match alg {
        Algorithm::HS256 => (EncodingKey::from_secret(SECRET), vec![], Some(HmacSecret::new(SECRET))),
        _ => {
            let (private, public) = (fixture(private), fixture(public));
            let (signing, verifying) = match alg {
                Algorithm::RS256 => {
                    (EncodingKey::from_rsa_pem(private.as_bytes()), DecodingKey::from_rsa_pem(public.as_bytes()))
                }
                Algorithm::ES256 => {
                    (EncodingKey::from_ec_pem(private.as_bytes()), DecodingKey::from_ec_pem(public.as_bytes()))
                }
                _ => (EncodingKey::from_ed_pem(private.as_bytes()), DecodingKey::from_ed_pem(public.as_bytes())),
            };
            let mut jwk = Jwk::from_decoding_key(&verifying.unwrap(), None).unwrap();
            jwk.common.key_id = Some("k1".to_owned());
            (signing.unwrap(), vec![jwk], None)
        }
    };
    let mut settings = JwtSettings::new(ISSUER, vec![AUDIENCE.to_owned()], KeySource::Static(keys));
    if let Some(secret) = secret {
        settings.algorithms = vec![Algorithm::HS256];
        settings.hmac_secret = Some(secret);
    }
    let verifier = JwtVerifier::new(settings).unwrap();

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1234567890", "client_id": "mcp-client-abc",
        "exp": now + 3600, "iat": now, "nbf": now, "jti": "5f1c9a7e-4a1b-4a53-9d1e-0f2c1b7d9e31",
        "scope": "tools:read tools:call resources:read",
    });
    let mut header = Header::new(alg);
    header.kid = Some("k1".to_owned());
    header.typ = Some("at+jwt".to_owned());
    let token = encode(&header, &claims, &signing).unwrap();
    (verifier, token)
}

fn verify_now(verifier: &JwtVerifier, token: &str) -> VerifiedToken {
    match pin!(verifier.verify_uncached(token)).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result.unwrap(),
        Poll::Pending => panic!("verification on a warm cache never waits"),
    }
}

fn run(bencher: Bencher, alg: Algorithm) {
    let (verifier, token) = setup(alg);
    verify_now(&verifier, &token);
    bencher.bench_local(|| verify_now(&verifier, divan::black_box(&token)));
}

#[divan::bench]
fn rs256(bencher: Bencher) {
    run(bencher, Algorithm::RS256);
}

#[divan::bench]
fn es256(bencher: Bencher) {
    run(bencher, Algorithm::ES256);
}

#[divan::bench]
fn eddsa(bencher: Bencher) {
    run(bencher, Algorithm::EdDSA);
}

#[divan::bench]
fn hs256(bencher: Bencher) {
    run(bencher, Algorithm::HS256);
}

/// An ES256 token verified a moment ago, sent again: the cache answers.
#[divan::bench]
fn cached(bencher: Bencher) {
    let (verifier, token) = setup(Algorithm::ES256);
    let poll = |t: &str| match pin!(verifier.verify(t)).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result.unwrap(),
        Poll::Pending => panic!("a cached token never waits"),
    };
    poll(&token);
    bencher.bench_local(|| poll(divan::black_box(&token)));
}

/// A static API key among ten configured ones: one SHA-256 and ten
/// constant-time comparisons, whichever key matches.
#[divan::bench]
fn api_key(bencher: Bencher) {
    use mcp_guard::auth::api_key::{ApiKeys, generate, hash};
    let mut keys = ApiKeys::default();
    let mut last = String::new();
    for i in 0..10 {
        last = generate().unwrap();
        keys.add(&hash(&last), &format!("client-{i}"), vec!["mcp:tools".into()]).unwrap();
    }
    bencher.bench_local(|| keys.verify(divan::black_box(&last)).unwrap());
}
