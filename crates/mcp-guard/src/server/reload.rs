//! Configuration reload without a restart (SIGHUP, `--watch-config`, or
//! [`Running::reload`](super::Running::reload)).
//!
//! Everything a request passes through (routes, layers, their settings) is
//! one *generation*, built from one validated [`Config`]. The listener asks
//! for the current generation per request, not per connection, so a
//! keep-alive connection sees a reload at its next request, while a request
//! (and its SSE stream) already running finishes in the generation it
//! started in: it holds a clone of that generation's service.
//!
//! What a reload keeps, because losing it would be a security or
//! availability regression: the upstream and its sessions, session owners
//! and negotiated versions, ended-session records, rate-limit buckets (while
//! the limits are unchanged; Redis buckets always), learned tool pins, the
//! audit log's writer (while `[audit]` is unchanged), the authentication
//! layers with their key set and token caches (while `[auth]` is
//! unchanged), and every metric (the recorder is process-wide).
//!
//! What it refuses: a change to a key the running process cannot apply
//! without dropping connections or sessions ([`restart_required`]). The
//! whole reload is then refused, naming the key, and the old configuration
//! keeps serving: a half-applied file is harder to reason about than either.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use arc_swap::ArcSwap;
use http::{Request, Response};
use tower::{Service, ServiceExt, util::Oneshot};

use super::{StartError, TlsError, pipeline};
use crate::{
    auth::ResourceMetadata,
    body::BoxBody,
    config::Config,
    redis::{GlobalRateLimitLayer, RedisSetupError},
    session_seal::{EndedSessions, MemoryEndedSessions},
};

