//! Tokens are minted here with `jsonwebtoken::encode` and the test-only keys
//! in `tests/fixtures/jwt/`; remote key sets are served by a local axum
//! server that counts its fetches.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Body, http::StatusCode, response::IntoResponse, routing::get};
use bytes::Bytes;
use jsonwebtoken::{
    DecodingKey, EncodingKey, Header, encode,
    jwk::{Jwk, KeyAlgorithm},
};
use serde_json::{Value, json};

use super::*;
use crate::auth::jwks::{CACHE_TTL, MAX_DOCUMENT_BYTES, MIN_REFRESH_INTERVAL};

const ISSUER: &str = "https://as.example.com";
const AUDIENCE: &str = "https://mcp.example.com/mcp";
/// Thirty-two bytes and more: long enough for HS256.
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-configured";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A test key pair from the fixtures.
struct TestKey {
    alg: Algorithm,
    kid: &'static str,
    private: &'static str,
    public: &'static str,
}

const RSA: TestKey =
    TestKey { alg: Algorithm::RS256, kid: "rsa-1", private: "rsa_private.pem", public: "rsa_public.pem" };
const RSA2: TestKey =
    TestKey { alg: Algorithm::RS256, kid: "rsa-2", private: "rsa2_private.pem", public: "rsa2_public.pem" };
const EC: TestKey = TestKey { alg: Algorithm::ES256, kid: "ec-1", private: "ec_private.pem", public: "ec_public.pem" };
const ED: TestKey =
    TestKey { alg: Algorithm::EdDSA, kid: "ed-1", private: "ed25519_private.pem", public: "ed25519_public.pem" };

impl TestKey {
    fn encoding_key(&self) -> EncodingKey {
        let pem = fixture(self.private);
        match self.alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .expect("fixture private key")
    }

    /// The public JWK (n/e, x/y or x, base64url) with `kid` and no `alg`.
    fn jwk(&self) -> Jwk {
        let pem = fixture(self.public);
        let key = match self.alg {
            Algorithm::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()),
            _ => DecodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .expect("fixture public key");
        let mut jwk = Jwk::from_decoding_key(&key, None).expect("jwk");
        jwk.common.key_id = Some(self.kid.to_owned());
        jwk
    }

    fn sign(&self, claims: &Value) -> String {
        mint(self.alg, Some(self.kid), &self.encoding_key(), claims)
    }
}

fn mint(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    header.typ = Some("at+jwt".to_owned());
    encode(&header, claims, key).expect("encode")
}

fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(json.to_string())
}

fn claims() -> Value {
    let now = unix_now();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "client_id": "cli",
        "exp": now + 300, "iat": now, "nbf": now, "scope": "tools:read tools:call",
    })
}

/// `claims()` with `patch` applied; a `null` in the patch removes the claim.
fn claims_with(patch: Value) -> Value {
    let mut claims = claims();
    let (Value::Object(base), Value::Object(patch)) = (&mut claims, patch) else { panic!("objects") };
    for (k, v) in patch {
        if v.is_null() {
            base.remove(&k);
        } else {
            base.insert(k, v);
        }
    }
    claims
}

fn settings(keys: KeySource) -> JwtSettings {
    JwtSettings::new(ISSUER, vec![AUDIENCE.to_owned()], keys)
}

fn static_verifier(keys: &[&TestKey]) -> JwtVerifier {
    JwtVerifier::new(settings(KeySource::Static(keys.iter().map(|k| k.jwk()).collect()))).expect("verifier")
}

fn hmac_verifier(secret: &[u8]) -> JwtVerifier {
    let mut s = settings(KeySource::Static(vec![RSA.jwk()]));
    s.algorithms.push(Algorithm::HS256);
    s.hmac_secret = Some(HmacSecret::new(secret));
    JwtVerifier::new(s).expect("verifier")
}

fn cache(verifier: &JwtVerifier) -> &JwksCache {
    match &verifier.inner.keys {
        Keys::Remote(cache) => cache,
        Keys::Fixed(_) => panic!("not a remote key set"),
    }
}

fn json_response(body: String) -> impl IntoResponse {
    ([(http::header::CONTENT_TYPE, "application/json")], body)
}

