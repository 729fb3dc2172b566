//! The config file exactly as users write it. Every section rejects unknown
//! keys, so a typo fails at startup with its line instead of being ignored.
//! Nothing here is validated beyond its TOML type: see [`super::Config`].

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawConfig {
    pub(crate) server: RawServer,
    pub(crate) upstream: RawUpstream,
    pub(crate) stdio: RawStdio,
    pub(crate) limits: RawLimits,
    pub(crate) protocol: RawProtocol,
    pub(crate) rate_limit: RawRateLimit,
    pub(crate) metrics: RawMetrics,
    pub(crate) auth: super::auth::RawAuth,
    pub(crate) log: RawLog,
    pub(crate) policy: super::policy::RawPolicy,
    pub(crate) pins: super::policy::RawPins,
    pub(crate) tools: BTreeMap<String, super::policy::RawTool>,
    pub(crate) audit: super::audit::RawAudit,
    pub(crate) tls: super::deploy::RawTls,
    pub(crate) redis: super::deploy::RawRedis,
    pub(crate) sessions: super::deploy::RawSessions,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLimits {
    pub(crate) max_body: Option<String>,
    pub(crate) max_json_depth: Option<usize>,
    pub(crate) max_batch: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawProtocol {
    pub(crate) versions: Option<Vec<String>>,
    pub(crate) enforce_negotiated_version: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRateLimit {
    pub(crate) enabled: Option<bool>,
    pub(crate) per_minute: Option<u32>,
    pub(crate) burst: Option<u32>,
    pub(crate) per_method: BTreeMap<String, RawQuota>,
    pub(crate) per_tool: BTreeMap<String, RawQuota>,
    pub(crate) backend: Option<String>,
    pub(crate) on_backend_failure: Option<String>,
    pub(crate) replicas: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuota {
    pub(crate) per_minute: u32,
    pub(crate) burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMetrics {
    pub(crate) enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawServer {
    pub(crate) listen: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) shutdown_timeout: Option<String>,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) trusted_proxies: Vec<String>,
    pub(crate) header_read_timeout: Option<String>,
    pub(crate) body_read_timeout: Option<String>,
    pub(crate) allow_unauthenticated_network_access: bool,
    pub(crate) mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawUpstream {
    pub(crate) url: Option<String>,
    pub(crate) command: Option<Vec<String>>,
    pub(crate) connect_timeout: Option<String>,
    pub(crate) timeout: Option<String>,
    pub(crate) headers: BTreeMap<String, super::auth::RawSecretSource>,
    pub(crate) max_message_size: Option<String>,
    pub(crate) max_response_size: Option<String>,
    pub(crate) max_request_duration: Option<String>,
    pub(crate) max_pending_per_session: Option<usize>,
    pub(crate) max_server_requests_per_session: Option<usize>,
    pub(crate) server_request_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawStdio {
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) env_passthrough: Option<Vec<String>>,
    pub(crate) max_sessions: Option<usize>,
    pub(crate) idle_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLog {
    pub(crate) format: Option<String>,
    pub(crate) level: Option<String>,
}
