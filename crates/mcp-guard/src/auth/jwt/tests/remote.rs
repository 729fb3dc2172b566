//! Key sets fetched from a local identity provider: refresh, rotation,
//! rate bounds, failures, discovery; and settings checked without network.

use super::*;

#[tokio::test]
async fn unknown_kid_refreshes_once_then_is_rate_bound() {
    let idp = Idp::start(&[&RSA]).await;
    let verifier = idp.verifier();
    let unknown = |kid: &str| mint(Algorithm::RS256, Some(kid), &RSA2.encoding_key(), &claims());

    assert_eq!(verifier.verify(&unknown("a")).await, Err(JwtError::UnknownKey));
    assert_eq!(idp.fetches(), 1, "the first fetch");
    assert_eq!(verifier.verify(&unknown("b")).await, Err(JwtError::UnknownKey));
    assert_eq!(idp.fetches(), 1, "a second unknown kid within 30 s does not refetch");
    assert!(verifier.verify(&RSA.sign(&claims())).await.is_ok());

    cache(&verifier).advance_clock(MIN_REFRESH_INTERVAL);
    assert_eq!(verifier.verify(&unknown("c")).await, Err(JwtError::UnknownKey));
    assert_eq!(idp.fetches(), 2, "one refresh per interval");
    for kid in ["d", "e", "f"] {
        assert_eq!(verifier.verify(&unknown(kid)).await, Err(JwtError::UnknownKey));
    }
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn rotated_key_is_picked_up() {
    let idp = Idp::start(&[&RSA]).await;
    let verifier = idp.verifier();
    assert!(verifier.verify(&RSA.sign(&claims())).await.is_ok());
    idp.publish(&[&RSA2]);
    // Within the rate bound the new kid is unknown...
    assert_eq!(verifier.verify(&RSA2.sign(&claims())).await, Err(JwtError::UnknownKey));
    // ...after it, the unknown kid triggers the refresh that finds it.
    cache(&verifier).advance_clock(MIN_REFRESH_INTERVAL);
    assert!(verifier.verify(&RSA2.sign(&claims())).await.is_ok());
    assert_eq!(idp.fetches(), 2);
    // The retired key went with the old set.
    assert_eq!(verifier.verify(&RSA.sign(&claims())).await, Err(JwtError::UnknownKey));
}

#[tokio::test]
async fn concurrent_verifications_share_one_fetch() {
    let idp = Idp::start(&[&RSA, &EC]).await;
    let verifier = idp.verifier();
    let tokens: Vec<String> =
        (0..16).map(|i| if i % 2 == 0 { RSA.sign(&claims()) } else { EC.sign(&claims()) }).collect();
    let results = futures_util::future::join_all(tokens.iter().map(|t| verifier.verify(t))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test]
async fn stale_keys_are_refreshed_in_the_background() {
    let idp = Idp::start(&[&RSA]).await;
    let verifier = idp.verifier();
    assert!(verifier.verify(&RSA.sign(&claims())).await.is_ok());
    cache(&verifier).advance_clock(CACHE_TTL);
    // Answered from the cache; the refresh runs behind it.
    assert!(verifier.verify(&RSA.sign(&claims())).await.is_ok());
    wait_for(|| idp.fetches() == 2).await;
    // While the IdP fails, the keys held keep working, and nothing hammers it.
    idp.failing.store(true, Ordering::SeqCst);
    cache(&verifier).advance_clock(CACHE_TTL);
    assert!(verifier.verify(&RSA.sign(&claims())).await.is_ok());
    wait_for(|| idp.fetches() == 3).await;
    for _ in 0..5 {
        assert!(verifier.verify(&RSA.sign(&claims())).await.is_ok());
    }
    let unknown = mint(Algorithm::RS256, Some("new"), &RSA2.encoding_key(), &claims());
    assert_eq!(verifier.verify(&unknown).await, Err(JwtError::UnknownKey), "stale keys held: not 503");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(idp.fetches(), 3, "the failed refresh is not retried within 30 s");
}

async fn wait_for(condition: impl Fn() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 2 s");
}

#[tokio::test]
async fn unreachable_jwks_is_keys_unavailable() {
    let verifier =
        JwtVerifier::new(settings(KeySource::JwksUrl(closed_port_url().await))).expect("no network at new()");
    let token = RSA.sign(&claims());
    for _ in 0..2 {
        let err = verifier.verify(&token).await.expect_err("no keys");
        assert!(err.keys_unavailable(), "{err:?}");
        assert_eq!(err.reason(), "keys_unavailable");
    }
    // An IdP answering errors is the same to the caller.
    let idp = Idp::start(&[&RSA]).await;
    idp.failing.store(true, Ordering::SeqCst);
    let err = idp.verifier().verify(&token).await.expect_err("no keys");
    assert!(matches!(&err, JwtError::KeysUnavailable(why) if why.contains("HTTP 500")), "{err:?}");
    // A key set without a usable key is no key set.
    idp.failing.store(false, Ordering::SeqCst);
    *idp.jwks.lock().expect("lock") = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "rsa-1"}]});
    let err = idp.verifier().verify(&token).await.expect_err("no keys");
    assert!(err.keys_unavailable(), "{err:?}");
}

