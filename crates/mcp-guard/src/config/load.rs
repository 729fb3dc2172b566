//! File, environment and CLI merged into one TOML table, then validated once.
//!
//! Each source is checked on its own first, so an error names the file and
//! line, or the variable, that caused it: the merged table has no lines.

use std::path::Path;

use serde::Deserialize;
use toml::{Table, Value};

use super::{Config, ConfigError, raw::RawConfig};

/// Environment variables that override config keys: `MCP_GUARD_` then the
/// dotted key with `__` between section and key, e.g.
/// `MCP_GUARD_SERVER__LISTEN=0.0.0.0:8001` sets `server.listen`. A value that
/// parses as a TOML value (`64`, `["a","b"]`, `true`) is taken as one,
/// anything else as a string.
pub(crate) const ENV_PREFIX: &str = "MCP_GUARD_";

/// Values from CLI flags, which override file and environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--upstream URL`.
    pub upstream_url: Option<String>,
    /// `-- CMD ARG...`.
    pub command: Option<Vec<String>>,
    /// `--max-body SIZE`.
    pub max_body: Option<String>,
    /// `--allow-unauthenticated-network-access`.
    pub allow_unauthenticated_network_access: bool,
    /// `--tls-cert FILE`.
    pub tls_cert: Option<String>,
    /// `--tls-key FILE`.
    pub tls_key: Option<String>,
}

/// `CORS_ORIGINS`: origins added to `server.allowed_origins`, as a JSON list
/// (`["http://localhost:3000"]`) or comma-separated.
const CORS_ORIGINS: &str = "CORS_ORIGINS";
/// `RATE_LIMIT_PER_MINUTE`: sets `rate_limit.per_minute`.
const RATE_LIMIT_PER_MINUTE: &str = "RATE_LIMIT_PER_MINUTE";
/// `ENVIRONMENT`: `production` sets `server.mode`; other values are ignored
/// (the variable is common in deployments and means other things elsewhere).
const ENVIRONMENT: &str = "ENVIRONMENT";

/// Loads `path` (if any), applies `env` and `overrides`, validates.
pub fn load<I>(path: Option<&Path>, env: I, overrides: &Overrides) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let (text, name) = match path {
        Some(path) => {
            let name = path.display().to_string();
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: name.clone(), source })?;
            (text, name)
        }
        None => (String::new(), "<none>".to_owned()),
    };
    load_from_str(&text, &name, env, overrides)
}