/// A local IdP: `/jwks`, discovery metadata, and oversized documents.
#[derive(Clone)]
struct Idp {
    addr: SocketAddr,
    jwks: Arc<Mutex<Value>>,
    jwks_fetches: Arc<AtomicUsize>,
    metadata_fetches: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    /// Overrides of the metadata's `issuer` and `jwks_uri`.
    metadata_issuer: Arc<Mutex<Option<String>>>,
    metadata_jwks_uri: Arc<Mutex<Option<String>>>,
}

impl Idp {
    async fn start(keys: &[&TestKey]) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let idp = Idp {
            addr: listener.local_addr().expect("addr"),
            jwks: Arc::new(Mutex::new(jwks_document(keys))),
            jwks_fetches: Arc::default(),
            metadata_fetches: Arc::default(),
            failing: Arc::default(),
            metadata_issuer: Arc::default(),
            metadata_jwks_uri: Arc::default(),
        };
        let jwks = {
            let idp = idp.clone();
            move || async move {
                idp.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                if idp.failing.load(Ordering::SeqCst) {
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
                let body = idp.jwks.lock().expect("lock").to_string();
                json_response(body).into_response()
            }
        };
        let metadata = |issuer_path: &'static str| {
            let idp = idp.clone();
            move || async move {
                idp.metadata_fetches.fetch_add(1, Ordering::SeqCst);
                let issuer = idp.metadata_issuer.lock().expect("lock").clone().unwrap_or(idp.url(issuer_path));
                let jwks_uri = idp.metadata_jwks_uri.lock().expect("lock").clone().unwrap_or(idp.url("/jwks"));
                json_response(json!({ "issuer": issuer, "jwks_uri": jwks_uri }).to_string())
            }
        };
        let big = || async { json_response(" ".repeat(MAX_DOCUMENT_BYTES + 1)) };
        let big_chunked = || async {
            // No Content-Length: the cap must hold while reading.
            let chunks = (0..17).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 64 * 1024])));
            Body::from_stream(futures_util::stream::iter(chunks))
        };
        let router = Router::new()
            .route("/jwks", get(jwks))
            // Issuer without a path: OAuth metadata is absent, OIDC is found.
            .route("/.well-known/openid-configuration", get(metadata("")))
            // Issuer with a path: RFC 8414 path insertion.
            .route("/.well-known/oauth-authorization-server/tenant", get(metadata("/tenant")))
            .route("/big", get(big))
            .route("/big-chunked", get(big_chunked));
        tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
        idp
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn publish(&self, keys: &[&TestKey]) {
        *self.jwks.lock().expect("lock") = jwks_document(keys);
    }

    fn fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    fn verifier(&self) -> JwtVerifier {
        JwtVerifier::new(settings(KeySource::JwksUrl(self.url("/jwks")))).expect("verifier")
    }
}

fn jwks_document(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// A URL nothing listens on.
async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/jwks")
}

#[tokio::test]
async fn valid_tokens_verify() {
    let idp = Idp::start(&[&RSA, &EC, &ED]).await;
    let remote = idp.verifier();
    let fixed = static_verifier(&[&RSA, &EC, &ED]);
    for key in [&RSA, &EC, &ED] {
        let token = key.sign(&claims());
        for verifier in [&remote, &fixed] {
            let verified = verifier.verify(&token).await.unwrap_or_else(|e| panic!("{:?}: {e:?}", key.alg));
            assert_eq!(verified.subject, "alice");
            assert_eq!(verified.scopes, ["tools:read", "tools:call"]);
            assert_eq!(verified.client_id.as_deref(), Some("cli"));
            assert_eq!(verified.expires_at, claims()["exp"].as_u64().expect("exp"));
        }
    }
    assert_eq!(idp.fetches(), 1, "one fetch serves every later verification");
}

#[test]
fn verify_is_send() {
    // The auth layer boxes it as `dyn Future + Send`.
    fn assert_send<T: Send>(_: &T) {}
    let verifier = static_verifier(&[&RSA]);
    assert_send(&verifier.verify("a.b.c"));
    let remote =
        JwtVerifier::new(settings(KeySource::JwksUrl("https://as.example.com/jwks".into()))).expect("verifier");
    assert_send(&remote.verify("a.b.c"));
}