#[tokio::test]
async fn oversized_jwks_is_refused() {
    let idp = Idp::start(&[&RSA]).await;
    for path in ["/big", "/big-chunked"] {
        let verifier = JwtVerifier::new(settings(KeySource::JwksUrl(idp.url(path)))).expect("verifier");
        let err = verifier.verify(&RSA.sign(&claims())).await.expect_err("too large");
        assert!(matches!(&err, JwtError::KeysUnavailable(why) if why.contains("exceeds")), "{path}: {err:?}");
    }
}

#[tokio::test]
async fn jwks_skips_keys_it_cannot_use() {
    let idp = Idp::start(&[]).await;
    let mut enc = RSA2.jwk();
    enc.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Encryption);
    *idp.jwks.lock().expect("lock") = json!({"keys": [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {"kty": "ML-DSA-65", "kid": "pq", "pub": "AAAA"},
        {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        enc,
        RSA.jwk(),
    ]});
    let verifier = idp.verifier();
    assert!(verifier.verify(&RSA.sign(&claims())).await.is_ok());
    let as_enc = mint(Algorithm::RS256, Some(RSA2.kid), &RSA2.encoding_key(), &claims());
    assert_eq!(verifier.verify(&as_enc).await, Err(JwtError::UnknownKey));
    let hmac = mint(Algorithm::HS256, Some("hmac"), &EncodingKey::from_secret(b"secret"), &claims());
    assert_eq!(verifier.verify(&hmac).await, Err(JwtError::AlgorithmNotAllowed));
}

#[tokio::test]
async fn discovery_with_matching_issuer() {
    async fn run(issuer: String, discovery: String) {
        let mut s = settings(KeySource::Discovery(discovery));
        s.issuer = issuer.clone();
        let verifier = JwtVerifier::new(s).expect("verifier");
        let token = RSA.sign(&claims_with(json!({"iss": issuer})));
        assert_eq!(verifier.verify(&token).await.map(|t| t.subject), Ok("alice".to_owned()), "{issuer}");
    }
    let idp = Idp::start(&[&RSA]).await;
    // Issuer without a path: RFC 8414 metadata is absent, OpenID Connect's is found.
    run(idp.url(""), idp.url("")).await;
    // Issuer with a path: RFC 8414 path insertion.
    run(idp.url("/tenant"), idp.url("/tenant")).await;
    // The metadata URL itself.
    run(idp.url(""), idp.url("/.well-known/openid-configuration")).await;
    assert_eq!(idp.fetches(), 3);
}

#[tokio::test]
async fn discovery_refuses_a_different_issuer() {
    let idp = Idp::start(&[&RSA]).await;
    *idp.metadata_issuer.lock().expect("lock") = Some("https://evil.example.com".to_owned());
    let mut s = settings(KeySource::Discovery(idp.url("")));
    s.issuer = idp.url("");
    let verifier = JwtVerifier::new(s.clone()).expect("verifier");
    let token = RSA.sign(&claims_with(json!({"iss": idp.url("")})));
    let err = verifier.verify(&token).await.expect_err("mix-up");
    assert!(matches!(&err, JwtError::KeysUnavailable(why) if why.contains("mix-up")), "{err:?}");
    assert_eq!(idp.fetches(), 0, "the keys of a mismatched issuer are never fetched");

    // A jwks_uri learned from metadata obeys the https rule too.
    *idp.metadata_issuer.lock().expect("lock") = None;
    *idp.metadata_jwks_uri.lock().expect("lock") = Some("http://keys.example.com/jwks".to_owned());
    let err = JwtVerifier::new(s).expect("verifier").verify(&token).await.expect_err("insecure jwks_uri");
    assert!(matches!(&err, JwtError::KeysUnavailable(why) if why.contains("plain http")), "{err:?}");
    assert_eq!(idp.fetches(), 0);
}

