//! Configuration: TOML file, then `MCP_GUARD_*` environment variables, then
//! CLI flags, each overriding the one before, normalised into one validated
//! [`Config`]. Everything that can be wrong is found here, at startup, with
//! the key (or variable) named; nothing downstream re-validates.

mod audit;
mod auth;
mod deploy;
mod load;
mod policy;
mod raw;
mod units;
mod upstream;

use std::{net::SocketAddr, time::Duration};

use std::num::NonZeroU32;

use http::Uri;
use mcp_guard_layers::{client_ip::TrustedProxies, host_origin::HostOriginPolicy, jsonrpc::Limits};

pub use audit::AuditConfig;
pub use auth::{AuthConfig, JwtConfig, hash_api_key};
pub use deploy::{BackendFailure, RateLimitBackend, RedisConfig, SealingKey, SessionSealing, TlsConfig};
pub use load::{Overrides, load, load_from_str};
pub use policy::PolicyConfig;
use raw::RawConfig;
pub(crate) use units::{parse_duration, parse_size};
pub use upstream::UpstreamLimits;

/// A bad configuration: which key or variable, and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has an unknown key or a wrong type.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// toml's message: line, column, the offending key and what is expected.
        message: String,
    },
    /// An `MCP_GUARD_*` environment variable does not fit its key.
    #[error("invalid environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        message: String,
    },
    /// A value has the right type but is not allowed.
    #[error("invalid config: `{key}`: {message}")]
    Invalid {
        /// Dotted key, e.g. `server.listen`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

/// The validated configuration the gateway runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen. Default `127.0.0.1:8001`: loopback only, so nothing
    /// off this machine can reach an unauthenticated gateway.
    pub listen: SocketAddr,
    /// The MCP endpoint path. Default `/mcp`.
    pub path: String,
    /// How long in-flight requests may run after SIGINT/SIGTERM. Default 10s.
    pub shutdown_timeout: Duration,
    /// Hosts and origins allowed beyond the loopback defaults, which
    /// [`Config::host_origin`] adds once the listening port is known.
    pub extra_hosts_origins: HostOriginPolicy,
    /// Proxies whose `X-Forwarded-For`/`Forwarded` are believed. Default
    /// none: the TCP peer is the client, so a client cannot choose its own
    /// rate-limit key.
    pub trusted_proxies: TrustedProxies,
    /// Time a client gets to send its request headers; also how long an idle
    /// HTTP/1.1 keep-alive connection is kept. Default 10s (slowloris bound).
    pub header_read_timeout: Duration,
    /// Time a client gets to send a request body. Default 30s.
    pub body_read_timeout: Duration,
    /// Largest request body. Default 4 MiB; larger gets 413 before parsing.
    pub max_body: usize,
    /// JSON nesting depth and batch length limits. Default 64 and 100.
    pub json_limits: Limits,
    /// Supported MCP protocol revisions. Default 2025-03-26, 2025-06-18,
    /// 2025-11-25, 2026-07-28.
    pub protocol_versions: Vec<String>,
    /// After initialize, refuse an `MCP-Protocol-Version` that differs from
    /// the session's negotiated one. Default on. Off: such requests are
    /// served under the negotiated version's rules instead.
    pub enforce_negotiated_version: bool,
    /// Per-caller rate limits; `None` when disabled. Default on: 60 per
    /// minute per principal (or client IP), burst 60.
    pub rate_limit: Option<RateLimitSettings>,
    /// Serve Prometheus metrics at `/metrics`. Default on (the listener is
    /// loopback-only unless configured otherwise).
    pub metrics: bool,
    /// Who may call. `None` (the default) is only allowed on a loopback
    /// listener unless `server.allow_unauthenticated_network_access` is set.
    pub auth: Option<AuthConfig>,
    /// The MCP server behind the gateway.
    pub upstream: UpstreamConfig,
    /// Logging.
    pub log: LogConfig,
    /// Tool, resource and prompt policy; tool pinning; per-tool limits.
    pub policy: PolicyConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// `server.mode = "production"` (or `ENVIRONMENT=production`): startup
    /// refuses anything but authenticated, TLS-or-trusted-proxy, exact-origin,
    /// sealed-session deployments. Default development.
    pub production: bool,
    /// HTTPS on the listener (`--tls-cert`, `--tls-key`). Default off: plain
    /// HTTP, fine on loopback or behind a TLS-terminating proxy.
    pub tls: Option<TlsConfig>,
    /// Redis shared by the replicas (rate limits, ended sessions). Default none.
    pub redis: Option<RedisConfig>,
    /// Sealed session tokens. Default none: session ids are the upstream's
    /// (HTTP) or the gateway's own (stdio), bound to their principal in memory.
    pub sessions: Option<SessionSealing>,
}

