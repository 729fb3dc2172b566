//! The listener, the routes, and an orderly shutdown.

mod linger;
mod listener;
mod observe;
mod pipeline;
mod reload;
mod tls;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use arc_swap::ArcSwap;

use std::time::Duration;

use axum::{Router, extract::State, routing::get};
use http::{HeaderValue, StatusCode, header};
use mcp_guard_layers::{
    Rejection,
    auth::{AuthLayer, Challenge, ScopeLayer, ScopeRequirements},
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use self::{reload::ReloadError, tls::TlsError};

use crate::{
    auth::{Authenticator, ResourceMetadata},
    body::BoxBody,
    config::{BackendFailure, Config, UpstreamConfig},
    redis::GlobalRateLimitLayer,
    telemetry,
    upstream::{Upstream, embedded::EmbeddedUpstream, http::HttpUpstream, stdio::StdioUpstream},
};

/// How often limiter state is pruned and gauges refreshed.
const JANITOR_TICK: Duration = Duration::from_secs(30);
/// How long shutdown waits for queued audit records to be written.
const AUDIT_FLUSH: Duration = Duration::from_secs(5);

/// Swaps in a validated configuration (see [`Running::reload`]).
type Reloader = Box<dyn Fn(Config) -> Result<(), ReloadError> + Send + Sync>;

/// A gateway that is listening.
pub struct Running {
    addr: SocketAddr,
    stop: CancellationToken,
    /// Taken by the first [`shutdown`](Running::shutdown).
    task: Mutex<Option<JoinHandle<()>>>,
    tls: Option<Arc<tls::Certificates>>,
    reload: Reloader,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("addr", &self.addr).field("tls", &self.tls.is_some()).finish_non_exhaustive()
    }
}

