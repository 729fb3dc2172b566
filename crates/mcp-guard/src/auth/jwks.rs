//! Public keys for JWT verification, and the cache that keeps a remote JWKS
//! fresh.
//!
//! Keys are parsed once, when loaded, into an aws-lc public key per algorithm
//! the key may verify, so checking a signature on a warm cache is pure CPU
//! work: no key parsing, no network, no lock held across an await. A JWK with
//! `alg` set gets exactly that algorithm; without it, every allowed algorithm
//! of its family (RSA: RS*/PS*, P-256: ES256, P-384: ES384, Ed25519: EdDSA).
//! Symmetric (`oct`) keys are never loaded from a key set: a public key is
//! only ever a [`ParsedPublicKey`], never raw bytes, so it cannot become an
//! HMAC secret (the RS256 to HS256 confusion attack). RSA keys under 2048 bits
//! are refused.
//!
//! A remote key set ([`JwksCache`]) is fetched with a 5 s timeout and a 1 MiB
//! body cap, over HTTPS unless the host is loopback (redirects are held to the
//! same rule). It is refreshed
//! - in the background once it is older than 10 minutes, while the keys held
//!   keep verifying, so no request waits on the IdP for routine freshness;
//! - inline when a token names a `kid` the cache does not hold (rotation);
//!
//! but never more than once per 30 s whatever the tokens say, so a stream of
//! made-up `kid`s cannot turn the gateway into a load generator against its
//! IdP. Callers that need a refresh at the same time share one fetch. A failed
//! refresh keeps the keys held (and logs); with none held the answer is
//! `KeysUnavailable`, which the gateway turns into 503, not 401.
//!
//! Discovery (RFC 8414 AS metadata, OpenID Connect Discovery) learns
//! `jwks_uri` from the issuer's metadata, and refuses metadata that names a
//! different issuer: an attacker-controlled document must not be able to swap
//! in its own keys (mix-up defence). The learned `jwks_uri` must pass the same
//! HTTPS rule as a configured one.

use std::{
    error::Error as _,
    fmt,
    net::IpAddr,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use aws_lc_rs::signature::{
    self as sig, EcdsaVerificationAlgorithm, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents,
};
use base64::{
    Engine,
    alphabet::URL_SAFE,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse},
};
use reqwest::{Url, header::ACCEPT, redirect};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::jwt::{JwtError, JwtSetupError};

/// Longest wait for one HTTP exchange with the IdP, body included.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS or metadata document read; a real one is a few KiB.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Age after which a key set is refreshed (in the background).
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(600);
/// Least time between two fetch attempts, whatever triggers them.
pub(crate) const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Usable keys kept from one key set; lookups scan them linearly.
const MAX_KEYS: usize = 32;
const MAX_REDIRECTS: usize = 3;

/// JWK values are base64url without padding (RFC 7517), but some IdPs pad.
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const RSA_ALGORITHMS: [Algorithm; 6] =
    [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384, Algorithm::PS512];

fn rsa_parameters(alg: Algorithm) -> Option<&'static RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn ecdsa_parameters(alg: Algorithm) -> Option<&'static EcdsaVerificationAlgorithm> {
    match alg {
        Algorithm::ES256 => Some(&sig::ECDSA_P256_SHA256_FIXED),
        Algorithm::ES384 => Some(&sig::ECDSA_P384_SHA384_FIXED),
        _ => None,
    }
}

/// A public key, parsed once for each algorithm it may verify.
pub(crate) struct VerifyKey {
    kid: Option<Box<str>>,
    by_alg: Vec<(Algorithm, ParsedPublicKey)>,
}

impl VerifyKey {
    fn get(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        self.by_alg.iter().find(|(a, _)| *a == alg).map(|(_, key)| key)
    }
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algs: Vec<Algorithm> = self.by_alg.iter().map(|(a, _)| *a).collect();
        f.debug_struct("VerifyKey").field("kid", &self.kid).field("algorithms", &algs).finish()
    }
}

/// The outcome of looking a token's key up.
pub(crate) enum Lookup<'a> {
    Found(&'a ParsedPublicKey),
    /// No key fits: a refresh may help.
    Missing,
    /// The token has no `kid` and several keys fit its `alg`.
    Ambiguous,
    /// Keys carry the token's `kid`, but none may verify its `alg`.
    WrongAlgorithm,
}

