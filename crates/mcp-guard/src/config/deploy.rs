//! Production deployment settings: `server.mode`, `[tls]`, `[redis]`, the
//! rate limiter's backend, and `[sessions]` (sealed session tokens), plus
//! the production-mode checks that tie them together.

use std::{num::NonZeroU32, path::PathBuf, time::Duration};

use serde::Deserialize;

use super::{ConfigError, auth::RawSecretSource, duration, invalid};
use crate::secret::Secret;

/// `[tls]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTls {
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
}

/// `[redis]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRedis {
    /// One server: `redis://` or `rediss://` (may hold a password: prefer `url_env`).
    pub(crate) url: Option<String>,
    /// The URL from an environment variable.
    pub(crate) url_env: Option<String>,
    /// Redis Cluster seed nodes.
    pub(crate) nodes: Option<Vec<String>>,
    pub(crate) key_prefix: Option<String>,
    pub(crate) timeout: Option<String>,
}

/// `[sessions]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSessions {
    pub(crate) keys: Vec<RawSecretSource>,
    pub(crate) ttl: Option<String>,
    pub(crate) replica_id: Option<String>,
}

/// HTTPS on the listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. Re-read on SIGHUP.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1). Re-read on SIGHUP.
    pub key: PathBuf,
}

/// A Redis deployment shared by the replicas.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisConfig {
    /// Server URLs: one for a single server, the seed nodes for a cluster.
    /// Secret: a URL may carry a password.
    pub urls: Vec<Secret>,
    /// True for Redis Cluster (`nodes`).
    pub cluster: bool,
    /// Prefix of every key mcp-guard writes. Default `mcp-guard`.
    pub key_prefix: String,
    /// Connect and command timeout. Default 250ms: a limit check must not
    /// hold a request long when Redis is slow; past it the failure mode applies.
    pub timeout: Duration,
}

/// Where rate-limit counters live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimitBackend {
    /// In this process (the default): limits are per replica.
    Memory,
    /// In `[redis]`: limits are global across replicas.
    Redis {
        /// What happens while Redis is unreachable.
        on_failure: BackendFailure,
        /// Replicas sharing the limit; while Redis is down each replica
        /// enforces `limit / replicas` locally. Default 1.
        replicas: NonZeroU32,
    },
}

/// Behaviour while the Redis backend is unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendFailure {
    /// Fall back to in-memory limits divided by the replica count (default).
    Local,
    /// Refuse with 503 and `Retry-After`.
    Closed,
}

/// Sealed session tokens.
#[derive(Clone, Debug)]
pub struct SessionSealing {
    /// 32-byte keys; the first seals, all open (rotation). Never printed.
    pub keys: Vec<SealingKey>,
    /// Lifetime of a token. Default 24h.
    pub ttl: Duration,
    /// This replica's name, sealed into stdio session tokens (whose session
    /// lives in one process). Default: random per start.
    pub replica_id: Option<String>,
}

/// A 256-bit session sealing key. `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SealingKey(pub [u8; 32]);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

pub(crate) fn tls(raw: RawTls) -> Result<Option<TlsConfig>, ConfigError> {
    match (raw.cert, raw.key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            for (k, path) in [("tls.cert", &cert), ("tls.key", &key)] {
                std::fs::metadata(path).map_err(|e| invalid(k, format!("cannot read {}: {e}", path.display())))?;
            }
            Ok(Some(TlsConfig { cert, key }))
        }
        (Some(_), None) => Err(invalid("tls.key", "is required with `tls.cert` (--tls-key)")),
        (None, Some(_)) => Err(invalid("tls.cert", "is required with `tls.key` (--tls-cert)")),
    }
}

pub(crate) fn redis(raw: RawRedis, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<RedisConfig>, ConfigError> {
    let url = match (raw.url, raw.url_env) {
        (Some(_), Some(_)) => return Err(invalid("redis.url", "set either `url` or `url_env`, not both")),
        (Some(url), None) => Some(("redis.url", url)),
        (None, Some(var)) => Some((
            "redis.url_env",
            env(&var).ok_or_else(|| invalid("redis.url_env", format!("environment variable `{var}` is not set")))?,
        )),
        (None, None) => None,
    };
    let (urls, cluster) = match (url, raw.nodes) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(invalid("redis.nodes", "set either `url` (one server) or `nodes` (a cluster), not both"));
        }
        (Some((key, url)), None) => (vec![check_url(key, url)?], false),
        (None, Some(nodes)) => {
            if nodes.is_empty() {
                return Err(invalid("redis.nodes", "must list at least one cluster node"));
            }
            let urls = nodes
                .into_iter()
                .enumerate()
                .map(|(i, n)| check_url(&format!("redis.nodes[{i}]"), n))
                .collect::<Result<_, _>>()?;
            (urls, true)
        }
    };
    let key_prefix = raw.key_prefix.unwrap_or_else(|| "mcp-guard".to_owned());
    if key_prefix.is_empty() || key_prefix.contains(['{', '}', ' ']) {
        return Err(invalid("redis.key_prefix", "must be non-empty, without spaces or braces"));
    }
    let timeout = duration("redis.timeout", raw.timeout.as_deref(), Duration::from_millis(250))?;
    Ok(Some(RedisConfig { urls, cluster, key_prefix, timeout }))
}