impl Running {
    /// The address it listens on (the real port when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Re-reads `tls.cert` and `tls.key`: new connections get the new
    /// certificate, open ones keep theirs. On failure the current
    /// certificate stays. Does nothing without TLS. [`reload`](Self::reload)
    /// does this too.
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        self.tls.as_ref().map_or(Ok(()), |certificates| certificates.reload())
    }

    /// Serves `config` from the next request on (what SIGHUP does, with the
    /// configuration re-read from its sources). `config` is already
    /// validated; its layers are built before anything is swapped, so any
    /// error leaves the running configuration serving, unchanged. Requests
    /// already running finish under the configuration they started with;
    /// sessions, rate-limit buckets, learned pins and metrics carry over.
    /// Also re-reads the TLS certificate. Call it from a blocking-capable
    /// context: it may open files (audit log, certificates).
    pub fn reload(&self, config: Config) -> Result<(), ReloadError> {
        (self.reload)(config)?;
        self.reload_tls()?;
        Ok(())
    }

    /// Stops accepting, lets in-flight requests finish within the
    /// configured bound, ends upstream sessions and children, and returns.
    /// Takes `&self` so a reload trigger may still hold the gateway; a
    /// second call returns at once.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let task = self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(task) = task {
            // A panic inside the server task has already been logged by tokio.
            let _ = task.await;
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Authentication could not be set up from the configuration.
    #[error("authentication: {0}")]
    Auth(String),
    /// The audit log could not be opened (`audit.path`).
    #[error("audit.path: {0}")]
    Audit(std::io::Error),
    /// Session sealing could not be set up (`[sessions]`).
    #[error("sessions: {0}")]
    Sessions(#[from] crate::session_seal::SealError),
    /// The TLS certificate or key could not be loaded (`tls.cert`, `tls.key`).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The Redis rate-limit backend could not be set up (`[redis]`).
    #[error("rate_limit.backend: {0}")]
    RateLimitBackend(#[from] crate::redis::RedisSetupError),
}

/// Binds `config.listen`, starts serving, and returns at once.
pub async fn start(config: Config) -> Result<Running, StartError> {
    // Before binding: a bad certificate must not leave a port open that
    // only ever fails handshakes.
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let listen_error = |source| StartError::Listen { addr: config.listen, source };
    let listener = TcpListener::bind(config.listen).await.map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    let ended = reload::EndedStore::default();
    let (shared, metadata) = reload::layers(&config, addr, &ended, None)?;
    let listener = (listener, tls);
    let site = Site { addr, ended, metadata };
    Ok(match &config.upstream {
        UpstreamConfig::Demo => launch(config, listener, site, shared, EmbeddedUpstream::demo()),
        UpstreamConfig::Http(http) => {
            let upstream = HttpUpstream::new(http);
            launch(config, listener, site, shared, upstream)
        }
        UpstreamConfig::Stdio(stdio) => {
            let upstream = StdioUpstream::new(stdio.clone());
            launch(config, listener, site, shared, upstream)
        }
    })
}

/// What the first configuration fixed for the life of the process.
struct Site {
    addr: SocketAddr,
    ended: reload::EndedStore,
    /// The first generation's RFC 9728 document (later ones bring their own).
    metadata: Option<ResourceMetadata>,
}

pub(crate) type AuthSetup = Option<(pipeline::AuthLayers, ResourceMetadata)>;

/// This gateway's resource URL (RFC 8707) and its RFC 9728 document.
fn resource_metadata(
    auth: &crate::config::AuthConfig,
    config: &Config,
    addr: SocketAddr,
) -> Result<(String, ResourceMetadata), String> {
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let resource =
        auth.resource.clone().unwrap_or_else(|| format!("{scheme}://127.0.0.1:{}{}", addr.port(), config.path));
    let metadata = ResourceMetadata::new(&resource, &auth.authorization_servers, &auth.scopes_supported)?;
    Ok((resource, metadata))
}

/// The RFC 9728 document alone, for a reload that keeps the authentication layers.
pub(crate) fn metadata_only(config: &Config, addr: SocketAddr) -> Result<Option<ResourceMetadata>, String> {
    config.auth.as_ref().map(|auth| resource_metadata(auth, config, addr).map(|(_, metadata)| metadata)).transpose()
}

/// The authentication layers and the RFC 9728 document, for the bound address.
pub(crate) fn auth_layers(config: &Config, addr: SocketAddr) -> Result<AuthSetup, String> {
    let Some(auth) = &config.auth else { return Ok(None) };
    let (resource, metadata) = resource_metadata(auth, config, addr)?;
    let jwt = auth.jwt.as_ref().map(|jwt| crate::auth::jwt_verifier(jwt, &resource)).transpose()?;
    let authenticator = Authenticator::new(auth.api_keys.clone(), jwt);
    let hint = if auth.required_scopes.is_empty() { &auth.scopes_supported } else { &auth.required_scopes };
    let challenge = Challenge::new(metadata.url(), hint.iter().cloned());
    let authenticate =
        AuthLayer::new(Arc::new(authenticator), challenge.clone()).require(auth.required_scopes.iter().cloned());
    let requirements = ScopeRequirements { per_method: auth.method_scopes.clone(), per_tool: auth.tool_scopes.clone() };
    let scopes = ScopeLayer::new(requirements, challenge);
    tracing::info!(target: "mcp_guard", resource, methods = auth.describe(), metadata = metadata.url(), "authentication_enabled");
    Ok(Some((pipeline::AuthLayers { authenticate, scopes }, metadata)))
}

fn launch<U: Upstream>(
    config: Config,
    (listener, tls): (TcpListener, Option<(tokio_rustls::TlsAcceptor, Arc<tls::Certificates>)>),
    site: Site,
    shared: pipeline::Shared,
    upstream: U,
) -> Running {
    let upstream = Arc::new(upstream);
    let addr = site.addr;
    log_settings(&config, addr, &shared, upstream.kind());
    if config.metrics {
        // Installs the recorder before the first request is counted.
        telemetry::metrics();
    }
    // HSTS only over TLS: over plain HTTP the header is ignored (RFC 6797
    // §8.1) and would be a false promise.
    let hsts = tls.is_some();
    let first = generation(config, addr, shared, site.metadata, &upstream, hsts);
    let (grace, header_timeout) = (first.config.shutdown_timeout, first.config.header_read_timeout);
    let current = Arc::new(ArcSwap::from_pointee(first));
    let service = reload::Current(Arc::clone(&current));
    let stop = CancellationToken::new();
    let token = stop.clone();
    let janitor = tokio::spawn(janitor(Arc::clone(&current), Arc::clone(&upstream)));
    let (acceptor, certificates) = tls.unzip();
    let task = {
        let (upstream, current) = (Arc::clone(&upstream), Arc::clone(&current));
        tokio::spawn(async move {
            listener::serve(listener, service, token, listener::Limits { grace, header_timeout }, acceptor).await;
            janitor.abort();
            upstream.shutdown().await;
            // Records of the last requests are still queued: write them out.
            let audit = current.load().shared.audit.clone();
            let _ = tokio::task::spawn_blocking(move || audit.flush(AUDIT_FLUSH)).await;
            tracing::info!(target: "mcp_guard", "stopped");
        })
    };
    let (ended, swap) = (site.ended, Mutex::new(()));
    let reload: Reloader = Box::new(move |config: Config| {
        // One reload at a time: SIGHUP and the file watch may race.
        let _one = swap.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = current.load_full();
        if let Some(key) = reload::restart_required(&old.config, &config) {
            return Err(ReloadError::RestartRequired(key));
        }
        let (shared, metadata) = reload::layers(&config, addr, &ended, Some((&old.config, &old.shared)))?;
        current.store(Arc::new(generation(config, addr, shared, metadata, &upstream, hsts)));
        tracing::info!(target: "mcp_guard", "config_reloaded");
        Ok(())
    });
    Running { addr, stop, task: Mutex::new(Some(task)), tls: certificates, reload }
}

/// The whole request path for one configuration: steps 0–17 and the routes.
fn generation<U: Upstream>(
    config: Config,
    addr: SocketAddr,
    shared: pipeline::Shared,
    metadata: Option<ResourceMetadata>,
    upstream: &Arc<U>,
    hsts: bool,
) -> reload::Generation<
    impl tower::Service<
        http::Request<BoxBody>,
        Response = http::Response<BoxBody>,
        Error = std::convert::Infallible,
        Future: Send,
    >
    + Clone
    + Send
    + Sync
    + 'static
    + use<U>,
> {
    let endpoint = pipeline::mcp_endpoint(&config, addr.port(), &shared, Arc::clone(upstream));
    let mut routes = Router::new()
        .route_service(&config.path, endpoint)
        .route("/health", get(health))
        .route("/ready", get(ready::<U>).with_state((Arc::clone(upstream), shared.global_rate_limit.clone())));
    if config.metrics {
        routes = routes.route("/metrics", get(metrics));
    }
    if let Some(metadata) = metadata {
        for path in metadata.paths() {
            let document = metadata.document();
            routes = routes.route(path, get(move || async move { json(document) }));
        }
    }
    let routes = routes.fallback(not_found).with_state(Arc::clone(upstream));
    let service = pipeline::around_routes(&config, hsts, routes);
    reload::Generation { config, shared, service }
}

fn log_settings(config: &Config, addr: SocketAddr, shared: &pipeline::Shared, upstream: &str) {
    let host_origin = config.host_origin(addr.port());
    tracing::info!(target: "mcp_guard", listen = %addr, path = config.path, upstream, "gateway_starting");
    tracing::info!(target: "mcp_guard", allowed_origins = ?host_origin.describe_origins(), "origin_validation_enabled");
    let versions: Vec<&str> = shared.versions.supported().collect();
    tracing::info!(target: "mcp_guard", supported_versions = ?versions, "protocol_version_validation_enabled");
    tracing::info!(target: "mcp_guard", max_size_mb = config.max_body as f64 / 1_048_576.0, "request_size_limit_enabled");
    match &config.rate_limit {
        Some(rl) => tracing::info!(
            target: "mcp_guard",
            per_minute = rl.caller.per_minute.get(),
            burst = rl.caller.burst.get(),
            per_method = rl.per_method.len(),
            per_tool = rl.per_tool.len(),
            backend = ?rl.backend,
            "rate_limit_enabled"
        ),
        None => tracing::warn!(target: "mcp_guard", "rate_limit_disabled"),
    }
    let policy = &config.policy;
    tracing::info!(
        target: "mcp_guard",
        access_policy = policy.access.is_some(),
        pin_action = ?policy.catalog.action,
        pin_file = policy.pin_file.as_ref().map(|p| p.display().to_string()),
        pinned_tools = policy.catalog.pins.as_ref().map_or(0, |p| p.tools.len()),
        validation = ?policy.catalog.defaults.validation,
        per_tool_limits = policy.catalog.per_tool.len(),
        "tool_policy_enabled"
    );
}

/// Prunes idle rate-limit keys, runs metrics upkeep, refreshes gauges.
async fn janitor<U: Upstream, S>(current: Arc<ArcSwap<reload::Generation<S>>>, upstream: Arc<U>) {
    let mut tick = tokio::time::interval(JANITOR_TICK);
    loop {
        tick.tick().await;
        let generation = current.load();
        let shared = &generation.shared;
        if let Some(limiter) = &shared.rate_limit {
            limiter.housekeeping();
            metrics::gauge!("mcp_guard_rate_limit_keys").set(limiter.len() as f64);
        }
        let sessions = upstream.session_count().unwrap_or_else(|| shared.versions.len());
        metrics::gauge!("mcp_guard_active_sessions").set(sessions as f64);
        if let Some(handle) = telemetry::metrics() {
            handle.run_upkeep();
        }
    }
}

async fn health() -> &'static str {
    "ok"
}