/// A rate: requests per minute, with a burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Sustained requests per minute.
    pub per_minute: NonZeroU32,
    /// Requests that may be sent at once (default: the per-minute quota).
    pub burst: NonZeroU32,
}

/// Validated rate-limit settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Per caller, across all requests.
    pub caller: Quota,
    /// Additionally per caller and JSON-RPC method.
    pub per_method: Vec<(String, Quota)>,
    /// Additionally per caller and tool (`tools/call`).
    pub per_tool: Vec<(String, Quota)>,
    /// Where the counters live. Default in memory (per replica).
    pub backend: RateLimitBackend,
}

/// Which MCP server the gateway fronts.
#[derive(Clone, Debug, PartialEq)]
pub enum UpstreamConfig {
    /// The built-in rmcp demo server (no `url` or `command` given).
    Demo,
    /// A Streamable HTTP server.
    Http(HttpUpstreamConfig),
    /// A stdio server, one child process per session.
    Stdio(StdioConfig),
}

/// A Streamable HTTP upstream.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpUpstreamConfig {
    /// The upstream MCP endpoint, e.g. `http://127.0.0.1:9000/mcp`.
    pub url: Uri,
    /// TCP connect timeout. Default 5s.
    pub connect_timeout: Duration,
    /// What the upstream may send and how long it may take.
    pub limits: UpstreamLimits,
    /// Headers the gateway sends upstream with its own credentials, from
    /// the environment or a file. The client's `Authorization` and cookies
    /// never go upstream.
    pub headers: Vec<(http::HeaderName, crate::secret::Secret)>,
}

/// A stdio upstream.
#[derive(Clone, Debug, PartialEq)]
pub struct StdioConfig {
    /// Program and arguments. Spawned directly, never through a shell.
    pub argv: Vec<String>,
    /// Variables set in the child's otherwise empty environment. The values
    /// are often the server's credentials (API tokens): never printed.
    pub env: Vec<(String, crate::secret::Secret)>,
    /// Variables copied from the gateway's environment when set. Default
    /// `PATH`, `HOME`, `LANG`, `LC_ALL`, `TZ`, `TMPDIR`: enough to run
    /// interpreters, never the gateway's secrets.
    pub env_passthrough: Vec<String>,
    /// Concurrent sessions (= child processes). Default 64; past it, 503.
    pub max_sessions: usize,
    /// A session with no request and no open stream for this long is ended.
    /// Default 10 minutes.
    pub idle_timeout: Duration,
    /// What the child may send and how long it may take (`[upstream]`).
    pub limits: UpstreamLimits,
}

/// Log output.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// JSON lines (default) or human-readable text.
    pub json: bool,
    /// A tracing `EnvFilter` directive. Default `info,rmcp=warn`.
    pub level: String,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8001";
const RESERVED_PATHS: [&str; 3] = ["/health", "/ready", "/metrics"];
const DEFAULT_PASSTHROUGH: [&str; 6] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

fn duration(key: &str, value: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => match parse_duration(text) {
            Ok(d) if d.is_zero() => Err(invalid(key, "must be greater than zero")),
            Ok(d) => Ok(d),
            Err(message) => Err(invalid(key, message)),
        },
    }
}