/// The keys of one key set (or of the static configuration).
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<VerifyKey>,
}

/// Why a JWK was not loaded.
enum Skip {
    /// Marked for encryption (`use`, `key_ops`, or an encryption `alg`).
    NotForSignatures,
    /// Fine, but fits none of the allowed algorithms.
    NotAllowed,
    /// Broken or unsupported.
    Unusable(String),
}

impl KeySet {
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for a token's `kid` and `alg`. A token without `kid` needs
    /// exactly one fitting key. A `kid` no key carries may still mean a key
    /// that has none (every PEM key), again only if exactly one fits.
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        if let Some(kid) = kid {
            let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).peekable();
            if named.peek().is_some() {
                return named.find_map(|k| k.get(alg)).map_or(Lookup::WrongAlgorithm, Lookup::Found);
            }
        }
        let mut fitting = self.keys.iter().filter(|k| kid.is_none() || k.kid.is_none()).filter_map(|k| k.get(alg));
        match (fitting.next(), fitting.next(), kid) {
            (Some(key), None, _) => Lookup::Found(key),
            (Some(_), Some(_), None) => Lookup::Ambiguous,
            _ => Lookup::Missing,
        }
    }

    /// Keys from configuration: any key that cannot be used is an error.
    pub(crate) fn from_jwks(jwks: &[Jwk], allowed: &[Algorithm]) -> Result<KeySet, JwtSetupError> {
        let mut keys = Vec::with_capacity(jwks.len());
        for (i, jwk) in jwks.iter().enumerate() {
            let name = || jwk.common.key_id.as_ref().map_or_else(|| format!("keys[{i}]"), |kid| format!("kid {kid:?}"));
            match load_jwk(jwk, allowed) {
                Ok(key) => keys.push(key),
                Err(skip) => return Err(JwtSetupError::BadKey { key: name(), reason: skip.to_string() }),
            }
        }
        Ok(KeySet { keys })
    }

    /// Keys from PEM public keys, each pinned to the algorithm given with it.
    pub(crate) fn from_pem(pems: &[(Algorithm, String)], allowed: &[Algorithm]) -> Result<KeySet, JwtSetupError> {
        let mut keys = Vec::with_capacity(pems.len());
        for (i, (alg, pem)) in pems.iter().enumerate() {
            let bad = |reason: String| JwtSetupError::BadKey { key: format!("pem[{i}] ({alg:?})"), reason };
            let jwk = pem_to_jwk(*alg, pem).map_err(bad)?;
            keys.push(load_jwk(&jwk, allowed).map_err(|skip| bad(skip.to_string()))?);
        }
        Ok(KeySet { keys })
    }

    /// Keys from a fetched JWKS document. Keys that are not for signatures,
    /// fit no allowed algorithm, or are unsupported are skipped, not fatal:
    /// IdPs publish encryption keys and new key types next to the ones used.
    pub(crate) fn from_document(body: &[u8], allowed: &[Algorithm]) -> Result<KeySet, String> {
        #[derive(Deserialize)]
        struct Document<'a> {
            #[serde(borrow)]
            keys: Vec<&'a RawValue>,
        }
        let document: Document<'_> = serde_json::from_slice(body).map_err(|e| format!("not a JWK set: {e}"))?;
        let mut keys = Vec::new();
        for raw in document.keys {
            if keys.len() == MAX_KEYS {
                tracing::warn!(target: "mcp_guard::auth", max = MAX_KEYS, "jwks_too_many_keys_rest_ignored");
                break;
            }
            let jwk: Jwk = match serde_json::from_str(raw.get()) {
                Ok(jwk) => jwk,
                Err(e) => {
                    tracing::debug!(target: "mcp_guard::auth", error = %e, "jwks_key_skipped");
                    continue;
                }
            };
            match load_jwk(&jwk, allowed) {
                Ok(key) => keys.push(key),
                Err(Skip::Unusable(why)) => {
                    tracing::warn!(target: "mcp_guard::auth", kid = ?jwk.common.key_id, reason = %why, "jwks_key_unusable");
                }
                Err(skip) => {
                    tracing::debug!(target: "mcp_guard::auth", kid = ?jwk.common.key_id, reason = %skip, "jwks_key_skipped");
                }
            }
        }
        if keys.is_empty() {
            return Err("the key set holds no key usable with the allowed algorithms".into());
        }
        Ok(KeySet { keys })
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::NotForSignatures => f.write_str("the key is not for signature verification"),
            Skip::NotAllowed => f.write_str("the key fits none of the allowed algorithms"),
            Skip::Unusable(why) => f.write_str(why),
        }
    }
}

