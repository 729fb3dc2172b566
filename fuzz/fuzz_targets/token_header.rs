//! The `Authorization` header through the gateway's authentication: the
//! auth layer's bearer parsing (`mcp_guard_layers::auth`), the gateway's
//! routing of a credential to API keys or the JWT verifier
//! (`mcp_guard::auth::Authenticator`), and the verifier's own JWS header
//! decoding, `alg`/`typ`/`crit` checks and `kid` lookup before any
//! signature check, with static keys only (no network).
//!
//! Input: a mode byte, then its data.
//! - `R`/`r`: the header value as is.
//! - `J`/`j`: `header JSON \n payload JSON \n signature bytes`, each
//!   base64url-encoded into `Bearer h.p.s`, so the fuzzer works on the JSON.
//! - `S`/`s`: as `J`, but signed with HS256 by the harness, so fuzzed
//!   claims reach claim validation.
//!
//! Upper case: a verifier with RS256/ES256/EdDSA keys by `kid` (JWKS);
//! lower case: PEM keys without `kid`, and an HS256 secret.
//!
//! Invariants: every refusal is 401/403 with a Bearer challenge (never
//! 503: no keys are remote); the only credentials let in are the API key
//! and tokens the harness itself signed with the HMAC secret.

#![no_main]

use std::{convert::Infallible, sync::Arc, sync::LazyLock};

use aws_lc_rs::hmac;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use jsonwebtoken::{Algorithm, DecodingKey, jwk::Jwk};
use libfuzzer_sys::fuzz_target;
use mcp_guard::auth::{
    Authenticator,
    api_key::{ApiKeys, hash},
    jwt::{HmacSecret, JwtSettings, JwtVerifier, KeySource},
};
use mcp_guard_fuzz::split_once;
use mcp_guard_layers::{
    auth::{AuthLayer, AuthService, Challenge},
    identity::{AuthMethod, Principal},
};
use tower::{Layer, Service, service_fn, util::ServiceFn};

const ISSUER: &str = "https://as.example.com";
const AUDIENCE: &str = "https://mcp.example.com/mcp";
const API_KEY: &str = "mcpg_fuzzApiKey0123456789abcdefghijklmnopqrstuv";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-fuzz";

const RSA: &str = include_str!("../../crates/mcp-guard/tests/fixtures/jwt/rsa_public.pem");
const RSA2: &str = include_str!("../../crates/mcp-guard/tests/fixtures/jwt/rsa2_public.pem");
const EC: &str = include_str!("../../crates/mcp-guard/tests/fixtures/jwt/ec_public.pem");
const ED: &str = include_str!("../../crates/mcp-guard/tests/fixtures/jwt/ed25519_public.pem");

type Answer = std::future::Ready<Result<Response<Bytes>, Infallible>>;
type Inner = ServiceFn<fn(Request<()>) -> Answer>;

struct Setup {
    by_kid: AuthService<Inner>,
    pem_and_hmac: AuthService<Inner>,
    hmac: hmac::Key,
}

static SETUP: LazyLock<Setup> = LazyLock::new(|| {
    let mut keys = ApiKeys::default();
    keys.add(&hash(API_KEY), "ci", vec!["mcp:tools".into()]).expect("a valid hash");
    let jwk = |pem: &str, alg: Algorithm, kid: &str| {
        let key = match alg {
            Algorithm::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()),
            _ => DecodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .expect("a fixture public key");
        let mut jwk = Jwk::from_decoding_key(&key, Some(alg)).expect("a JWK");
        jwk.common.key_id = Some(kid.into());
        jwk
    };
    let jwks = vec![
        jwk(RSA, Algorithm::RS256, "rsa-1"),
        jwk(RSA2, Algorithm::RS256, "rsa-2"),
        jwk(EC, Algorithm::ES256, "ec-1"),
        jwk(ED, Algorithm::EdDSA, "ed-1"),
    ];
    let by_kid = JwtSettings::new(ISSUER, vec![AUDIENCE.into()], KeySource::Static(jwks));
    let pems = vec![(Algorithm::RS256, RSA.to_owned()), (Algorithm::ES256, EC.to_owned())];
    let mut pem_and_hmac = JwtSettings::new(ISSUER, vec![AUDIENCE.into()], KeySource::Pem(pems));
    pem_and_hmac.algorithms.push(Algorithm::HS256);
    pem_and_hmac.hmac_secret = Some(HmacSecret::new(SECRET.to_vec()));
    let layer = |settings: JwtSettings| {
        let jwt = JwtVerifier::new(settings).expect("valid settings");
        let auth = Authenticator::new(keys.clone(), Some(jwt));
        let challenge = Challenge::new(format!("{AUDIENCE}/.well-known/oauth-protected-resource"), ["mcp:tools"]);
        let ok: fn(Request<()>) -> Answer = |_| std::future::ready(Ok(Response::new(Bytes::new())));
        AuthLayer::new(Arc::new(auth), challenge).require(["mcp:tools"]).layer(service_fn(ok))
    };
    Setup { by_kid: layer(by_kid), pem_and_hmac: layer(pem_and_hmac), hmac: hmac::Key::new(hmac::HMAC_SHA256, SECRET) }
});

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let setup = &*SETUP;
    let value = match mode.to_ascii_uppercase() {
        b'J' | b'S' => {
            let (head, rest) = split_once(rest, b'\n');
            let (payload, signature) = split_once(rest, b'\n');
            let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(head), URL_SAFE_NO_PAD.encode(payload));
            let signature = match mode.to_ascii_uppercase() {
                b'S' => hmac::sign(&setup.hmac, input.as_bytes()).as_ref().to_vec(),
                _ => signature.to_vec(),
            };
            format!("Bearer {input}.{}", URL_SAFE_NO_PAD.encode(signature)).into_bytes()
        }
        _ => rest.to_vec(),
    };
    let Ok(value) = HeaderValue::from_bytes(&value) else { return };
    let hmac_signed = *mode == b's';
    let mut svc = if mode.is_ascii_uppercase() { setup.by_kid.clone() } else { setup.pem_and_hmac.clone() };
    let mut req = Request::new(());
    req.headers_mut().insert(header::AUTHORIZATION, value.clone());
    let Ok(response) = mcp_guard_fuzz::ready(svc.call(req));
    match response.status() {
        StatusCode::OK => {
            let principal = response.extensions().get::<Principal>().expect("a principal with every 200");
            let credential = value.to_str().ok().and_then(|v| v.get(7..)).map(str::trim);
            match principal.method {
                AuthMethod::ApiKey => assert_eq!(credential, Some(API_KEY), "let in as {}", principal.subject),
                AuthMethod::Bearer => assert!(hmac_signed, "a token the harness did not sign let in: {value:?}"),
            }
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            let challenge = response.headers().get(header::WWW_AUTHENTICATE).map(HeaderValue::as_bytes);
            assert!(challenge.is_some_and(|c| c.starts_with(b"Bearer ")), "a refusal without a Bearer challenge");
        }
        status => panic!("unexpected {status} for {value:?}"),
    }
});