#[tokio::test]
async fn claims_are_checked() {
    let now = unix_now();
    let cases: &[(&str, Value, Result<(), JwtError>)] = &[
        ("valid", json!({}), Ok(())),
        ("expired", json!({"exp": now - 120}), Err(JwtError::Expired)),
        ("expired within leeway", json!({"exp": now - 30}), Ok(())),
        ("missing exp", json!({"exp": null}), Err(JwtError::Malformed)),
        ("exp not a number", json!({"exp": "tomorrow"}), Err(JwtError::Malformed)),
        ("fractional exp", json!({"exp": now as f64 + 300.5}), Ok(())),
        ("not yet valid", json!({"nbf": now + 120}), Err(JwtError::NotYetValid)),
        ("nbf within leeway", json!({"nbf": now + 30}), Ok(())),
        ("negative nbf", json!({"nbf": -1}), Err(JwtError::Malformed)),
        ("issued in the future", json!({"iat": now + 120}), Err(JwtError::IssuedInFuture)),
        ("iat within leeway", json!({"iat": now + 30}), Ok(())),
        ("wrong issuer", json!({"iss": "https://evil.example.com"}), Err(JwtError::WrongIssuer)),
        ("issuer is compared exactly", json!({"iss": format!("{ISSUER}/")}), Err(JwtError::WrongIssuer)),
        ("missing issuer", json!({"iss": null}), Err(JwtError::WrongIssuer)),
        ("issuer as an array", json!({"iss": [ISSUER]}), Err(JwtError::Malformed)),
        ("wrong audience", json!({"aud": "https://other.example.com/mcp"}), Err(JwtError::WrongAudience)),
        ("audience array containing ours", json!({"aud": ["https://other.example.com", AUDIENCE]}), Ok(())),
        (
            "audience array without ours",
            json!({"aud": ["https://a.example", "https://b.example"]}),
            Err(JwtError::WrongAudience),
        ),
        ("empty audience array", json!({"aud": []}), Err(JwtError::WrongAudience)),
        ("missing audience", json!({"aud": null}), Err(JwtError::WrongAudience)),
        ("missing subject", json!({"sub": null}), Err(JwtError::MissingSubject)),
        ("empty subject", json!({"sub": ""}), Err(JwtError::MissingSubject)),
        ("no fallback to client_id", json!({"sub": null, "client_id": "alice"}), Err(JwtError::MissingSubject)),
    ];
    let verifier = static_verifier(&[&RSA]);
    for (name, patch, want) in cases {
        let got = verifier.verify(&RSA.sign(&claims_with(patch.clone()))).await.map(|_| ());
        assert_eq!(&got, want, "{name}");
    }
}

#[tokio::test]
async fn escaped_json_strings_compare_decoded() {
    // Some AS escape `/` as `\/`; the decoded string is what counts.
    let verifier = static_verifier(&[&RSA]);
    let payload = claims().to_string().replace('/', "\\/");
    let header = b64(&json!({"alg": "RS256", "kid": RSA.kid}));
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(&payload));
    let signature =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), &RSA.encoding_key(), Algorithm::RS256).expect("sign");
    let token = format!("{signing_input}.{signature}");
    assert!(payload.contains("\\/"));
    assert_eq!(verifier.verify(&token).await.map(|t| t.subject), Ok("alice".to_owned()));
}