/// Why a reload was refused. The running configuration is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration changes a key that needs a restart.
    #[error("{0} cannot change while running: restart mcp-guard to apply it")]
    RestartRequired(&'static str),
    /// The new configuration's layers could not be built (unreadable audit
    /// path, bad sealing key, unreachable key set URL, ...).
    #[error(transparent)]
    Build(#[from] StartError),
    /// The TLS certificate or key could not be re-read.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The first key, in file order, whose change needs a restart: the listener
/// (address, path, its timeouts), the upstream (its sessions would be
/// lost), what is installed once per process (metrics recorder, log
/// subscriber), the TLS files' location, the Redis connection, and the
/// protocol revisions (sessions negotiated under them).
pub(crate) fn restart_required(old: &Config, new: &Config) -> Option<&'static str> {
    let backend = |c: &Config| c.rate_limit.as_ref().map(|r| r.backend);
    let changed = [
        ("server.listen", old.listen != new.listen),
        ("server.path", old.path != new.path),
        ("server.shutdown_timeout", old.shutdown_timeout != new.shutdown_timeout),
        ("server.header_read_timeout", old.header_read_timeout != new.header_read_timeout),
        ("[upstream] or [stdio]", old.upstream != new.upstream),
        ("protocol.versions", old.protocol_versions != new.protocol_versions),
        ("protocol.enforce_negotiated_version", old.enforce_negotiated_version != new.enforce_negotiated_version),
        ("rate_limit.backend", backend(old) != backend(new)),
        ("metrics.enabled", old.metrics != new.metrics),
        ("[log]", old.log != new.log),
        ("[tls]", old.tls != new.tls),
        ("[redis]", old.redis != new.redis),
    ];
    changed.into_iter().find(|(_, changed)| *changed).map(|(key, _)| key)
}

/// One configuration's request path, and what built it.
#[derive(Debug)]
pub(crate) struct Generation<S> {
    pub(crate) config: Config,
    pub(crate) shared: pipeline::Shared,
    pub(crate) service: S,
}

/// The store of ended sessions, created once and kept across reloads, so a
/// session ended before a reload stays ended after it.
#[derive(Debug, Default)]
pub(crate) struct EndedStore(Mutex<Option<Arc<dyn EndedSessions>>>);

impl EndedStore {
    /// The store for `config`: `None` without `[sessions]`.
    pub(crate) fn get(&self, config: &Config) -> Result<Option<Arc<dyn EndedSessions>>, RedisSetupError> {
        if config.sessions.is_none() {
            return Ok(None);
        }
        let mut slot = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(store) = slot.as_ref() {
            return Ok(Some(Arc::clone(store)));
        }
        let store: Arc<dyn EndedSessions> = match crate::redis::ended_sessions(config)? {
            Some(redis) => redis,
            None => Arc::new(MemoryEndedSessions::default()),
        };
        *slot = Some(Arc::clone(&store));
        Ok(Some(store))
    }
}

/// The MCP endpoint's layers for `config`: new ones at startup
/// (`previous` = `None`), or ones that keep `previous`'s state on reload.
pub(crate) fn layers(
    config: &Config,
    addr: SocketAddr,
    ended: &EndedStore,
    previous: Option<(&Config, &pipeline::Shared)>,
) -> Result<(pipeline::Shared, Option<ResourceMetadata>), StartError> {
    let (auth, metadata) = match previous {
        // Same settings: the same key set cache and verified-token cache,
        // so a reload is not a burst of key set fetches.
        Some((old, shared)) if old.auth == config.auth => {
            (shared.auth.clone(), super::metadata_only(config, addr).map_err(StartError::Auth)?)
        }
        _ => super::auth_layers(config, addr).map_err(StartError::Auth)?.unzip(),
    };
    let mut shared = match previous {
        None => pipeline::Shared::new(config, None),
        Some((old, shared)) => pipeline::Shared::reloaded(config, old, shared),
    }
    .map_err(StartError::Audit)?;
    shared.auth = auth;
    let global = match previous {
        // Same limits: the same client, supervisor and health state.
        Some((old, shared)) if old.rate_limit == config.rate_limit => shared.global_rate_limit.clone(),
        _ => GlobalRateLimitLayer::from_config(config)?,
    };
    if let Some(global) = global {
        // Buckets in Redis replace the in-memory ones at step 15.
        shared.rate_limit = None;
        shared.global_rate_limit = Some(global);
    }
    shared.sealed = crate::session_seal::layer_for(config, ended.get(config)?)?;
    Ok((shared, metadata))
}

/// The listener's service: the current generation's, per request.
#[derive(Debug)]
pub(crate) struct Current<S>(pub(crate) Arc<ArcSwap<Generation<S>>>);

impl<S> Clone for Current<S> {
    fn clone(&self) -> Self {
        Current(Arc::clone(&self.0))
    }
}

impl<S> Service<Request<BoxBody>> for Current<S>
where
    S: Service<Request<BoxBody>, Response = Response<BoxBody>, Error = Infallible> + Clone,
{
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = Oneshot<S, Request<BoxBody>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Readiness is the generation's, checked by `Oneshot` on the clone.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<BoxBody>) -> Self::Future {
        // A clone of the stack is a handful of reference counts: what axum's
        // router does per request anyway. It pins this request to the
        // generation it started in.
        self.0.load().service.clone().oneshot(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, load_from_str};

    fn config(text: &str) -> Config {
        load_from_str(text, "test.toml", Vec::new(), &Overrides::default()).expect("valid test config")
    }

    #[test]
    fn restart_only_keys_are_named_and_the_rest_reload() {
        let base = config("");
        let cases = [
            ("[server]\nlisten = \"127.0.0.1:9999\"", Some("server.listen")),
            ("[server]\npath = \"/other\"", Some("server.path")),
            ("[upstream]\nurl = \"http://127.0.0.1:9/mcp\"", Some("[upstream] or [stdio]")),
            ("[protocol]\nversions = [\"2025-06-18\"]", Some("protocol.versions")),
            ("[metrics]\nenabled = false", Some("metrics.enabled")),
            ("[log]\nlevel = \"debug\"", Some("[log]")),
            ("[rate_limit]\nper_minute = 5", None),
            ("[server]\nallowed_origins = [\"https://app.example\"]", None),
            ("[limits]\nmax_body = \"1MiB\"", None),
            (
                "[policy]\ndefault = \"allow\"\n[[policy.rules]]\nprincipals = [\"*\"]\neffect = \"deny\"\ntools = [\"echo\"]",
                None,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(restart_required(&base, &config(text)), expected, "{text}");
        }
        assert_eq!(restart_required(&base, &config("")), None);
    }
}
