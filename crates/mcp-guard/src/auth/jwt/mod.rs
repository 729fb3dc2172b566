//! OAuth 2.1 access tokens (JWT): the gateway as a resource server.
//!
//! The MCP authorization spec makes the gateway an OAuth 2.1 resource server,
//! so a bearer token is accepted only when the configured authorization
//! server (AS) signed it, for this resource, and it is current. Every rule
//! below closes a known way to get a token accepted that should not be:
//!
//! - **Algorithms.** Asymmetric only by default; `none` never (it does not
//!   even parse as an algorithm). `HS256/384/512` only when an `hmac_secret`
//!   is configured, and then verified with that secret alone: public keys are
//!   held as parsed aws-lc keys, never as bytes, so an RSA/EC/OKP key cannot
//!   be used as an HMAC secret (the RS256 to HS256 confusion attack). The
//!   header `alg` must be allowed and fit the key's type, and a JWK that
//!   states its `alg` verifies that algorithm only.
//! - **The token never picks its key.** `jku`, `x5u`, `jwk` and `x5c` header
//!   parameters are ignored; keys come only from configuration or the
//!   configured IdP (see [`super::jwks`]). `crit` is refused: no extension is
//!   understood (RFC 7515 §4.1.11). A `typ` of another explicitly typed JWT
//!   (`logout+jwt`, `dpop+jwt`, any `*+jwt` but `at+jwt`) is refused, so a
//!   different kind of token signed by the same AS cannot pass as an access
//!   token (RFC 8725 §3.11); plain `JWT` and no `typ` are accepted, as most
//!   IdPs still send them.
//! - **Signature first.** No claim is read before the signature verifies, so
//!   a forged token learns nothing beyond `bad_signature`.
//! - **Claims.** `iss` must equal the configured issuer exactly. `aud` (a
//!   string or an array) must contain one of the configured audiences: the
//!   resource's URI (RFC 8707), so a token issued for another resource server
//!   is refused (no token passthrough). `exp` is required; `exp`, `nbf` and
//!   `iat` are checked with the leeway (a token issued more than the leeway in
//!   the future is refused). Duplicate claim names are refused.
//! - **`sub` is required; there is no fallback to `client_id`.** RFC 9068
//!   makes `sub` mandatory and has the AS put the client's identifier there
//!   for client-credentials grants, where only the AS can make sure a client
//!   id never equals a user's subject (RFC 9068 §5). Falling back would let a
//!   client registered as `alice` (dynamic client registration is common in
//!   MCP) act as the user `alice` wherever policy keys on the subject. A
//!   token without `sub` is `MissingSubject`; `client_id` (else `azp`) is
//!   still reported separately.
//! - **Scopes** come from `scope` (space-delimited, RFC 9068) or, when that is
//!   absent, from `scp` (array or string, as Entra ID and Okta send it).
//!   Deciding which scopes a call needs is policy's job, not this module's.
//!
//! Tokens longer than 16 KiB are refused before decoding. Nothing here logs a
//! token or the HMAC secret; [`JwtError::reason`] is what callers log.

use std::{borrow::Cow, fmt, marker::PhantomData, sync::Arc, time::Duration};

use aws_lc_rs::{hmac, signature::ParsedPublicKey};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::Algorithm;
use serde::{
    Deserialize, Deserializer,
    de::{self, IgnoredAny, SeqAccess, Visitor},
};

pub use self::settings::{HmacSecret, JwtError, JwtSettings, JwtSetupError, KeySource, VerifiedToken};
use super::jwks::{JwksCache, KeySet, Lookup, Remote, discovery_urls, remote_url};

mod cache;
mod settings;
#[cfg(test)]
mod tests;

/// Longest token accepted; real access tokens are well under 8 KiB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Largest accepted leeway: beyond a few minutes `exp` stops meaning much.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Verifies access tokens. Cheap to clone; clones share one key cache.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway_secs: u64,
    hmac: Vec<(Algorithm, hmac::Key)>,
    keys: Keys,
    verified: cache::VerifiedCache,
}

