//! The request path, built in one place.
//!
//! Every route (the MCP endpoint, `/health`, `/ready`, `/metrics`) gets:
//!
//! 0. **Lingering** (`linger`) — outermost, so a body any later step drops
//!    unread is drained while the refusal is written, not reset.
//! 1. **Request id** — first, so every log line and the upstream can carry it.
//! 2. **Client IP** — resolved once (trusted proxies only) for logs and limits.
//! 3. **Timing, metrics, the rejection log** (`observe`) — outside everything
//!    that can refuse, so every answer, refusals included, is timed and counted.
//! 4. **Security headers** — on every response, errors included.
//!
//! The MCP endpoint then adds, in order:
//!
//! 5. **Host/Origin** — a DNS-rebinding page is refused before anything else
//!    looks at the request, let alone reads its body.
//! 6. **CORS preflight** — answered only for origins step 5 allowed.
//! 7. **Body limit** — a declared oversize body is refused before a byte of
//!    it is read; any other body is capped while it streams.
//! 8. **Authentication** — identifies the principal (401/403/503 with an
//!    RFC 6750 challenge pointing at the RFC 9728 metadata).
//! 9. **Session binding** — a session id opens only its creator's session
//!    (404 otherwise). Right after authentication, before anything whose
//!    answer differs between known and unknown sessions, so ids can't be probed.
//!    With `[sessions]`, sealed tokens (`session_seal`) instead of the
//!    in-memory table: every later step sees the upstream's own session id,
//!    and negotiation learns from the answer before it is sealed.
//! 10. **MCP-Protocol-Version** — header rules; needs no body.
//! 11. **JSON-RPC inspection** — reads and classifies the body once for
//!     everything after it; batches only under 2025-03-26 (needs step 10).
//!     The **audit log** wraps everything after this step: it needs the
//!     parsed requests, and sees every later decision in the response.
//! 12. **Negotiation** — initialize header vs body; learns the version the
//!     session negotiated (needs steps 10 and 11).
//! 13. **Access policy** — a tool, resource or prompt the principal may not
//!     use is answered as if it did not exist, and list answers are filtered
//!     (and tool pins checked) on the way back. Before scope step-up, so a
//!     scope challenge cannot reveal a tool the caller may not even see.
//! 14. **Scope step-up** per method and tool (needs principal and step 11).
//! 15. **Rate limit** — keyed by principal (else client IP), with per-method
//!     and per-tool limits from the inspection; after every cheap refusal, so
//!     requests refused for other reasons spend no quota.
//! 16. **Tool calls** — pinned-definition block, argument size, and argument
//!     validation against the tool's `inputSchema`: the most expensive check,
//!     so only calls within their quota pay for it.
//! 17. **Transport rules and the upstream** ([`Endpoint`]), which strips the
//!     client's `Authorization` and cookies: tokens are never passed through.
//!
//! Cheap, request-independent checks come first so hostile traffic costs as
//! little as possible; everything that needs the principal or the parsed
//! body comes after what produces them.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use http::{Method, Request, Response};
use mcp_guard_layers::{
    Rejection,
    auth::{AuthLayer, ScopeLayer},
    body_limit::BodyLimitLayer,
    client_ip::ClientIpLayer,
    cors,
    host_origin::HostOriginLayer,
    inspect::JsonRpcInspectionLayer,
    jsonrpc::Inspection,
    policy::{AccessPolicyLayer, ToolCallLayer, catalog::ToolCatalog},
    protocol_version::{NegotiationLayer, ProtocolVersionLayer, Versions},
    rate_limit::RateLimitLayer,
    request_id::RequestIdLayer,
    security_headers::SecurityHeadersLayer,
    session_binding::{SessionBindingLayer, SessionOwners},
    transport,
};
use tower::{Service, ServiceBuilder, util::option_layer};

use super::{linger::LingerLayer, listener::Answering, observe::ObserveLayer};
use crate::{
    audit::AuditLayer, body::BoxBody, config::Config, redis::GlobalRateLimitLayer, session_seal::SealedSessionLayer,
    upstream::Upstream,
};