impl Config {
    fn from_raw(raw: RawConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let listen_text = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!("`{listen_text}` is not an address: expected IP:PORT, e.g. 127.0.0.1:8001"),
            )
        })?;

        let path = raw.server.path.unwrap_or_else(|| "/mcp".to_owned());
        let path_ok = path.starts_with('/')
            && path.len() > 1
            && path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'));
        if !path_ok || RESERVED_PATHS.contains(&path.as_str()) {
            return Err(invalid(
                "server.path",
                format!(
                    "`{path}` is not allowed: expected an absolute path such as /mcp (letters, digits, / - _ .), not {}",
                    RESERVED_PATHS.join(", ")
                ),
            ));
        }

        let mut extra_hosts_origins = HostOriginPolicy::default();
        for (i, host) in raw.server.allowed_hosts.iter().enumerate() {
            extra_hosts_origins = extra_hosts_origins
                .allow_host(host)
                .map_err(|e| invalid(format!("server.allowed_hosts[{i}]"), e.to_string()))?;
        }
        for (i, origin) in raw.server.allowed_origins.iter().enumerate() {
            extra_hosts_origins = extra_hosts_origins
                .allow_origin(origin)
                .map_err(|e| invalid(format!("server.allowed_origins[{i}]"), e.to_string()))?;
        }

        let limits = UpstreamLimits::from_raw(&raw.upstream)?;
        let headers = auth::upstream_headers(raw.upstream.headers, env)?;
        if !headers.is_empty() && raw.upstream.url.is_none() {
            return Err(invalid("upstream.headers", "applies to HTTP upstreams (`upstream.url`) only"));
        }
        let upstream = match (raw.upstream.url, raw.upstream.command) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "upstream",
                    "set either `url` (HTTP upstream) or `command` (stdio upstream), not both",
                ));
            }
            (Some(url), None) => UpstreamConfig::Http(HttpUpstreamConfig {
                url: parse_upstream_url(&url)?,
                connect_timeout: duration(
                    "upstream.connect_timeout",
                    raw.upstream.connect_timeout.as_deref(),
                    Duration::from_secs(5),
                )?,
                limits,
                headers,
            }),
            (None, Some(argv)) => {
                if argv.first().is_none_or(|program| program.trim().is_empty()) {
                    return Err(invalid("upstream.command", "must name a program: e.g. [\"node\", \"server.js\"]"));
                }
                let max_sessions = raw.stdio.max_sessions.unwrap_or(64);
                if max_sessions == 0 {
                    return Err(invalid("stdio.max_sessions", "must be at least 1"));
                }
                for name in raw.stdio.env.keys() {
                    if name.is_empty() || name.contains(['=', '\0']) {
                        return Err(invalid("stdio.env", format!("`{name}` is not a valid variable name")));
                    }
                }
                UpstreamConfig::Stdio(StdioConfig {
                    argv,
                    env: raw.stdio.env.into_iter().map(|(k, v)| (k, crate::secret::Secret::new(v))).collect(),
                    env_passthrough: raw
                        .stdio
                        .env_passthrough
                        .unwrap_or_else(|| DEFAULT_PASSTHROUGH.map(str::to_owned).to_vec()),
                    max_sessions,
                    idle_timeout: duration(
                        "stdio.idle_timeout",
                        raw.stdio.idle_timeout.as_deref(),
                        Duration::from_secs(600),
                    )?,
                    limits,
                })
            }
            (None, None) => UpstreamConfig::Demo,
        };

        let trusted_proxies = TrustedProxies::parse(&raw.server.trusted_proxies).map_err(|e| {
            let i = raw.server.trusted_proxies.iter().position(|p| p.trim() == e.0).unwrap_or(0);
            invalid(format!("server.trusted_proxies[{i}]"), e.to_string())
        })?;
        let max_body = match raw.limits.max_body.as_deref() {
            None => 4 << 20,
            Some(text) => {
                parse_size(text).ok().and_then(|n| usize::try_from(n).ok()).filter(|n| *n >= 1024).ok_or_else(|| {
                    invalid("limits.max_body", format!("`{text}` must be a size of at least 1KiB, e.g. `4MiB`"))
                })?
            }
        };
        let defaults = Limits::default();
        let json_limits = Limits {
            max_depth: positive("limits.max_json_depth", raw.limits.max_json_depth, defaults.max_depth)?,
            max_batch: positive("limits.max_batch", raw.limits.max_batch, defaults.max_batch)?,
        };
        let protocol_versions = match raw.protocol.versions {
            None => DEFAULT_VERSIONS.map(str::to_owned).to_vec(),
            Some(list) => {
                if list.is_empty() {
                    return Err(invalid("protocol.versions", "must list at least one version, e.g. [\"2025-11-25\"]"));
                }
                for (i, v) in list.iter().enumerate() {
                    if !is_version(v) {
                        return Err(invalid(
                            format!("protocol.versions[{i}]"),
                            format!("`{v}` is not a protocol revision: expected YYYY-MM-DD, e.g. 2025-11-25"),
                        ));
                    }
                }
                list
            }
        };
        let redis = deploy::redis(raw.redis, env)?;
        let backend = deploy::backend(
            raw.rate_limit.backend.as_deref(),
            raw.rate_limit.on_backend_failure.as_deref(),
            raw.rate_limit.replicas,
            redis.as_ref(),
        )?;
        let rate_limit = match raw.rate_limit.enabled {
            Some(false) => None,
            _ => {
                let caller = quota("rate_limit", raw.rate_limit.per_minute.unwrap_or(60), raw.rate_limit.burst)?;
                let mut per_method = Vec::new();
                for (method, q) in raw.rate_limit.per_method {
                    per_method.push((
                        method.clone(),
                        quota(&format!("rate_limit.per_method.\"{method}\""), q.per_minute, q.burst)?,
                    ));
                }
                let mut per_tool = Vec::new();
                for (tool, q) in raw.rate_limit.per_tool {
                    per_tool.push((
                        tool.clone(),
                        quota(&format!("rate_limit.per_tool.\"{tool}\""), q.per_minute, q.burst)?,
                    ));
                }
                Some(RateLimitSettings { caller, per_method, per_tool, backend })
            }
        };

        let auth = raw.auth.validate(env)?;
        let loopback = listen.ip().is_loopback();
        if auth.is_none() && !loopback && !raw.server.allow_unauthenticated_network_access {
            return Err(invalid(
                "server.listen",
                format!(
                    "refusing to listen on {listen} without authentication: anyone who can reach it could use the MCP server. \
                     Add an API key (`mcp-guard gen-key`, then an [[auth.api_keys]] entry with its hash) or a JWT issuer ([auth.jwt]); \
                     or, if you accept that risk, pass --allow-unauthenticated-network-access"
                ),
            ));
        }
        if let Some(a) = &auth
            && a.resource.is_none()
            && !loopback
        {
            return Err(invalid(
                "auth.resource",
                "set the URL clients use to reach this gateway, e.g. https://mcp.example.com/mcp (it is the token audience)",
            ));
        }

        let policy = policy::validate(raw.policy, raw.pins, raw.tools)?;
        let audit = audit::validate(raw.audit)?;

        let json = match raw.log.format.as_deref() {
            None | Some("json") => true,
            Some("text") => false,
            Some(other) => {
                return Err(invalid("log.format", format!("`{other}` is not a format: use `json` or `text`")));
            }
        };
        // rmcp logs full session ids at info: keep it to warnings by default.
        let level = raw.log.level.unwrap_or_else(|| "info,rmcp=warn".to_owned());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&level) {
            return Err(invalid("log.level", format!("`{level}`: {e} (e.g. `info` or `mcp_guard=debug,info`)")));
        }

        let production = match raw.server.mode.as_deref() {
            None | Some("development") => false,
            Some("production") => true,
            Some(other) => {
                return Err(invalid("server.mode", format!("`{other}`: use `development` or `production`")));
            }
        };
        let tls = deploy::tls(raw.tls)?;
        let sessions = deploy::sessions(raw.sessions, env)?;

        let config = Config {
            listen,
            path,
            shutdown_timeout: duration(
                "server.shutdown_timeout",
                raw.server.shutdown_timeout.as_deref(),
                Duration::from_secs(10),
            )?,
            extra_hosts_origins,
            trusted_proxies,
            header_read_timeout: duration(
                "server.header_read_timeout",
                raw.server.header_read_timeout.as_deref(),
                Duration::from_secs(10),
            )?,
            body_read_timeout: duration(
                "server.body_read_timeout",
                raw.server.body_read_timeout.as_deref(),
                Duration::from_secs(30),
            )?,
            max_body,
            json_limits,
            protocol_versions,
            enforce_negotiated_version: raw.protocol.enforce_negotiated_version.unwrap_or(true),
            rate_limit,
            metrics: raw.metrics.enabled.unwrap_or(true),
            auth,
            upstream,
            log: LogConfig { json, level },
            policy,
            audit,
            production,
            tls,
            redis,
            sessions,
        };
        if config.production {
            deploy::check_production(&config)?;
        }
        Ok(config)
    }
}