#[test]
fn discovery_locations() {
    let cases: &[(&str, &[&str])] = &[
        (
            "https://as.example.com",
            &[
                "https://as.example.com/.well-known/oauth-authorization-server",
                "https://as.example.com/.well-known/openid-configuration",
            ],
        ),
        (
            "https://as.example.com/tenant/1/",
            &[
                "https://as.example.com/.well-known/oauth-authorization-server/tenant/1",
                "https://as.example.com/.well-known/openid-configuration/tenant/1",
                "https://as.example.com/tenant/1/.well-known/openid-configuration",
            ],
        ),
        (
            "https://as.example.com/realms/x/.well-known/openid-configuration",
            &["https://as.example.com/realms/x/.well-known/openid-configuration"],
        ),
    ];
    for (input, want) in cases {
        let got: Vec<String> = discovery_urls(input).expect(input).iter().map(ToString::to_string).collect();
        assert_eq!(got, *want, "{input}");
    }
    assert!(discovery_urls("https://as.example.com/?tenant=1").is_err());
}

#[test]
fn setup_is_validated_without_network() {
    let with = |f: &dyn Fn(&mut JwtSettings)| {
        let mut s = settings(KeySource::Static(vec![RSA.jwk()]));
        f(&mut s);
        JwtVerifier::new(s).map(|_| ())
    };
    let url = |u: &str| with(&|s| s.keys = KeySource::JwksUrl(u.to_owned()));
    let discovery = |u: &str| with(&|s| s.keys = KeySource::Discovery(u.to_owned()));
    let is_url_error = |r: Result<(), JwtSetupError>| matches!(r, Err(JwtSetupError::Url(_)));

    for refused in [
        "http://as.example.com/jwks",
        "http://10.0.0.1/jwks",
        "http://localhost.example.com/jwks",
        "http://127.0.0.1.nip.io/jwks",
        "ftp://127.0.0.1/jwks",
        "file:///etc/jwks.json",
        "not a url",
    ] {
        assert!(is_url_error(url(refused)), "{refused}");
        assert!(is_url_error(discovery(refused)), "{refused}");
    }
    // Loopback may be plain http; nothing listens on port 1, and nothing is fetched now.
    for accepted in [
        "https://as.example.com/jwks",
        "http://127.0.0.1:1/jwks",
        "http://127.9.9.9:1/jwks",
        "http://[::1]:1/jwks",
        "http://localhost:1/jwks",
        "http://LOCALHOST:1/jwks",
    ] {
        assert!(url(accepted).is_ok(), "{accepted}");
        assert!(discovery(accepted).is_ok(), "{accepted}");
    }

    let mut oct = RSA.jwk();
    oct.algorithm = jsonwebtoken::jwk::AlgorithmParameters::OctetKey(jsonwebtoken::jwk::OctetKeyParameters {
        key_type: jsonwebtoken::jwk::OctetKeyType::Octet,
        value: URL_SAFE_NO_PAD.encode(SECRET),
    });
    let mut mispinned = RSA.jwk();
    mispinned.common.key_algorithm = Some(KeyAlgorithm::ES256);
    let pem = |alg: Algorithm, file: &str| KeySource::Pem(vec![(alg, fixture(file))]);
    type Case<'a> = (&'a str, Box<dyn Fn(&mut JwtSettings) + 'a>, fn(&JwtSetupError) -> bool);
    let cases: Vec<Case<'_>> = vec![
        ("empty issuer", Box::new(|s| s.issuer.clear()), |e| matches!(e, JwtSetupError::NoIssuer)),
        ("no audience", Box::new(|s| s.audiences.clear()), |e| matches!(e, JwtSetupError::NoAudience)),
        ("empty audience", Box::new(|s| s.audiences.push(String::new())), |e| matches!(e, JwtSetupError::NoAudience)),
        ("no algorithms", Box::new(|s| s.algorithms.clear()), |e| matches!(e, JwtSetupError::NoAlgorithms)),
        ("HS256 without secret", Box::new(|s| s.algorithms.push(Algorithm::HS256)), |e| {
            matches!(e, JwtSetupError::HmacWithoutSecret(Algorithm::HS256))
        }),
        ("secret without HS*", Box::new(|s| s.hmac_secret = Some(HmacSecret::new(SECRET))), |e| {
            matches!(e, JwtSetupError::SecretWithoutHmac)
        }),
        (
            "short secret",
            Box::new(|s| {
                s.algorithms.push(Algorithm::HS256);
                s.hmac_secret = Some(HmacSecret::new(&b"short"[..]));
            }),
            |e| matches!(e, JwtSetupError::WeakSecret { min: 32, len: 5, .. }),
        ),
        (
            "secret short for HS512",
            Box::new(|s| {
                s.algorithms.push(Algorithm::HS512);
                s.hmac_secret = Some(HmacSecret::new(SECRET));
            }),
            |e| matches!(e, JwtSetupError::WeakSecret { alg: Algorithm::HS512, min: 64, .. }),
        ),
        ("huge leeway", Box::new(|s| s.leeway = Duration::from_secs(3600)), |e| {
            matches!(e, JwtSetupError::LeewayTooLarge(_))
        }),
        ("symmetric static key", Box::new(move |s| s.keys = KeySource::Static(vec![oct.clone()])), |e| {
            matches!(e, JwtSetupError::BadKey { .. })
        }),
        ("JWK alg not of its kty", Box::new(move |s| s.keys = KeySource::Static(vec![mispinned.clone()])), |e| {
            matches!(e, JwtSetupError::BadKey { .. })
        }),
        ("static key fitting no allowed alg", Box::new(|s| s.algorithms = vec![Algorithm::ES256]), |e| {
            matches!(e, JwtSetupError::BadKey { .. })
        }),
        ("no keys", Box::new(|s| s.keys = KeySource::Static(vec![])), |e| matches!(e, JwtSetupError::NoKeys)),
        (
            "PEM private key",
            Box::new(move |s| s.keys = pem(Algorithm::RS256, RSA.private)),
            |e| matches!(e, JwtSetupError::BadKey { reason, .. } if reason.contains("PRIVATE KEY")),
        ),
        ("PEM for HS256", Box::new(move |s| s.keys = pem(Algorithm::HS256, RSA.public)), |e| {
            matches!(e, JwtSetupError::BadKey { .. })
        }),
        ("PEM of the wrong type", Box::new(move |s| s.keys = pem(Algorithm::ES256, RSA.public)), |e| {
            matches!(e, JwtSetupError::BadKey { .. })
        }),
        (
            "PEM RSA 1024",
            Box::new(move |s| s.keys = pem(Algorithm::RS256, "rsa1024_public.pem")),
            |e| matches!(e, JwtSetupError::BadKey { reason, .. } if reason.contains("1024 bits")),
        ),
        ("PEM alg not allowed", Box::new(move |s| s.keys = pem(Algorithm::PS512, RSA.public)), |e| {
            matches!(e, JwtSetupError::BadKey { .. })
        }),
    ];
    for (name, edit, want) in &cases {
        match with(&**edit) {
            Err(e) => assert!(want(&e), "{name}: {e}"),
            Ok(()) => panic!("{name}: accepted"),
        }
    }
    // HMAC only, with no public key at all, is a valid setup.
    assert!(
        with(&|s| {
            s.keys = KeySource::Static(vec![]);
            s.algorithms = vec![Algorithm::HS256];
            s.hmac_secret = Some(HmacSecret::new(SECRET));
        })
        .is_ok()
    );
}