/// What the MCP endpoint's layers share with the rest of the server.
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    pub(crate) versions: Versions,
    pub(crate) owners: SessionOwners,
    /// Sealed session tokens (`[sessions]`), in place of `owners`.
    pub(crate) sealed: Option<SealedSessionLayer>,
    pub(crate) rate_limit: Option<RateLimitLayer>,
    /// Step 15 when `rate_limit.backend = "redis"`, instead of `rate_limit`.
    pub(crate) global_rate_limit: Option<GlobalRateLimitLayer>,
    pub(crate) auth: Option<AuthLayers>,
    pub(crate) catalog: ToolCatalog,
    pub(crate) access: AccessPolicyLayer,
    pub(crate) audit: AuditLayer,
}

/// The two authentication steps, built once the listening port is known.
#[derive(Clone, Debug)]
pub(crate) struct AuthLayers {
    pub(crate) authenticate: AuthLayer,
    pub(crate) scopes: ScopeLayer,
}

impl Shared {
    /// Fails when the audit log cannot be opened. The Redis rate limiter,
    /// if configured, is set by the caller (it needs a runtime).
    pub(crate) fn new(config: &Config, auth: Option<AuthLayers>) -> std::io::Result<Self> {
        let versions = Versions::new(&config.protocol_versions).enforce_negotiated(config.enforce_negotiated_version);
        let catalog = ToolCatalog::new(config.policy.catalog.clone());
        let access = AccessPolicyLayer::new(config.policy.access.clone(), Some(catalog.clone()));
        let audit = AuditLayer::new(&config.audit, Some(catalog.clone()))?;
        Ok(Shared {
            versions,
            owners: SessionOwners::default(),
            sealed: None,
            rate_limit: rate_limit_layer(config),
            global_rate_limit: None,
            auth,
            catalog,
            access,
            audit,
        })
    }
}

impl Shared {
    /// The layers for a reloaded `config`, keeping what must outlive a
    /// reload: sessions (owners, negotiated versions), rate-limit buckets
    /// while the limits are unchanged, learned pins and seen definitions,
    /// and the audit log's writer while `[audit]` is unchanged. Auth, the
    /// Redis limiter and sealed sessions are the caller's, as in [`Shared::new`].
    pub(crate) fn reloaded(config: &Config, old: &Config, previous: &Shared) -> std::io::Result<Self> {
        let catalog = ToolCatalog::reloaded(config.policy.catalog.clone(), &previous.catalog);
        let access = AccessPolicyLayer::new(config.policy.access.clone(), Some(catalog.clone()));
        let audit = if config.audit == old.audit {
            previous.audit.with_catalog(Some(catalog.clone()))
        } else {
            AuditLayer::new(&config.audit, Some(catalog.clone()))?
        };
        let rate_limit = if config.rate_limit == old.rate_limit {
            previous.rate_limit.clone()
        } else {
            tracing::info!(target: "mcp_guard", "rate_limit_buckets_reset");
            rate_limit_layer(config)
        };
        Ok(Shared {
            versions: previous.versions.clone(),
            owners: previous.owners.clone(),
            sealed: None,
            rate_limit,
            global_rate_limit: None,
            auth: None,
            catalog,
            access,
            audit,
        })
    }
}

fn rate_limit_layer(config: &Config) -> Option<RateLimitLayer> {
    let settings = config.rate_limit.as_ref()?;
    Some(RateLimitLayer::new(crate::redis::rate_limit_config(settings)))
}

/// Steps 1–4, around the whole router.
pub(crate) fn around_routes<S>(
    config: &Config,
    hsts: bool,
    routes: S,
) -> impl Service<Request<BoxBody>, Response = Response<BoxBody>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static
+ use<S>
where
    S: Service<Request<BoxBody>, Response = Response<BoxBody>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let headers = if hsts {
        SecurityHeadersLayer::new().with_hsts(std::time::Duration::from_secs(365 * 24 * 3600))
    } else {
        SecurityHeadersLayer::new()
    };
    ServiceBuilder::new()
        .layer(LingerLayer)
        .layer(RequestIdLayer::default())
        .layer(ClientIpLayer::new(config.trusted_proxies.clone()))
        .layer(ObserveLayer)
        .layer(headers)
        .service(routes)
}