impl Config {
    /// The Host/Origin policy for the port actually bound: the loopback
    /// names with that port, and the gateway's own loopback origins, plus
    /// what `server.allowed_hosts` and `server.allowed_origins` add.
    pub fn host_origin(&self, port: u16) -> HostOriginPolicy {
        self.extra_hosts_origins.clone().with_loopback(port)
    }
}

/// The default supported revisions, as the layer defines them.
const DEFAULT_VERSIONS: [&str; 4] = mcp_guard_layers::protocol_version::DEFAULT_VERSIONS;

fn is_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10 && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
}

fn positive(key: &str, value: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(0) => Err(invalid(key, "must be at least 1")),
        Some(n) => Ok(n),
    }
}

fn quota(key: &str, per_minute: u32, burst: Option<u32>) -> Result<Quota, ConfigError> {
    let per_minute = NonZeroU32::new(per_minute).ok_or_else(|| {
        invalid(format!("{key}.per_minute"), "must be at least 1 (set `rate_limit.enabled = false` to turn limits off)")
    })?;
    let burst = match burst {
        None => per_minute,
        Some(b) => NonZeroU32::new(b).ok_or_else(|| invalid(format!("{key}.burst"), "must be at least 1"))?,
    };
    Ok(Quota { per_minute, burst })
}

fn parse_upstream_url(url: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = url.parse().map_err(|_| {
        invalid("upstream.url", format!("`{url}` is not a URL: expected e.g. http://127.0.0.1:9000/mcp"))
    })?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(authority)) if !authority.as_str().contains('@') => Ok(uri),
        (Some("https"), _) => Err(invalid(
            "upstream.url",
            "https upstreams are not supported yet: put the upstream on a loopback or private http:// address",
        )),
        _ => Err(invalid(
            "upstream.url",
            format!("`{url}` must be an absolute http:// URL without credentials, e.g. http://127.0.0.1:9000/mcp"),
        )),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod deploy_tests;