enum Keys {
    Fixed(KeySet),
    Remote(Arc<JwksCache>),
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        let keys = match &inner.keys {
            Keys::Fixed(set) => format!("{} static", set.len()),
            Keys::Remote(_) => "remote".to_owned(),
        };
        f.debug_struct("JwtVerifier")
            .field("issuer", &inner.issuer)
            .field("audiences", &inner.audiences)
            .field("algorithms", &inner.algorithms)
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Checks the settings and loads static keys. Does no network I/O: a
    /// remote key set is fetched by the first `verify`, so the gateway starts
    /// even while its IdP is briefly down.
    pub fn new(settings: JwtSettings) -> Result<Self, JwtSetupError> {
        let JwtSettings { issuer, audiences, keys, algorithms: listed, leeway, hmac_secret } = settings;
        if issuer.is_empty() {
            return Err(JwtSetupError::NoIssuer);
        }
        if audiences.is_empty() || audiences.iter().any(String::is_empty) {
            return Err(JwtSetupError::NoAudience);
        }
        let mut algorithms = Vec::with_capacity(listed.len());
        for alg in listed {
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        if algorithms.is_empty() {
            return Err(JwtSetupError::NoAlgorithms);
        }
        if leeway > MAX_LEEWAY {
            return Err(JwtSetupError::LeewayTooLarge(leeway));
        }
        let hmac = hmac_keys(&algorithms, hmac_secret.as_ref())?;
        let keys = match keys {
            KeySource::JwksUrl(url) => {
                let remote = Remote::Jwks(remote_url(&url).map_err(JwtSetupError::Url)?);
                Keys::Remote(Arc::new(JwksCache::new(remote, &issuer, &algorithms)?))
            }
            KeySource::Discovery(text) => {
                let remote = Remote::Discovery(discovery_urls(&text).map_err(JwtSetupError::Url)?);
                Keys::Remote(Arc::new(JwksCache::new(remote, &issuer, &algorithms)?))
            }
            KeySource::Static(jwks) => Keys::Fixed(KeySet::from_jwks(&jwks, &algorithms)?),
            KeySource::Pem(pems) => Keys::Fixed(KeySet::from_pem(&pems, &algorithms)?),
        };
        if let Keys::Fixed(set) = &keys
            && set.is_empty()
            && hmac.is_empty()
        {
            return Err(JwtSetupError::NoKeys);
        }
        let leeway_secs = leeway.as_secs();
        let verified = cache::VerifiedCache::default();
        Ok(JwtVerifier { inner: Arc::new(Inner { issuer, audiences, algorithms, leeway_secs, hmac, keys, verified }) })
    }

    /// Verifies a bearer token (without the `Bearer ` prefix). Waits on the
    /// network only when the key it needs is not cached and a refresh is
    /// permitted (see [`super::jwks`]).
    ///
    /// A token verified in the last minute (and not expired) is accepted
    /// from the cache without a new signature check (see `cache.rs`).
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, JwtError> {
        let now = unix_now();
        let key = cache::key(token);
        // Keys fetched since a token was verified may have withdrawn its key.
        let snapshot = match &self.inner.keys {
            Keys::Fixed(_) => None,
            Keys::Remote(cache) => Some((cache, cache.snapshot())),
        };
        let generation = snapshot.as_ref().map_or(0, |(_, s)| s.generation());
        if let Some(verified) = self.inner.verified.get(&key, generation, now) {
            // A hit skips the key lookup, so it also does its refresh duty.
            if let Some((cache, snapshot)) = &snapshot
                && cache.is_stale(snapshot)
            {
                cache.refresh_in_background(snapshot);
            }
            return Ok(verified);
        }
        let verified = self.verify_uncached(token).await?;
        self.inner.verified.insert(key, &verified, generation, now);
        Ok(verified)
    }

    /// [`verify`](Self::verify) without the cache of recently verified
    /// tokens: always checks the signature against the current keys.
    pub async fn verify_uncached(&self, token: &str) -> Result<VerifiedToken, JwtError> {
        let token = Compact::parse(token)?;
        let inner = &*self.inner;
        let alg = token.header.alg;
        if !inner.algorithms.contains(&alg) {
            return Err(JwtError::AlgorithmNotAllowed);
        }
        if is_hmac(alg) {
            let (_, key) = inner.hmac.iter().find(|(a, _)| *a == alg).ok_or(JwtError::AlgorithmNotAllowed)?;
            let signature = decode_segment(token.signature)?;
            hmac::verify(key, token.signing_input.as_bytes(), &signature).map_err(|_| JwtError::BadSignature)?;
        } else {
            let kid = token.header.kid.as_deref();
            match &inner.keys {
                Keys::Fixed(set) => check_signature(set.lookup(kid, alg), &token)?,
                Keys::Remote(cache) => {
                    let snapshot = cache.snapshot();
                    match snapshot.keys.lookup(kid, alg) {
                        Lookup::Missing => {
                            let snapshot = cache.refresh(&snapshot).await?;
                            check_signature(snapshot.keys.lookup(kid, alg), &token)?;
                        }
                        found => {
                            if cache.is_stale(&snapshot) {
                                cache.refresh_in_background(&snapshot);
                            }
                            check_signature(found, &token)?;
                        }
                    }
                }
            }
        }
        inner.check_claims(&decode_segment(token.payload)?, unix_now())
    }
}

impl Inner {
    fn check_claims(&self, payload: &[u8], now: u64) -> Result<VerifiedToken, JwtError> {
        if payload.first() != Some(&b'{') {
            return Err(JwtError::Malformed);
        }
        let claims: Claims<'_> = serde_json::from_slice(payload).map_err(|_| JwtError::Malformed)?;
        if claims.iss.as_ref().map(|t| &*t.0) != Some(self.issuer.as_str()) {
            return Err(JwtError::WrongIssuer);
        }
        let ours = |aud: &Cow<'_, str>| self.audiences.iter().any(|a| a == aud);
        let audience_ok = match &claims.aud {
            Some(OneOrMany::One(aud)) => ours(aud),
            Some(OneOrMany::Many(auds)) => auds.iter().any(ours),
            None => false,
        };
        if !audience_ok {
            return Err(JwtError::WrongAudience);
        }
        let expires_at = claims.exp.ok_or(JwtError::Malformed)?.0;
        if now >= expires_at.saturating_add(self.leeway_secs) {
            return Err(JwtError::Expired);
        }
        let future = |t: Option<NumericDate>| t.is_some_and(|t| t.0 > now.saturating_add(self.leeway_secs));
        if future(claims.nbf) {
            return Err(JwtError::NotYetValid);
        }
        if future(claims.iat) {
            return Err(JwtError::IssuedInFuture);
        }
        let subject = claims.sub.map(|t| t.0).filter(|s| !s.is_empty()).ok_or(JwtError::MissingSubject)?;
        let scopes = match (claims.scope, claims.scp) {
            (Some(Text(scope)), _) | (None, Some(OneOrMany::One(scope))) => split_scopes(&scope),
            (None, Some(OneOrMany::Many(list))) => {
                list.into_iter().filter(|s| !s.is_empty()).map(Cow::into_owned).collect()
            }
            (None, None) => Vec::new(),
        };
        Ok(VerifiedToken {
            subject: subject.into_owned(),
            scopes,
            client_id: claims.client_id.or(claims.azp).map(|t| t.0.into_owned()),
            expires_at,
        })
    }
}

fn split_scopes(scope: &str) -> Vec<String> {
    scope.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn check_signature(lookup: Lookup<'_>, token: &Compact<'_>) -> Result<(), JwtError> {
    let key: &ParsedPublicKey = match lookup {
        Lookup::Found(key) => key,
        Lookup::WrongAlgorithm => return Err(JwtError::AlgorithmNotAllowed),
        Lookup::Missing | Lookup::Ambiguous => return Err(JwtError::UnknownKey),
    };
    let signature = decode_segment(token.signature)?;
    key.verify_sig(token.signing_input.as_bytes(), &signature).map_err(|_| JwtError::BadSignature)
}

fn hmac_keys(
    algorithms: &[Algorithm],
    secret: Option<&HmacSecret>,
) -> Result<Vec<(Algorithm, hmac::Key)>, JwtSetupError> {
    let listed = algorithms.iter().copied().filter(|a| is_hmac(*a));
    let Some(secret) = secret else {
        return match listed.clone().next() {
            Some(alg) => Err(JwtSetupError::HmacWithoutSecret(alg)),
            None => Ok(Vec::new()),
        };
    };
    let keys = listed
        .map(|alg| {
            let (hash, min) = match alg {
                Algorithm::HS256 => (hmac::HMAC_SHA256, 32),
                Algorithm::HS384 => (hmac::HMAC_SHA384, 48),
                _ => (hmac::HMAC_SHA512, 64),
            };
            let len = secret.0.len();
            if len < min {
                return Err(JwtSetupError::WeakSecret { alg, len, min });
            }
            Ok((alg, hmac::Key::new(hash, &secret.0)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(JwtSetupError::SecretWithoutHmac);
    }
    Ok(keys)
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Segments are unpadded base64url (RFC 7515); anything else is malformed.
fn decode_segment(segment: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| JwtError::Malformed)
}

/// A JWS compact token split into its parts, with its header read.
struct Compact<'t> {
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'t str,
    payload: &'t str,
    signature: &'t str,
    header: Header,
}

struct Header {
    alg: Algorithm,
    kid: Option<Box<str>>,
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Text<'a>,
    #[serde(borrow, default)]
    kid: Option<Text<'a>>,
    #[serde(borrow, default)]
    typ: Option<Text<'a>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

impl<'t> Compact<'t> {
    fn parse(token: &'t str) -> Result<Self, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        if header.is_empty() || payload.is_empty() {
            return Err(JwtError::Malformed);
        }
        let signing_input = &token[..header.len() + 1 + payload.len()];
        let json = decode_segment(header)?;
        if json.first() != Some(&b'{') {
            return Err(JwtError::Malformed);
        }
        let raw: RawHeader<'_> = serde_json::from_slice(&json).map_err(|_| JwtError::Malformed)?;
        if raw.crit.is_some() || raw.typ.is_some_and(|typ| !access_token_typ(&typ.0)) {
            return Err(JwtError::Malformed);
        }
        // `none`, lowercase spellings and unknown names do not parse.
        let alg = raw.alg.0.parse::<Algorithm>().map_err(|_| JwtError::AlgorithmNotAllowed)?;
        let header = Header { alg, kid: raw.kid.map(|kid| Box::from(&*kid.0)) };
        Ok(Compact { signing_input, payload, signature, header })
    }
}

/// False for a `typ` naming another explicitly typed JWT (`*+jwt` other than
/// `at+jwt`, with or without `application/`), case-insensitively.
fn access_token_typ(typ: &str) -> bool {
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    let explicit = bare.len() > 4 && bare.get(bare.len() - 4..).is_some_and(|s| s.eq_ignore_ascii_case("+jwt"));
    !explicit || bare.eq_ignore_ascii_case("at+jwt")
}

/// The claims read; everything else in the payload is ignored.
#[derive(Deserialize)]
struct Claims<'a> {
    #[serde(borrow, default)]
    iss: Option<Text<'a>>,
    #[serde(borrow, default)]
    sub: Option<Text<'a>>,
    #[serde(borrow, default)]
    aud: Option<OneOrMany<'a>>,
    #[serde(default)]
    exp: Option<NumericDate>,
    #[serde(default)]
    nbf: Option<NumericDate>,
    #[serde(default)]
    iat: Option<NumericDate>,
    #[serde(borrow, default)]
    scope: Option<Text<'a>>,
    #[serde(borrow, default)]
    scp: Option<OneOrMany<'a>>,
    #[serde(borrow, default)]
    client_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    azp: Option<Text<'a>>,
}

/// A JSON string, borrowed from the decoded segment unless it has escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// `aud` and `scp`: a string or an array of strings.
enum OneOrMany<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for OneOrMany<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for OneOrManyVisitor<'a> {
            type Value = OneOrMany<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
                while let Some(Text(item)) = seq.next_element::<Text<'de>>()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor(PhantomData))
    }
}

/// RFC 7519 NumericDate: seconds since the epoch, possibly fractional
/// (truncated); negative or non-numeric values are malformed.
#[derive(Clone, Copy)]
struct NumericDate(u64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumericDateVisitor;
        impl Visitor<'_> for NumericDateVisitor {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(NumericDate(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v).map(NumericDate).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                if v.is_finite() && (0.0..1.8e19).contains(&v) {
                    Ok(NumericDate(v as u64))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
        }
        deserializer.deserialize_any(NumericDateVisitor)
    }
}