fn load_jwk(jwk: &Jwk, allowed: &[Algorithm]) -> Result<VerifyKey, Skip> {
    let common = &jwk.common;
    if !matches!(common.public_key_use, None | Some(PublicKeyUse::Signature))
        || common.key_operations.as_ref().is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err(Skip::NotForSignatures);
    }
    let pinned = match common.key_algorithm {
        None => None,
        Some(alg) => Some(Algorithm::try_from(alg).map_err(|_| Skip::NotForSignatures)?),
    };
    // The algorithms this key may verify: its family's, narrowed by its own
    // `alg` and by the allowed list.
    let candidates = |family: &[Algorithm]| -> Result<Vec<Algorithm>, Skip> {
        if let Some(pin) = pinned
            && !family.contains(&pin)
        {
            return Err(Skip::Unusable(format!("alg {pin:?} does not fit the key type")));
        }
        let algs: Vec<Algorithm> =
            family.iter().copied().filter(|a| allowed.contains(a) && pinned.is_none_or(|p| p == *a)).collect();
        if algs.is_empty() { Err(Skip::NotAllowed) } else { Ok(algs) }
    };
    let invalid = |what: &str| Skip::Unusable(format!("invalid {what} key"));

    let by_alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            let algs = candidates(&RSA_ALGORITHMS)?;
            let n = JWK_B64.decode(&p.n).map_err(|_| invalid("RSA"))?;
            let e = JWK_B64.decode(&p.e).map_err(|_| invalid("RSA"))?;
            // Big-endian integers; some IdPs emit a leading zero aws-lc refuses.
            let (n, e) = (strip_leading_zeros(&n), strip_leading_zeros(&e));
            let bits = n.first().map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
            if !(2048..=8192).contains(&bits) {
                return Err(Skip::Unusable(format!("RSA key of {bits} bits (2048 to 8192 are accepted)")));
            }
            let components = RsaPublicKeyComponents { n, e };
            algs.into_iter()
                .filter_map(|alg| Some((alg, rsa_parameters(alg)?)))
                .map(|(alg, params)| Ok((alg, components.to_parsed_public_key(params).map_err(|_| invalid("RSA"))?)))
                .collect::<Result<Vec<_>, Skip>>()?
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let family = match p.curve {
                EllipticCurve::P256 => [Algorithm::ES256],
                EllipticCurve::P384 => [Algorithm::ES384],
                ref other => return Err(Skip::Unusable(format!("EC curve {other:?} is not supported"))),
            };
            let alg = candidates(&family)?[0];
            let mut point = vec![0x04];
            point.extend(JWK_B64.decode(&p.x).map_err(|_| invalid("EC"))?);
            point.extend(JWK_B64.decode(&p.y).map_err(|_| invalid("EC"))?);
            let params = ecdsa_parameters(alg).ok_or_else(|| invalid("EC"))?;
            vec![(alg, ParsedPublicKey::new(params, &point).map_err(|_| invalid("EC"))?)]
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            if p.curve != EllipticCurve::Ed25519 {
                return Err(Skip::Unusable(format!("OKP curve {:?} is not supported", p.curve)));
            }
            let alg = candidates(&[Algorithm::EdDSA])?[0];
            let x = JWK_B64.decode(&p.x).map_err(|_| invalid("Ed25519"))?;
            vec![(alg, ParsedPublicKey::new(&sig::ED25519, &x).map_err(|_| invalid("Ed25519"))?)]
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err(Skip::Unusable(
                "symmetric (oct) keys are never loaded from a key set; an HMAC secret is configured as hmac_secret"
                    .into(),
            ));
        }
        _ => return Err(Skip::Unusable("unsupported key type".into())),
    };
    Ok(VerifyKey { kid: common.key_id.as_deref().map(Box::from), by_alg })
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// A PEM public key as a JWK pinned to `alg`, so it goes through the same
/// checks as a key from a key set. Only public-key blocks are accepted: a
/// private key or a certificate pasted by mistake is refused by name.
fn pem_to_jwk(alg: Algorithm, pem: &str) -> Result<Jwk, String> {
    let label = pem
        .trim_start()
        .strip_prefix("-----BEGIN ")
        .and_then(|rest| rest.split_once("-----"))
        .map(|(label, _)| label)
        .ok_or("not a PEM block")?;
    if label != "PUBLIC KEY" && label != "RSA PUBLIC KEY" {
        return Err(format!("the PEM block is a {label:?}; a \"PUBLIC KEY\" is required"));
    }
    let key = match alg {
        _ if RSA_ALGORITHMS.contains(&alg) => DecodingKey::from_rsa_pem(pem.as_bytes()),
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()),
        _ => return Err(format!("{alg:?} does not use a public key; an HMAC secret is configured as hmac_secret")),
    }
    .map_err(|e| format!("not a {alg:?} public key: {e}"))?;
    Jwk::from_decoding_key(&key, Some(alg)).map_err(|e| format!("not a {alg:?} public key: {e}"))
}