type ReadyState<U> = (Arc<U>, Option<GlobalRateLimitLayer>);

async fn ready<U: Upstream>(State((upstream, limiter)): State<ReadyState<U>>) -> (StatusCode, String) {
    if let Err(why) = upstream.ready().await {
        return (StatusCode::SERVICE_UNAVAILABLE, why);
    }
    match limiter.as_ref().and_then(|l| Some((l.degraded()?, l.on_failure()))) {
        None => (StatusCode::OK, "ready".into()),
        // Still serving, under per-replica limits: stay in rotation, say so.
        Some((why, BackendFailure::Local)) => (StatusCode::OK, format!("ready (degraded: {why})")),
        // Refusing every MCP request until Redis answers.
        Some((why, BackendFailure::Closed)) => (StatusCode::SERVICE_UNAVAILABLE, why.into()),
    }
}

fn json(document: bytes::Bytes) -> http::Response<BoxBody> {
    let mut response = http::Response::new(BoxBody::from(document));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn metrics() -> (StatusCode, String) {
    match telemetry::metrics() {
        Some(handle) => (StatusCode::OK, handle.render()),
        None => (StatusCode::SERVICE_UNAVAILABLE, "another metrics recorder is installed".into()),
    }
}

async fn not_found() -> http::Response<BoxBody> {
    Rejection::NotFound.into_response()
}
