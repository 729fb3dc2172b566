//! `[auth]`: API keys, a JWT issuer, the scopes they need, and the
//! credentials the gateway itself presents upstream.

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;

use super::{ConfigError, invalid, parse_duration};
use crate::{
    auth::api_key::{self, ApiKeys},
    secret::Secret,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAuth {
    resource: Option<String>,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    required_scopes: Vec<String>,
    method_scopes: BTreeMap<String, Vec<String>>,
    tool_scopes: BTreeMap<String, Vec<String>>,
    api_keys: Vec<RawApiKey>,
    jwt: Option<RawJwt>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiKey {
    name: String,
    hash: String,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    issuer: String,
    #[serde(default)]
    audiences: Vec<String>,
    jwks_uri: Option<String>,
    #[serde(default)]
    keys: Vec<RawPemKey>,
    algorithms: Option<Vec<String>>,
    leeway: Option<String>,
    hmac_secret_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPemKey {
    alg: String,
    pem_file: String,
}

/// A header value taken from the environment or a file, never from a client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecretSource {
    env: Option<String>,
    file: Option<String>,
}

/// Validated authentication settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthConfig {
    /// This gateway's canonical resource URL (RFC 8707), e.g.
    /// `https://mcp.example.com/mcp`. Default, on a loopback listener:
    /// `http://127.0.0.1:<port><path>`.
    pub resource: Option<String>,
    /// Authorization servers advertised in the RFC 9728 metadata (default:
    /// the JWT issuer).
    pub authorization_servers: Vec<String>,
    /// Scopes advertised in the metadata and in challenges.
    pub scopes_supported: Vec<String>,
    /// Scopes every request needs.
    pub required_scopes: Vec<String>,
    /// Extra scopes per JSON-RPC method.
    pub method_scopes: Vec<(String, Vec<String>)>,
    /// Extra scopes per tool.
    pub tool_scopes: Vec<(String, Vec<String>)>,
    /// Hashed API keys.
    pub api_keys: ApiKeys,
    /// The OAuth 2.1 issuer whose JWT access tokens are accepted.
    pub jwt: Option<JwtConfig>,
}

/// Validated JWT settings (turned into a verifier once the port is known).
#[derive(Clone, Debug, PartialEq)]
pub struct JwtConfig {
    /// Required `iss`.
    pub issuer: String,
    /// Accepted `aud` values; default: the resource URL.
    pub audiences: Vec<String>,
    /// Where the keys are; default: discovered from the issuer.
    pub jwks_uri: Option<String>,
    /// Static keys (offline setups): algorithm and PEM text.
    pub pem_keys: Vec<(String, String)>,
    /// Accepted algorithms; default RS256/384/512, PS256, ES256/384, EdDSA.
    pub algorithms: Option<Vec<String>>,
    /// Clock leeway for `exp`, `nbf`, `iat`. Default 60 s, at most 5 min.
    pub leeway: Duration,
    /// Shared secret enabling HS256/384/512; off unless configured.
    pub hmac_secret: Option<Secret>,
}

fn scope_lists(key: &str, map: BTreeMap<String, Vec<String>>) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
    for (name, scopes) in &map {
        if scopes.iter().any(|s| s.is_empty() || s.contains([' ', '"', '\\'])) {
            return Err(invalid(format!("{key}.\"{name}\""), "scopes are single tokens without spaces or quotes"));
        }
    }
    Ok(map.into_iter().collect())
}