fn check_url(key: &str, url: String) -> Result<Secret, ConfigError> {
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(Secret::new(url))
    } else {
        // The URL may hold a password: never echo it.
        Err(invalid(key, "must be a redis:// or rediss:// URL"))
    }
}

pub(crate) fn backend(
    backend: Option<&str>,
    on_failure: Option<&str>,
    replicas: Option<u32>,
    redis: Option<&RedisConfig>,
) -> Result<RateLimitBackend, ConfigError> {
    match backend {
        None | Some("memory") => {
            if on_failure.is_some() || replicas.is_some() {
                return Err(invalid(
                    "rate_limit.backend",
                    "`on_backend_failure` and `replicas` need `backend = \"redis\"`",
                ));
            }
            Ok(RateLimitBackend::Memory)
        }
        Some("redis") => {
            if redis.is_none() {
                return Err(invalid("rate_limit.backend", "`redis` needs a [redis] section with `url` or `nodes`"));
            }
            let on_failure = match on_failure {
                None | Some("local") => BackendFailure::Local,
                Some("closed") => BackendFailure::Closed,
                Some(other) => {
                    return Err(invalid(
                        "rate_limit.on_backend_failure",
                        format!("`{other}`: use `local` (per-replica limits) or `closed` (503)"),
                    ));
                }
            };
            let replicas = NonZeroU32::new(replicas.unwrap_or(1))
                .ok_or_else(|| invalid("rate_limit.replicas", "must be at least 1"))?;
            Ok(RateLimitBackend::Redis { on_failure, replicas })
        }
        Some(other) => Err(invalid("rate_limit.backend", format!("`{other}`: use `memory` or `redis`"))),
    }
}

pub(crate) fn sessions(
    raw: RawSessions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SessionSealing>, ConfigError> {
    if raw.keys.is_empty() {
        if raw.ttl.is_some() || raw.replica_id.is_some() {
            return Err(invalid("sessions.keys", "list at least one sealing key (env or file)"));
        }
        return Ok(None);
    }
    let mut keys = Vec::with_capacity(raw.keys.len());
    for (i, source) in raw.keys.iter().enumerate() {
        let key = format!("sessions.keys[{i}]");
        let secret = super::auth::secret_from(&key, source, env)?;
        keys.push(decode_key(&key, secret.expose())?);
    }
    let ttl = duration("sessions.ttl", raw.ttl.as_deref(), Duration::from_secs(24 * 3600))?;
    Ok(Some(SessionSealing { keys, ttl, replica_id: raw.replica_id }))
}

/// A key is 32 random bytes in base64 (standard or URL-safe, padded or not)
/// or 64 hex digits: `openssl rand -base64 32`.
fn decode_key(key: &str, text: &str) -> Result<SealingKey, ConfigError> {
    use base64::Engine as _;
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0)).collect::<Vec<u8>>()
    } else {
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        engines.iter().find_map(|e| e.decode(text).ok()).unwrap_or_default()
    };
    <[u8; 32]>::try_from(bytes.as_slice())
        .map(SealingKey)
        .map_err(|_| invalid(key, "must be 32 random bytes, base64 or hex (e.g. `openssl rand -base64 32`)"))
}

/// What production mode requires, each refusal naming the setting to change.
pub(crate) fn check_production(config: &super::Config) -> Result<(), ConfigError> {
    if config.auth.is_none() {
        return Err(invalid("auth", "production mode needs authentication: add [[auth.api_keys]] or [auth.jwt]"));
    }
    if config.tls.is_none() && config.trusted_proxies.is_empty() {
        return Err(invalid(
            "tls.cert",
            "production mode needs TLS (--tls-cert/--tls-key, or [tls]) or, behind a TLS-terminating proxy, `server.trusted_proxies`",
        ));
    }
    if config.extra_hosts_origins.allows_wildcard_or_null_origin() {
        return Err(invalid(
            "server.allowed_origins",
            "production mode refuses `*` and `null` origins: list them exactly",
        ));
    }
    if config.sessions.is_none() {
        return Err(invalid(
            "sessions.keys",
            "production mode needs a session sealing key: [[sessions.keys]] env = \"MCP_GUARD_SESSION_KEY\" (32 random bytes, base64)",
        ));
    }
    Ok(())
}