#[tokio::test]
async fn scopes_and_client_id() {
    type Case = (&'static str, Value, &'static [&'static str], Option<&'static str>);
    let cases: &[Case] = &[
        ("scope string", json!({"scope": "a b  c"}), &["a", "b", "c"], Some("cli")),
        ("empty scope", json!({"scope": ""}), &[], Some("cli")),
        ("scp array", json!({"scope": null, "scp": ["a", "b"]}), &["a", "b"], Some("cli")),
        ("scp string", json!({"scope": null, "scp": "a b"}), &["a", "b"], Some("cli")),
        ("scope wins over scp", json!({"scope": "x", "scp": ["y"]}), &["x"], Some("cli")),
        ("no scopes", json!({"scope": null}), &[], Some("cli")),
        ("azp when no client_id", json!({"client_id": null, "azp": "web"}), &["tools:read", "tools:call"], Some("web")),
        ("no client", json!({"client_id": null}), &["tools:read", "tools:call"], None),
    ];
    let verifier = static_verifier(&[&RSA]);
    for (name, patch, scopes, client) in cases {
        let token = verifier.verify(&RSA.sign(&claims_with(patch.clone()))).await.expect(name);
        assert_eq!(token.scopes, *scopes, "{name}");
        assert_eq!(token.client_id.as_deref(), *client, "{name}");
    }
    let scp_number = RSA.sign(&claims_with(json!({"scope": null, "scp": 7})));
    assert_eq!(verifier.verify(&scp_number).await, Err(JwtError::Malformed));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let verifier = static_verifier(&[&RSA]);
    for alg in ["none", "None", "NONE", "nOnE"] {
        let unsigned = format!("{}.{}.", b64(&json!({"alg": alg, "typ": "JWT"})), b64(&claims()));
        assert_eq!(verifier.verify(&unsigned).await, Err(JwtError::AlgorithmNotAllowed), "{alg}");
        // Keeping a real signature does not help either.
        let signed = RSA.sign(&claims());
        let sig = signed.rsplit('.').next().expect("signature");
        let with_sig = format!("{}.{}.{sig}", b64(&json!({"alg": alg, "kid": RSA.kid})), b64(&claims()));
        assert_eq!(verifier.verify(&with_sig).await, Err(JwtError::AlgorithmNotAllowed), "{alg}");
    }
}

#[tokio::test]
async fn hs256_with_the_rsa_public_key_is_refused() {
    // The classic confusion attack: HMAC keyed with the server's public key bytes.
    let public_pem = fixture(RSA.public);
    let forged = mint(Algorithm::HS256, Some(RSA.kid), &EncodingKey::from_secret(public_pem.as_bytes()), &claims());
    let idp = Idp::start(&[&RSA]).await;
    assert_eq!(static_verifier(&[&RSA]).verify(&forged).await, Err(JwtError::AlgorithmNotAllowed));
    assert_eq!(idp.verifier().verify(&forged).await, Err(JwtError::AlgorithmNotAllowed));
    let pem = JwtVerifier::new(settings(KeySource::Pem(vec![(Algorithm::RS256, public_pem.clone())]))).expect("pem");
    assert_eq!(pem.verify(&forged).await, Err(JwtError::AlgorithmNotAllowed));
    // With HS256 allowed and a (different) secret configured, only that secret verifies.
    assert_eq!(hmac_verifier(SECRET).verify(&forged).await, Err(JwtError::BadSignature));
    // The same holds for the JWK's modulus bytes.
    let n = match &RSA.jwk().algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::RSA(p) => p.n.clone(),
        _ => unreachable!(),
    };
    let forged_n = mint(Algorithm::HS256, Some(RSA.kid), &EncodingKey::from_secret(n.as_bytes()), &claims());
    assert_eq!(hmac_verifier(SECRET).verify(&forged_n).await, Err(JwtError::BadSignature));
}

#[tokio::test]
async fn hs256_with_the_configured_secret() {
    let token = mint(Algorithm::HS256, None, &EncodingKey::from_secret(SECRET), &claims());
    assert_eq!(hmac_verifier(SECRET).verify(&token).await.map(|t| t.subject), Ok("alice".to_owned()));
    // The kid of an HMAC token is irrelevant: there is one secret.
    let with_kid = mint(Algorithm::HS256, Some(RSA.kid), &EncodingKey::from_secret(SECRET), &claims());
    assert!(hmac_verifier(SECRET).verify(&with_kid).await.is_ok());
    // Asymmetric tokens still verify alongside.
    assert!(hmac_verifier(SECRET).verify(&RSA.sign(&claims())).await.is_ok());
    // Not listed: refused even with the right secret.
    assert_eq!(static_verifier(&[&RSA]).verify(&token).await, Err(JwtError::AlgorithmNotAllowed));
    let hs384 = mint(Algorithm::HS384, None, &EncodingKey::from_secret(SECRET), &claims());
    assert_eq!(hmac_verifier(&[SECRET, SECRET].concat()).verify(&hs384).await, Err(JwtError::AlgorithmNotAllowed));
}