/// Steps 5–17: the MCP endpoint.
pub(crate) fn mcp_endpoint<U: Upstream>(
    config: &Config,
    port: u16,
    shared: &Shared,
    upstream: Arc<U>,
) -> impl Service<Request<BoxBody>, Response = Response<BoxBody>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static
+ use<U> {
    let host_origin = config.host_origin(port);
    ServiceBuilder::new()
        .map_response(|res: Response<_>| res.map(BoxBody::new))
        .layer(HostOriginLayer::new(host_origin.clone()))
        .layer(cors::layer(&host_origin))
        .layer(BodyLimitLayer::new(config.max_body))
        .map_request(|req: Request<_>| req.map(BoxBody::new))
        .layer(option_layer(shared.auth.as_ref().map(|a| a.authenticate.clone())))
        .layer(option_layer(shared.sealed.clone()))
        .layer(option_layer(shared.sealed.is_none().then(|| SessionBindingLayer::new(shared.owners.clone()))))
        .layer(ProtocolVersionLayer::new(shared.versions.clone()))
        .layer(JsonRpcInspectionLayer::new(config.json_limits, config.max_body, config.body_read_timeout))
        .layer(shared.audit.clone())
        .layer(NegotiationLayer::new(shared.versions.clone()))
        .layer(shared.access.clone())
        .layer(option_layer(shared.auth.as_ref().map(|a| a.scopes.clone())))
        .layer(option_layer(shared.rate_limit.clone()))
        .layer(option_layer(shared.global_rate_limit.clone()))
        .layer(ToolCallLayer::new(shared.catalog.clone()))
        .map_response(|res: Response<_>| res.map(BoxBody::new))
        .service(Endpoint { upstream })
}

/// Applies the Streamable HTTP method and header rules, then hands the
/// request to the upstream.
#[derive(Debug)]
pub(crate) struct Endpoint<U> {
    upstream: Arc<U>,
}

impl<U> Clone for Endpoint<U> {
    fn clone(&self) -> Self {
        Endpoint { upstream: Arc::clone(&self.upstream) }
    }
}

impl<U: Upstream> Service<Request<BoxBody>> for Endpoint<U> {
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<BoxBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<BoxBody>) -> Self::Future {
        // No token passthrough (MCP authorization spec): the client's
        // credentials end here; an upstream gets only the gateway's own.
        for name in [http::header::AUTHORIZATION, http::header::COOKIE, http::header::PROXY_AUTHORIZATION] {
            req.headers_mut().remove(name);
        }
        let upstream = Arc::clone(&self.upstream);
        Box::pin(async move {
            let checked = match *req.method() {
                Method::POST => transport::check_post(req.headers()),
                Method::GET => transport::check_get(req.headers()),
                Method::DELETE => Ok(()),
                _ => Err(Rejection::MethodNotAllowed),
            };
            if let Err(rejection) = checked {
                return Ok(rejection.into_response());
            }
            if let Some(inspection) = req.extensions().get::<Inspection>() {
                for message in &inspection.messages {
                    metrics::counter!("mcp_requests_total", "method" => mcp_method_label(message.method.as_deref()))
                        .increment(1);
                }
            }
            // A shared view of the body, kept so that a stream still open
            // when the shutdown grace ends can answer its requests' ids.
            let answering = req.extensions().get::<Inspection>().filter(|i| i.has_requests()).map(|i| i.body.clone());
            let start = Instant::now();
            let mut response = upstream.handle(req).await;
            metrics::histogram!("mcp_guard_upstream_duration_seconds", "upstream" => upstream.kind())
                .record(start.elapsed().as_secs_f64());
            if let Some(body) = answering.filter(|_| transport::is_event_stream(response.headers())) {
                response.extensions_mut().insert(Answering(body));
            }
            Ok(response)
        })
    }
}

/// MCP methods as metric labels: the specification's, else `other`.
fn mcp_method_label(method: Option<&str>) -> &'static str {
    const KNOWN: [&str; 22] = [
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "sampling/createMessage",
        "elicitation/create",
        "roots/list",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
        "server/discover",
        "tasks/get",
    ];
    match method {
        None => "response",
        Some(m) => KNOWN.iter().find(|k| **k == m).copied().unwrap_or("other"),
    }
}
