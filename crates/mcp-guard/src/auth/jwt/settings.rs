//! The verifier's public types: its settings ([`JwtSettings`], [`KeySource`],
//! [`HmacSecret`]), what a verified token yields ([`VerifiedToken`]), and the
//! errors of setup ([`JwtSetupError`]) and verification ([`JwtError`]).

use std::{fmt, time::Duration};

use jsonwebtoken::{Algorithm, jwk::Jwk};

/// How the gateway checks bearer tokens.
#[derive(Clone, Debug)]
pub struct JwtSettings {
    /// The required `iss`, compared exactly.
    pub issuer: String,
    /// Accepted `aud` values (this resource's URI, RFC 8707); a token must
    /// name at least one. Must not be empty.
    pub audiences: Vec<String>,
    /// Where the verification keys come from.
    pub keys: KeySource,
    /// Accepted header `alg` values. Default [`JwtSettings::DEFAULT_ALGORITHMS`].
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, whole seconds, at most 5 minutes.
    /// Default [`JwtSettings::DEFAULT_LEEWAY`].
    pub leeway: Duration,
    /// The shared secret for `HS256/384/512`. HMAC algorithms may be listed
    /// only when this is set, and this is then the only key they verify with.
    pub hmac_secret: Option<HmacSecret>,
}

impl JwtSettings {
    /// Asymmetric algorithms only.
    pub const DEFAULT_ALGORITHMS: [Algorithm; 7] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    /// One minute of clock skew.
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

    /// Settings with the default algorithms and leeway, and no HMAC secret.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>, keys: KeySource) -> Self {
        JwtSettings {
            issuer: issuer.into(),
            audiences,
            keys,
            algorithms: Self::DEFAULT_ALGORITHMS.to_vec(),
            leeway: Self::DEFAULT_LEEWAY,
            hmac_secret: None,
        }
    }
}

/// Where verification keys come from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// A JWKS URL (https, or http to a loopback host), fetched on first use
    /// and kept fresh.
    JwksUrl(String),
    /// The issuer identifier, or the URL of its metadata document (anything
    /// with `/.well-known/` in the path): `jwks_uri` is learned from RFC 8414
    /// or OpenID Connect Discovery metadata whose `issuer` must equal
    /// [`JwtSettings::issuer`].
    Discovery(String),
    /// Fixed public keys.
    Static(Vec<Jwk>),
    /// Fixed public keys as PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`), each
    /// usable only with the algorithm given with it.
    Pem(Vec<(Algorithm, String)>),
}

/// The HMAC secret. Never printed: `Debug` and `Display` show `[redacted]`.
/// The bytes are overwritten when it is dropped.
#[derive(Clone)]
pub struct HmacSecret(pub(super) Vec<u8>);

impl HmacSecret {
    /// Wraps the secret bytes. Its length is checked against the HMAC
    /// algorithms allowed (at least the hash size, RFC 7518 §3.2) when the
    /// verifier is built.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        HmacSecret(secret.into())
    }
}

impl fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for HmacSecret {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// What a verified token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `sub`.
    pub subject: String,
    /// From `scope`, else `scp`; in token order.
    pub scopes: Vec<String>,
    /// `client_id` (RFC 9068), else `azp`.
    pub client_id: Option<String>,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a well-formed JWS compact token with a JSON header and claims, a
    /// required claim (`exp`) is missing, or a header says it is not an
    /// access token (`crit`, a foreign `typ`).
    #[error("malformed token")]
    Malformed,
    /// The header `alg` is not allowed, or does not fit the key its `kid` names.
    #[error("token algorithm not allowed")]
    AlgorithmNotAllowed,
    /// No key with the token's `kid` (after the permitted refresh), or no
    /// `kid` and not exactly one key for its `alg`.
    #[error("token signed with an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad token signature")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `iss` is missing or not the configured issuer.
    #[error("token from the wrong issuer")]
    WrongIssuer,
    /// `aud` is missing or names none of the configured audiences.
    #[error("token for another audience")]
    WrongAudience,
    /// `sub` is missing or empty.
    #[error("token has no subject")]
    MissingSubject,
    /// The key set cannot be fetched and no keys are held: the gateway's
    /// problem, not the caller's.
    #[error("verification keys unavailable: {0}")]
    KeysUnavailable(String),
}

impl JwtError {
    /// True when the gateway, not the token, is at fault: answer 503, not 401.
    pub fn keys_unavailable(&self) -> bool {
        matches!(self, JwtError::KeysUnavailable(_))
    }

    /// A stable snake_case name for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::Malformed => "token_malformed",
            JwtError::AlgorithmNotAllowed => "algorithm_not_allowed",
            JwtError::UnknownKey => "unknown_key",
            JwtError::BadSignature => "bad_signature",
            JwtError::Expired => "token_expired",
            JwtError::NotYetValid => "token_not_yet_valid",
            JwtError::IssuedInFuture => "token_issued_in_future",
            JwtError::WrongIssuer => "wrong_issuer",
            JwtError::WrongAudience => "wrong_audience",
            JwtError::MissingSubject => "missing_subject",
            JwtError::KeysUnavailable(_) => "keys_unavailable",
        }
    }
}

/// Settings the verifier cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    /// `issuer` is empty.
    #[error("jwt: the issuer must not be empty")]
    NoIssuer,
    /// `audiences` is empty or holds an empty string.
    #[error("jwt: at least one audience (this resource's URI) is required, and none may be empty")]
    NoAudience,
    /// `algorithms` is empty.
    #[error("jwt: no algorithm is allowed")]
    NoAlgorithms,
    /// An HMAC algorithm is allowed without an `hmac_secret`.
    #[error("jwt: {0:?} is allowed but no hmac_secret is configured")]
    HmacWithoutSecret(Algorithm),
    /// An `hmac_secret` is set but no HMAC algorithm is allowed.
    #[error("jwt: an hmac_secret is configured but none of HS256, HS384, HS512 is in algorithms")]
    SecretWithoutHmac,
    /// The `hmac_secret` is shorter than the hash of an allowed algorithm.
    #[error("jwt: the hmac_secret has {len} bytes; {alg:?} needs at least {min}")]
    WeakSecret {
        /// The algorithm.
        alg: Algorithm,
        /// The secret's length.
        len: usize,
        /// The least length accepted.
        min: usize,
    },
    /// `leeway` is over 5 minutes.
    #[error("jwt: a leeway of {0:?} is too large (at most 5 minutes)")]
    LeewayTooLarge(Duration),
    /// A JWKS or discovery URL is invalid or not HTTPS (plain HTTP is allowed
    /// only to a loopback host).
    #[error("jwt: {0}")]
    Url(String),
    /// A configured key cannot be used.
    #[error("jwt: key {key}: {reason}")]
    BadKey {
        /// Which key (`kid`, or position).
        key: String,
        /// Why not.
        reason: String,
    },
    /// No static key and no HMAC secret: no token could ever verify.
    #[error("jwt: no verification key is configured")]
    NoKeys,
    /// The HTTP client for the key set could not be built.
    #[error("jwt: HTTP client: {0}")]
    HttpClient(String),
}