#[tokio::test]
async fn header_alg_must_fit_the_key() {
    let verifier = static_verifier(&[&RSA, &EC]);
    let rsa = RSA.encoding_key();
    type Case = (&'static str, Algorithm, Option<&'static str>, Result<(), JwtError>);
    let cases: &[Case] = &[
        ("RS256 signed, kid of the EC key", Algorithm::RS256, Some(EC.kid), Err(JwtError::AlgorithmNotAllowed)),
        ("PS256 with an unpinned RSA key", Algorithm::PS256, Some(RSA.kid), Ok(())),
        ("RS512 with an unpinned RSA key", Algorithm::RS512, Some(RSA.kid), Ok(())),
        ("PS384 is not in the default list", Algorithm::PS384, Some(RSA.kid), Err(JwtError::AlgorithmNotAllowed)),
        ("no kid, one RSA key", Algorithm::RS256, None, Ok(())),
    ];
    for (name, alg, kid, want) in cases {
        let got = verifier.verify(&mint(*alg, *kid, &rsa, &claims())).await.map(|_| ());
        assert_eq!(&got, want, "{name}");
    }
    // ES384 header on a P-256 key.
    let es384 = format!("{}.{}.AAAA", b64(&json!({"alg": "ES384", "kid": EC.kid})), b64(&claims()));
    assert_eq!(verifier.verify(&es384).await, Err(JwtError::AlgorithmNotAllowed));
    // A JWK stating its alg verifies that alg only.
    let mut pinned = RSA.jwk();
    pinned.common.key_algorithm = Some(KeyAlgorithm::RS256);
    let verifier = JwtVerifier::new(settings(KeySource::Static(vec![pinned]))).expect("verifier");
    assert!(verifier.verify(&RSA.sign(&claims())).await.is_ok());
    let ps256 = mint(Algorithm::PS256, Some(RSA.kid), &rsa, &claims());
    assert_eq!(verifier.verify(&ps256).await, Err(JwtError::AlgorithmNotAllowed));
    // An algorithm the settings do not list.
    let mut only_es = settings(KeySource::Static(vec![EC.jwk()]));
    only_es.algorithms = vec![Algorithm::ES256];
    let verifier = JwtVerifier::new(only_es).expect("verifier");
    assert_eq!(verifier.verify(&RSA.sign(&claims())).await, Err(JwtError::AlgorithmNotAllowed));
    assert!(verifier.verify(&EC.sign(&claims())).await.is_ok());
}

#[tokio::test]
async fn token_without_kid_needs_exactly_one_fitting_key() {
    let token = mint(Algorithm::RS256, None, &RSA.encoding_key(), &claims());
    assert!(static_verifier(&[&RSA, &EC]).verify(&token).await.is_ok());
    assert_eq!(static_verifier(&[&RSA, &RSA2]).verify(&token).await, Err(JwtError::UnknownKey));
    assert_eq!(static_verifier(&[&EC]).verify(&token).await, Err(JwtError::UnknownKey));
    // A kid nobody has, with static keys: no refresh, just unknown.
    let unknown = mint(Algorithm::RS256, Some("nope"), &RSA.encoding_key(), &claims());
    assert_eq!(static_verifier(&[&RSA]).verify(&unknown).await, Err(JwtError::UnknownKey));
}

#[tokio::test]
async fn pem_keys() {
    let verifier = JwtVerifier::new(settings(KeySource::Pem(vec![
        (Algorithm::RS256, fixture(RSA.public)),
        (Algorithm::ES256, fixture(EC.public)),
        (Algorithm::EdDSA, fixture(ED.public)),
    ])))
    .expect("verifier");
    // PEM keys have no kid: the token's kid falls back to the one key for its alg.
    for key in [&RSA, &EC, &ED] {
        assert!(verifier.verify(&key.sign(&claims())).await.is_ok(), "{:?}", key.alg);
    }
    let ps256 = mint(Algorithm::PS256, Some(RSA.kid), &RSA.encoding_key(), &claims());
    assert_eq!(verifier.verify(&ps256).await, Err(JwtError::UnknownKey));
    assert_eq!(verifier.verify(&RSA2.sign(&claims())).await, Err(JwtError::BadSignature));
}

#[tokio::test]
async fn tampering_is_detected() {
    let verifier = static_verifier(&[&RSA, &EC]);
    for key in [&RSA, &EC] {
        let token = key.sign(&claims());
        let parts: Vec<&str> = token.split('.').collect();
        let admin = b64(&claims_with(json!({"sub": "admin", "scope": "admin"})));
        let tampered = format!("{}.{admin}.{}", parts[0], parts[2]);
        assert_eq!(verifier.verify(&tampered).await, Err(JwtError::BadSignature), "{:?}", key.alg);
        let mut sig = parts[2].to_owned().into_bytes();
        sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
        let bad_sig = format!("{}.{}.{}", parts[0], parts[1], String::from_utf8(sig).expect("ascii"));
        assert_eq!(verifier.verify(&bad_sig).await, Err(JwtError::BadSignature), "{:?}", key.alg);
        let no_sig = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(verifier.verify(&no_sig).await, Err(JwtError::BadSignature), "{:?}", key.alg);
        // Swapping in the header of another algorithm breaks the signature too.
        let other_header = b64(&json!({"alg": "RS512", "kid": RSA.kid}));
        if key.alg == Algorithm::RS256 {
            let swapped = format!("{other_header}.{}.{}", parts[1], parts[2]);
            assert_eq!(verifier.verify(&swapped).await, Err(JwtError::BadSignature));
        }
    }
}