pub(crate) fn secret_from(
    key: &str,
    source: &RawSecretSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, ConfigError> {
    match (&source.env, &source.file) {
        (Some(var), None) => {
            env(var).map(Secret::new).ok_or_else(|| invalid(key, format!("environment variable `{var}` is not set")))
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| Secret::new(s.trim_end_matches(['\n', '\r'])))
            .map_err(|e| invalid(key, format!("cannot read `{path}`: {e}"))),
        _ => Err(invalid(key, "set exactly one of `env` (a variable name) or `file` (a path)")),
    }
}

/// Upstream credential headers: name → value from env or file.
pub(crate) fn upstream_headers(
    raw: BTreeMap<String, RawSecretSource>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(http::HeaderName, Secret)>, ConfigError> {
    let mut out = Vec::new();
    for (name, source) in raw {
        let key = format!("upstream.headers.\"{name}\"");
        let header =
            http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid(&key, "is not a valid header name"))?;
        let value = secret_from(&key, &source, env)?;
        if http::HeaderValue::from_str(value.expose()).is_err() {
            return Err(invalid(&key, "the value is not a valid header value"));
        }
        out.push((header, value));
    }
    Ok(out)
}

impl RawAuth {
    /// `None` when no authenticator is configured.
    pub(crate) fn validate(self, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<AuthConfig>, ConfigError> {
        let mut api_keys = ApiKeys::default();
        for (i, key) in self.api_keys.iter().enumerate() {
            if key.name.trim().is_empty() {
                return Err(invalid(format!("auth.api_keys[{i}].name"), "must name the principal, e.g. \"ci-bot\""));
            }
            api_keys
                .add(&key.hash, &key.name, key.scopes.clone())
                .map_err(|m| invalid(format!("auth.api_keys[{i}].hash"), m))?;
        }
        let jwt = match self.jwt {
            None => None,
            Some(jwt) => Some(validate_jwt(jwt, env)?),
        };
        let has_authenticator = !api_keys.is_empty() || jwt.is_some();
        let uses_auth =
            !self.required_scopes.is_empty() || !self.method_scopes.is_empty() || !self.tool_scopes.is_empty();
        if !has_authenticator {
            if uses_auth {
                return Err(invalid(
                    "auth",
                    "scopes are required but nothing authenticates: add [[auth.api_keys]] or [auth.jwt]",
                ));
            }
            return Ok(None);
        }
        if let Some(resource) = &self.resource {
            let uri: http::Uri = resource.parse().map_err(|_| invalid("auth.resource", "is not a URL"))?;
            let ok = matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.authority().is_some()
                && uri.query().is_none();
            if !ok || resource.contains('#') {
                return Err(invalid(
                    "auth.resource",
                    "must be an absolute http(s) URL without query or fragment, e.g. https://mcp.example.com/mcp",
                ));
            }
        }
        let authorization_servers = match (self.authorization_servers.is_empty(), &jwt) {
            (true, Some(jwt)) => vec![jwt.issuer.clone()],
            _ => self.authorization_servers,
        };
        Ok(Some(AuthConfig {
            resource: self.resource,
            authorization_servers,
            scopes_supported: self.scopes_supported,
            required_scopes: self.required_scopes,
            method_scopes: scope_lists("auth.method_scopes", self.method_scopes)?,
            tool_scopes: scope_lists("auth.tool_scopes", self.tool_scopes)?,
            api_keys,
            jwt,
        }))
    }
}

fn validate_jwt(raw: RawJwt, env: &dyn Fn(&str) -> Option<String>) -> Result<JwtConfig, ConfigError> {
    if raw.issuer.trim().is_empty() {
        return Err(invalid("auth.jwt.issuer", "must be the issuer URL, e.g. https://auth.example.com"));
    }
    for (i, name) in raw.algorithms.iter().flatten().enumerate() {
        crate::auth::algorithm(name).map_err(|m| invalid(format!("auth.jwt.algorithms[{i}]"), m))?;
    }
    let mut pem_keys = Vec::new();
    for (i, key) in raw.keys.iter().enumerate() {
        crate::auth::algorithm(&key.alg).map_err(|m| invalid(format!("auth.jwt.keys[{i}].alg"), m))?;
        let pem = std::fs::read_to_string(&key.pem_file).map_err(|e| {
            invalid(format!("auth.jwt.keys[{i}].pem_file"), format!("cannot read `{}`: {e}", key.pem_file))
        })?;
        pem_keys.push((key.alg.clone(), pem));
    }
    let leeway = match raw.leeway.as_deref() {
        None => Duration::from_secs(60),
        Some(text) => parse_duration(text).map_err(|m| invalid("auth.jwt.leeway", m))?,
    };
    if leeway > crate::auth::jwt::MAX_LEEWAY {
        return Err(invalid("auth.jwt.leeway", "at most 5m: a large leeway keeps expired tokens alive"));
    }
    let hmac_secret = match &raw.hmac_secret_env {
        None => None,
        Some(var) => {
            let value = env(var).ok_or_else(|| {
                invalid("auth.jwt.hmac_secret_env", format!("environment variable `{var}` is not set"))
            })?;
            if value.len() < 32 {
                return Err(invalid("auth.jwt.hmac_secret_env", "the shared secret must be at least 32 bytes"));
            }
            Some(Secret::new(value))
        }
    };
    Ok(JwtConfig {
        issuer: raw.issuer,
        audiences: raw.audiences,
        jwks_uri: raw.jwks_uri,
        pem_keys,
        algorithms: raw.algorithms,
        leeway,
        hmac_secret,
    })
}

/// For the CLI's `check-config`: what authenticates.
impl AuthConfig {
    /// A one-line summary, without secrets.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.api_keys.is_empty() {
            parts.push("api keys".to_owned());
        }
        if let Some(jwt) = &self.jwt {
            parts.push(format!("jwt from {}", jwt.issuer));
        }
        parts.join(" + ")
    }
}

/// Re-exported so `check-config` and tests can hash keys like the CLI does.
pub use api_key::hash as hash_api_key;