/// A URL the gateway may fetch keys or metadata from: HTTPS, or plain HTTP
/// to a loopback host (a sidecar IdP or a test).
pub(crate) fn remote_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    check_transport(&url)?;
    Ok(url)
}

fn check_transport(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(format!("{url}: plain http is only allowed to a loopback host; use https")),
        other => Err(format!("{url}: scheme {other:?} is not supported; use https")),
    }
}

fn is_loopback(url: &Url) -> bool {
    // `Url` has already normalised the host (`0x7f.1` is `127.0.0.1`, IPv6 is bracketed).
    let host = url.host_str().unwrap_or_default();
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// The metadata documents to try for `Discovery(text)`: the URL itself if it
/// is a `/.well-known/` URL, else the issuer's locations in the order the MCP
/// authorization spec gives (RFC 8414 path insertion first).
pub(crate) fn discovery_urls(text: &str) -> Result<Vec<Url>, String> {
    let url = remote_url(text)?;
    if url.path().contains("/.well-known/") {
        return Ok(vec![url]);
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{url}: an issuer identifier has no query or fragment (RFC 8414)"));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    let at = |p: String| {
        let mut u = url.clone();
        u.set_path(&p);
        u
    };
    Ok(if path.is_empty() {
        vec![at("/.well-known/oauth-authorization-server".into()), at("/.well-known/openid-configuration".into())]
    } else {
        vec![
            at(format!("/.well-known/oauth-authorization-server{path}")),
            at(format!("/.well-known/openid-configuration{path}")),
            at(format!("{path}/.well-known/openid-configuration")),
        ]
    })
}

/// Where a remote key set comes from.
#[derive(Debug)]
pub(crate) enum Remote {
    /// A configured `jwks_uri`.
    Jwks(Url),
    /// Metadata documents, tried in order; the first found names `jwks_uri`.
    Discovery(Vec<Url>),
}

/// The keys held, as of one fetch. Replaced whole, never edited.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) keys: KeySet,
    fetched_at: Option<Instant>,
    generation: u64,
}

#[derive(Debug, Default)]
struct FetchState {
    /// The `jwks_uri` discovery found; forgotten when fetching it fails.
    jwks_uri: Option<Url>,
    last_error: Option<String>,
}

/// A remote key set, refreshed as the module docs describe.
#[derive(Debug)]
pub(crate) struct JwksCache {
    remote: Remote,
    issuer: String,
    algorithms: Vec<Algorithm>,
    client: reqwest::Client,
    current: RwLock<Arc<Snapshot>>,
    /// When the last fetch started: the rate bound.
    last_attempt: Mutex<Option<Instant>>,
    /// Held for the whole of a fetch: callers queue here (single flight).
    fetch: tokio::sync::Mutex<FetchState>,
    background_pending: AtomicBool,
    #[cfg(test)]
    clock_offset: Mutex<Duration>,
}