#[tokio::test]
async fn malformed_tokens() {
    let verifier = static_verifier(&[&RSA]);
    let good = RSA.sign(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let header = |h: Value| format!("{}.{}.{}", b64(&h), parts[1], parts[2]);
    let cases: Vec<(&str, String, JwtError)> = vec![
        ("empty", String::new(), JwtError::Malformed),
        ("two parts", format!("{}.{}", parts[0], parts[1]), JwtError::Malformed),
        ("four parts", format!("{good}.x"), JwtError::Malformed),
        ("JWE-like", format!("{}.a.b.c.d", parts[0]), JwtError::Malformed),
        ("empty header", format!(".{}.{}", parts[1], parts[2]), JwtError::Malformed),
        ("padded header", format!("{}=.{}.{}", parts[0], parts[1], parts[2]), JwtError::Malformed),
        ("header not base64url", format!("{}+.{}.{}", parts[0], parts[1], parts[2]), JwtError::Malformed),
        (
            "header not JSON",
            format!("{}.{}.{}", URL_SAFE_NO_PAD.encode("hello"), parts[1], parts[2]),
            JwtError::Malformed,
        ),
        ("header an array", format!("{}.{}.{}", b64(&json!(["RS256"])), parts[1], parts[2]), JwtError::Malformed),
        ("no alg", header(json!({"kid": RSA.kid})), JwtError::Malformed),
        (
            "duplicate alg",
            format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","alg":"none"}"#), parts[1], parts[2]),
            JwtError::Malformed,
        ),
        ("crit", header(json!({"alg": "RS256", "kid": RSA.kid, "crit": ["exp"], "exp": 1})), JwtError::Malformed),
        ("logout token typ", header(json!({"alg": "RS256", "kid": RSA.kid, "typ": "logout+jwt"})), JwtError::Malformed),
        (
            "dpop typ",
            header(json!({"alg": "RS256", "kid": RSA.kid, "typ": "application/dpop+jwt"})),
            JwtError::Malformed,
        ),
        ("lowercase alg", header(json!({"alg": "rs256", "kid": RSA.kid})), JwtError::AlgorithmNotAllowed),
        ("too long", format!("{}.{}.{}", parts[0], "A".repeat(MAX_TOKEN_BYTES), parts[2]), JwtError::Malformed),
    ];
    for (name, token, want) in cases {
        assert_eq!(verifier.verify(&token).await, Err(want), "{name}");
    }
    // Typs of access tokens and plain JWTs pass (the signature is then what fails or not).
    for typ in ["at+jwt", "application/at+jwt", "AT+JWT", "JWT", "jwt"] {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(RSA.kid.to_owned());
        h.typ = Some(typ.to_owned());
        let token = encode(&h, &claims(), &RSA.encoding_key()).expect("encode");
        assert!(verifier.verify(&token).await.is_ok(), "{typ}");
    }
    // A signed payload that is not a JSON object.
    let array = mint(Algorithm::RS256, Some(RSA.kid), &RSA.encoding_key(), &json!([ISSUER, "alice"]));
    assert_eq!(verifier.verify(&array).await, Err(JwtError::Malformed));
    let duplicate_sub =
        r#"{"iss":"https://as.example.com","aud":"https://mcp.example.com/mcp","sub":"a","sub":"b","exp":9999999999}"#;
    let signing_input = format!("{}.{}", parts[0], URL_SAFE_NO_PAD.encode(duplicate_sub));
    let sig =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), &RSA.encoding_key(), Algorithm::RS256).expect("sign");
    assert_eq!(verifier.verify(&format!("{signing_input}.{sig}")).await, Err(JwtError::Malformed));
}

// Tests that fetch keys from a local identity provider.
mod remote;