#[test]
fn secret_is_never_printed() {
    let secret = HmacSecret::new(SECRET);
    assert_eq!(format!("{secret}"), "[redacted]");
    assert_eq!(format!("{secret:?}"), "[redacted]");
    let mut s = settings(KeySource::Static(vec![RSA.jwk()]));
    s.algorithms.push(Algorithm::HS256);
    s.hmac_secret = Some(secret);
    let needle = String::from_utf8_lossy(SECRET).into_owned();
    assert!(!format!("{s:?}").contains(&needle));
    let verifier = JwtVerifier::new(s).expect("verifier");
    assert!(!format!("{verifier:?}").contains(&needle));
}

#[test]
fn error_reasons_are_stable() {
    let cases = [
        (JwtError::Malformed, "token_malformed"),
        (JwtError::AlgorithmNotAllowed, "algorithm_not_allowed"),
        (JwtError::UnknownKey, "unknown_key"),
        (JwtError::BadSignature, "bad_signature"),
        (JwtError::Expired, "token_expired"),
        (JwtError::NotYetValid, "token_not_yet_valid"),
        (JwtError::IssuedInFuture, "token_issued_in_future"),
        (JwtError::WrongIssuer, "wrong_issuer"),
        (JwtError::WrongAudience, "wrong_audience"),
        (JwtError::MissingSubject, "missing_subject"),
        (JwtError::KeysUnavailable("down".into()), "keys_unavailable"),
    ];
    for (error, reason) in cases {
        assert_eq!(error.reason(), reason);
        assert_eq!(error.keys_unavailable(), reason == "keys_unavailable", "{reason}");
    }
}