/// Like [`load`], with the file's text given.
pub fn load_from_str<I>(text: &str, name: &str, env: I, overrides: &Overrides) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let parse_error = |e: toml::de::Error| ConfigError::Parse { path: name.to_owned(), message: e.to_string() };
    // Typed first: this is the pass whose errors carry line and column.
    toml::from_str::<RawConfig>(text).map_err(parse_error)?;
    let mut table: Table = toml::from_str(text).map_err(parse_error)?;

    // Secrets in the config name variables (`env = "…"`): keep them all for lookups.
    let all: std::collections::HashMap<String, String> = env.into_iter().collect();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut cors_origins = None;
    let mut rate_per_minute = None;
    let mut production = false;
    for (k, v) in all.iter().map(|(k, v)| (k.clone(), v.clone())) {
        match k.as_str() {
            ENVIRONMENT => production = v.trim().eq_ignore_ascii_case("production"),
            CORS_ORIGINS => cors_origins = Some(v),
            RATE_LIMIT_PER_MINUTE => rate_per_minute = Some(v),
            _ if k.starts_with(ENV_PREFIX) => vars.push((k, v)),
            _ => {}
        }
    }
    vars.sort();
    for (var, value) in vars {
        let path: Vec<String> = var[ENV_PREFIX.len()..].split("__").map(str::to_ascii_lowercase).collect();
        let env_error = |message: String| ConfigError::Env { var: var.clone(), message };
        if path.len() != 2 || path.iter().any(String::is_empty) {
            return Err(env_error(format!("expected {ENV_PREFIX}<SECTION>__<KEY>, e.g. {ENV_PREFIX}SERVER__LISTEN")));
        }
        let value = env_value(&value);
        let mut alone = Table::new();
        set(&mut alone, &path, value.clone());
        RawConfig::deserialize(alone).map_err(|e| env_error(e.to_string()))?;
        set(&mut table, &path, value);
    }

    // The two plain variables the security-middleware guide uses, kept for compatibility.
    if let Some(text) = cors_origins {
        let origins =
            parse_origin_list(&text).map_err(|message| ConfigError::Env { var: CORS_ORIGINS.into(), message })?;
        let mut all = match table.get("server").and_then(|s| s.get("allowed_origins")) {
            Some(Value::Array(existing)) => existing.clone(),
            _ => Vec::new(),
        };
        all.extend(origins.into_iter().map(Value::String));
        set(&mut table, &["server".into(), "allowed_origins".into()], Value::Array(all));
    }
    if let Some(text) = rate_per_minute {
        let n: u32 = text.trim().parse().map_err(|_| ConfigError::Env {
            var: RATE_LIMIT_PER_MINUTE.into(),
            message: format!("`{text}` is not a whole number of requests per minute"),
        })?;
        set(&mut table, &["rate_limit".into(), "per_minute".into()], Value::Integer(i64::from(n)));
    }

    if production {
        set(&mut table, &["server".into(), "mode".into()], Value::String("production".into()));
    }

    // The CLI picks the upstream outright: a flag for one kind drops the other.
    if let Some(url) = &overrides.upstream_url {
        remove(&mut table, &["upstream", "command"]);
        set(&mut table, &["upstream".into(), "url".into()], Value::String(url.clone()));
    }
    if let Some(argv) = &overrides.command {
        remove(&mut table, &["upstream", "url"]);
        let argv = Value::Array(argv.iter().cloned().map(Value::String).collect());
        set(&mut table, &["upstream".into(), "command".into()], argv);
    }
    if let Some(max_body) = &overrides.max_body {
        set(&mut table, &["limits".into(), "max_body".into()], Value::String(max_body.clone()));
    }
    if overrides.allow_unauthenticated_network_access {
        set(&mut table, &["server".into(), "allow_unauthenticated_network_access".into()], Value::Boolean(true));
    }
    for (key, value) in [("cert", &overrides.tls_cert), ("key", &overrides.tls_key)] {
        if let Some(path) = value {
            set(&mut table, &["tls".into(), key.into()], Value::String(path.clone()));
        }
    }
    if let Some(listen) = &overrides.listen {
        set(&mut table, &["server".into(), "listen".into()], Value::String(listen.clone()));
    }

    let raw = RawConfig::deserialize(table)
        .map_err(|e| ConfigError::Parse { path: name.to_owned(), message: e.to_string() })?;
    Config::from_raw(raw, &|name| all.get(name).cloned())
}

fn parse_origin_list(text: &str) -> Result<Vec<String>, String> {
    let text = text.trim();
    if text.starts_with('[') {
        serde_json::from_str::<Vec<String>>(text)
            .map_err(|e| format!("not a JSON list of strings ({e}); e.g. [\"http://localhost:3000\"]"))
    } else {
        Ok(text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }
}

fn env_value(text: &str) -> Value {
    toml::from_str::<Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(text.to_owned()))
}

fn set(table: &mut Table, path: &[String], value: Value) {
    let [section, key] = path else { return };
    let entry = table.entry(section.clone()).or_insert_with(|| Value::Table(Table::new()));
    if !entry.is_table() {
        *entry = Value::Table(Table::new());
    }
    if let Value::Table(section) = entry {
        section.insert(key.clone(), value);
    }
}

fn remove(table: &mut Table, path: &[&str; 2]) {
    if let Some(Value::Table(section)) = table.get_mut(path[0]) {
        section.remove(path[1]);
    }
}