impl JwksCache {
    /// A cache that has fetched nothing yet: construction does no network
    /// I/O, so the gateway starts while its IdP is briefly down.
    pub(crate) fn new(remote: Remote, issuer: &str, algorithms: &[Algorithm]) -> Result<Self, JwtSetupError> {
        let policy = redirect::Policy::custom(|attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if let Err(e) = check_transport(attempt.url()) {
                attempt.error(e)
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(policy)
            .user_agent(concat!("mcp-guard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| JwtSetupError::HttpClient(error_chain(&e)))?;
        Ok(JwksCache {
            remote,
            issuer: issuer.to_owned(),
            algorithms: algorithms.to_vec(),
            client,
            current: RwLock::new(Arc::new(Snapshot { keys: KeySet::default(), fetched_at: None, generation: 0 })),
            last_attempt: Mutex::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            background_pending: AtomicBool::new(false),
            #[cfg(test)]
            clock_offset: Mutex::new(Duration::ZERO),
        })
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// True when `snapshot` is older than the TTL.
    pub(crate) fn is_stale(&self, snapshot: &Snapshot) -> bool {
        snapshot.fetched_at.is_none_or(|at| self.now().saturating_duration_since(at) >= CACHE_TTL)
    }

    fn refresh_permitted(&self, now: Instant) -> bool {
        let last = *self.last_attempt.lock().unwrap_or_else(PoisonError::into_inner);
        last.is_none_or(|at| now.saturating_duration_since(at) >= MIN_REFRESH_INTERVAL)
    }

    /// Starts a refresh on the current Tokio runtime and returns at once; at
    /// most one is pending, and none starts inside the rate bound.
    pub(crate) fn refresh_in_background(self: &Arc<Self>, seen: &Snapshot) {
        if !self.refresh_permitted(self.now()) || self.background_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        struct Pending(Arc<JwksCache>);
        impl Drop for Pending {
            fn drop(&mut self) {
                self.0.background_pending.store(false, Ordering::Release);
            }
        }
        let pending = Pending(Arc::clone(self));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let generation = seen.generation;
        runtime.spawn(async move {
            // A failure is logged inside, and the keys held stay in use.
            let _ = pending.0.refresh_after(generation).await;
        });
    }

    /// Fetches the key set unless another caller did since `seen` was read
    /// or the rate bound forbids it, and returns the keys now held. Err only
    /// when no keys are held at all.
    pub(crate) async fn refresh(&self, seen: &Snapshot) -> Result<Arc<Snapshot>, JwtError> {
        self.refresh_after(seen.generation).await
    }

    async fn refresh_after(&self, seen: u64) -> Result<Arc<Snapshot>, JwtError> {
        let mut state = self.fetch.lock().await;
        let current = self.snapshot();
        if current.generation != seen {
            return Ok(current);
        }
        {
            let now = self.now();
            if !self.refresh_permitted(now) {
                return held_or_unavailable(current, &state);
            }
            *self.last_attempt.lock().unwrap_or_else(PoisonError::into_inner) = Some(now);
        }
        match self.fetch_keys(&mut state).await {
            Ok(keys) => {
                tracing::info!(target: "mcp_guard::auth", keys = keys.len(), "jwks_refreshed");
                state.last_error = None;
                let next =
                    Arc::new(Snapshot { keys, fetched_at: Some(self.now()), generation: current.generation + 1 });
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&next);
                Ok(next)
            }
            Err(error) => {
                state.jwks_uri = None;
                if current.keys.is_empty() {
                    tracing::warn!(target: "mcp_guard::auth", %error, "jwks_unavailable");
                } else {
                    tracing::warn!(target: "mcp_guard::auth", %error, keys = current.keys.len(), "jwks_refresh_failed_keeping_cached_keys");
                }
                state.last_error = Some(error);
                held_or_unavailable(current, &state)
            }
        }
    }

    async fn fetch_keys(&self, state: &mut FetchState) -> Result<KeySet, String> {
        let url = match (&self.remote, &state.jwks_uri) {
            (Remote::Jwks(url), _) | (Remote::Discovery(_), Some(url)) => url.clone(),
            (Remote::Discovery(candidates), None) => {
                let url = self.discover(candidates).await?;
                state.jwks_uri = Some(url.clone());
                url
            }
        };
        let body = self.get(&url).await.map_err(|e| format!("{url}: {e}"))?;
        KeySet::from_document(&body, &self.algorithms).map_err(|e| format!("{url}: {e}"))
    }

    /// The `jwks_uri` of the first metadata document found. A missing
    /// document (an HTTP error status) moves on to the next location; an
    /// unreachable host or a document for another issuer stops the search.
    async fn discover(&self, candidates: &[Url]) -> Result<Url, String> {
        #[derive(Deserialize)]
        struct Metadata {
            issuer: Option<String>,
            jwks_uri: Option<String>,
        }
        let mut misses = Vec::new();
        for url in candidates {
            let body = match self.get(url).await {
                Ok(body) => body,
                Err(Fetch::Status(status)) => {
                    misses.push(format!("{url}: HTTP {status}"));
                    continue;
                }
                Err(e) => return Err(format!("{url}: {e}")),
            };
            let metadata: Metadata = serde_json::from_slice(&body)
                .map_err(|e| format!("{url}: not an authorization server metadata document: {e}"))?;
            if metadata.issuer.as_deref() != Some(self.issuer.as_str()) {
                tracing::error!(target: "mcp_guard::auth", metadata = %url, found = ?metadata.issuer, expected = %self.issuer, "discovery_issuer_mismatch");
                return Err(format!(
                    "{url} names issuer {:?}, not the configured {:?}; refused (mix-up protection)",
                    metadata.issuer, self.issuer
                ));
            }
            let jwks_uri = metadata.jwks_uri.ok_or_else(|| format!("{url}: the metadata has no jwks_uri"))?;
            return remote_url(&jwks_uri).map_err(|e| format!("{url}: jwks_uri refused: {e}"));
        }
        Err(format!("no authorization server metadata found ({})", misses.join("; ")))
    }

    /// GETs a JSON document, reading at most [`MAX_DOCUMENT_BYTES`].
    async fn get(&self, url: &Url) -> Result<Vec<u8>, Fetch> {
        let mut response = self
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json, application/jwk-set+json")
            .send()
            .await
            .map_err(|e| Fetch::Transport(error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(Fetch::Status(response.status().as_u16()));
        }
        let declared = response.content_length().map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        if declared.is_some_and(|n| n > MAX_DOCUMENT_BYTES) {
            return Err(Fetch::TooLarge);
        }
        let mut body = Vec::with_capacity(declared.unwrap_or(8 * 1024));
        while let Some(chunk) = response.chunk().await.map_err(|e| Fetch::Transport(error_chain(&e)))? {
            if chunk.len() > MAX_DOCUMENT_BYTES - body.len() {
                return Err(Fetch::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn now(&self) -> Instant {
        #[cfg(test)]
        return Instant::now() + *self.clock_offset.lock().unwrap_or_else(PoisonError::into_inner);
        #[cfg(not(test))]
        Instant::now()
    }

    /// Moves this cache's clock forward, as if `by` had passed.
    #[cfg(test)]
    pub(crate) fn advance_clock(&self, by: Duration) {
        *self.clock_offset.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }
}

fn held_or_unavailable(current: Arc<Snapshot>, state: &FetchState) -> Result<Arc<Snapshot>, JwtError> {
    if current.keys.is_empty() {
        let why = state.last_error.clone().unwrap_or_else(|| "no key set fetched yet".into());
        return Err(JwtError::KeysUnavailable(why));
    }
    Ok(current)
}

/// Why a GET failed.
enum Fetch {
    Status(u16),
    TooLarge,
    Transport(String),
}

impl fmt::Display for Fetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fetch::Status(status) => write!(f, "HTTP {status}"),
            Fetch::TooLarge => write!(f, "the document exceeds {MAX_DOCUMENT_BYTES} bytes"),
            Fetch::Transport(e) => f.write_str(e),
        }
    }
}

/// reqwest's `Display` omits the cause ("error sending request"); the log needs it.
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
