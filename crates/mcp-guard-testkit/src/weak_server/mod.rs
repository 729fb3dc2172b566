//! A Streamable HTTP MCP server with switchable weaknesses, for testing
//! `mcp-guard probe`: every finding must fire when its weakness is there and
//! stay quiet when it is not.
//!
//! [`spawn_weak`] serves the real [`TestServer`] at `/mcp` on a free loopback
//! port behind a stack that is **secure by default**, built from
//! `mcp-guard-layers` in the gateway's order: security headers, Host/Origin
//! checks for its own loopback port, CORS for those origins only, a
//! [`BODY_LIMIT`] body limit, API-key authentication ([`TOKEN_A`] and
//! [`TOKEN_B`] are two principals) with an RFC 9728 challenge and a metadata
//! document at `/.well-known/oauth-protected-resource/mcp`, session binding,
//! `MCP-Protocol-Version` checks, JSON-RPC inspection (depth limit, no
//! batches after 2025-03-26), and a per-principal rate limit of
//! [`RATE_PER_MINUTE`] a minute with a burst of [`RATE_BURST`].
//!
//! Each [`Weakness`] removes or replaces exactly one of those protections;
//! where the layers have no switch, a small middleware here does the damage
//! (a `Server` header with a version, a reflecting CORS policy, sequential
//! session ids, a DELETE that keeps the session, a traceback, …). Every HTTP
//! request the server receives is counted ([`WeakServer::requests`]).

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    num::NonZeroU32,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::{Request, State},
    middleware::{Next, from_fn, from_fn_with_state},
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use mcp_guard_layers::{
    Rejection,
    auth::{AuthFailure, AuthLayer, Authenticate, Challenge},
    body_limit::{BodyLimitLayer, is_limit_error},
    cors,
    host_origin::{HostOriginLayer, HostOriginPolicy},
    identity::{AuthMethod, Principal},
    inspect::JsonRpcInspectionLayer,
    jsonrpc::Limits,
    protocol_version::{NegotiationLayer, ProtocolVersionLayer, Versions},
    rate_limit::{RateLimitConfig, RateLimitLayer},
    security_headers::SecurityHeadersLayer,
    session_binding::{SessionBindingLayer, SessionOwners},
};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt, layer::layer_fn, service_fn};

use crate::{ServerState, TestServer};

mod damage;
use damage::*;

/// The first principal's API key (`Authorization: Bearer token-a`).
pub const TOKEN_A: &str = "token-a";
/// The second principal's API key.
pub const TOKEN_B: &str = "token-b";
/// Request bodies larger than this are refused with 413 (unless [`Weakness::NoBodyLimit`]).
pub const BODY_LIMIT: usize = 512 * 1024;
/// Sustained requests a minute per principal.
pub const RATE_PER_MINUTE: u32 = 100;
/// Requests a principal may send at once: well under the probe's default budget of 200.
pub const RATE_BURST: u32 = 30;
/// Where the RFC 9728 metadata document is served.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";
/// The `Server` header of [`Weakness::ServerVersionHeader`].
pub const SERVER_HEADER: &str = "weak/1.2.3";
/// Every body size bound when the body limit is off.
const UNBOUNDED: usize = 64 << 20;
/// How long [`Weakness::HangOnMalformed`] leaves a malformed request unanswered.
const HANG: Duration = Duration::from_secs(60);

/// One protection taken away. The name ([`Weakness::name`]) is its kebab-case form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Weakness {
    /// Any `Origin` is accepted (so `null` too).
    ForeignOrigin,
    /// Any `Host` is accepted.
    ForeignHost,
    /// `Origin: null` is accepted.
    NullOrigin,
    /// 401s carry `WWW-Authenticate: Bearer realm="weak"`: no `resource_metadata`.
    NoAuthChallenge,
    /// The metadata document names another resource and no authorization server.
    BadMetadata,
    /// Any bearer token is accepted (as the first principal, unless it is [`TOKEN_B`]).
    AcceptsMalformedToken,
    /// `MCP-Protocol-Version` is ignored: no version layers, and the header is
    /// removed before rmcp (which checks it too) sees it.
    NoVersionCheck,
    /// No body limit at all (bodies up to 64 MiB are read and served).
    NoBodyLimit,
    /// Instead of 413, a body over [`BODY_LIMIT`] gets a 500.
    BodyLimit5xx,
    /// No rate limit.
    NoRateLimit,
    /// 429s lose their `Retry-After`.
    RateLimitNoRetryAfter,
    /// No security headers (`X-Content-Type-Options`, `X-Frame-Options`, CSP, `Cache-Control`).
    MissingHeaders,
    /// Every response says `Server: weak/1.2.3`.
    ServerVersionHeader,
    /// CORS answers every preflight and response with the request's `Origin`.
    CorsReflect,
    /// CORS answers `Access-Control-Allow-Origin: *` with credentials allowed.
    CorsWildcardCredentials,
    /// Session ids are `1`, `2`, `3`, …
    PredictableSessionIds,
    /// Session ids contain a space (outside visible ASCII).
    SessionIdCharset,
    /// DELETE answers 200 but the session lives on.
    DeleteIneffective,
    /// Sessions are not bound to their creator: any principal may use any session.
    CrossPrincipal,
    /// A POST body that is not JSON gets a 500.
    ServerErrorOnMalformed,
    /// A POST body that is not JSON gets a 400 with a Python traceback.
    StackTrace,
    /// A POST body that is not JSON is left unanswered for a minute.
    HangOnMalformed,
    /// JSON-RPC batches are processed under every protocol version.
    BatchAccepted,
}

impl Weakness {
    /// Every weakness.
    pub const ALL: [Weakness; 23] = [
        Weakness::ForeignOrigin,
        Weakness::ForeignHost,
        Weakness::NullOrigin,
        Weakness::NoAuthChallenge,
        Weakness::BadMetadata,
        Weakness::AcceptsMalformedToken,
        Weakness::NoVersionCheck,
        Weakness::NoBodyLimit,
        Weakness::BodyLimit5xx,
        Weakness::NoRateLimit,
        Weakness::RateLimitNoRetryAfter,
        Weakness::MissingHeaders,
        Weakness::ServerVersionHeader,
        Weakness::CorsReflect,
        Weakness::CorsWildcardCredentials,
        Weakness::PredictableSessionIds,
        Weakness::SessionIdCharset,
        Weakness::DeleteIneffective,
        Weakness::CrossPrincipal,
        Weakness::ServerErrorOnMalformed,
        Weakness::StackTrace,
        Weakness::HangOnMalformed,
        Weakness::BatchAccepted,
    ];

    /// Kebab-case name, e.g. `foreign-origin` (`body-limit5xx` for [`Weakness::BodyLimit5xx`]).
    pub fn name(self) -> String {
        let mut name = String::new();
        for c in format!("{self:?}").chars() {
            if c.is_ascii_uppercase() && !name.is_empty() {
                name.push('-');
            }
            name.push(c.to_ascii_lowercase());
        }
        name
    }
}

impl std::fmt::Display for Weakness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// A running weak server; stops when dropped.
#[derive(Debug)]
pub struct WeakServer {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    /// Its MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// What it was started with.
    pub weaknesses: Vec<Weakness>,
    requests: Arc<AtomicUsize>,
    state: Arc<ServerState>,
    stop: CancellationToken,
}

impl WeakServer {
    /// HTTP requests received so far, on every path, refused ones included.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The URL of its RFC 9728 metadata document.
    pub fn metadata_url(&self) -> String {
        format!("http://{}{METADATA_PATH}", self.addr)
    }

    /// The state its MCP sessions share.
    pub fn state(&self) -> &Arc<ServerState> {
        &self.state
    }
}

impl Drop for WeakServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves [`TestServer`] at `/mcp` on a free loopback port, secure but for
/// `weaknesses`.
pub async fn spawn_weak(weaknesses: &[Weakness]) -> std::io::Result<WeakServer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let state = Arc::<ServerState>::default();
    let requests = Arc::new(AtomicUsize::new(0));
    let app = app(addr, weaknesses, state.clone(), requests.clone(), stop.child_token())?;
    let token = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned()).await;
    });
    Ok(WeakServer { addr, url: format!("http://{addr}/mcp"), weaknesses: weaknesses.to_vec(), requests, state, stop })
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
}

/// The whole router. Layers are added innermost first (axum wraps the
/// routes so far), so reading bottom-up gives the order a request meets them.
fn app(
    addr: SocketAddr,
    weak: &[Weakness],
    state: Arc<ServerState>,
    requests: Arc<AtomicUsize>,
    stop: CancellationToken,
) -> std::io::Result<Router> {
    let has = |w: Weakness| weak.contains(&w);
    let unbounded = has(Weakness::NoBodyLimit) || has(Weakness::BodyLimit5xx);
    // rmcp's own Host and body checks are off: the layers (or their absence) decide.
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_max_request_body_bytes(UNBOUNDED)
        .with_cancellation_token(stop);
    let service = StreamableHttpService::new(
        move || Ok(TestServer::with_state(state.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let versions = Versions::default();
    let mut mcp = Router::new().route_service("/mcp", service);

    if has(Weakness::PredictableSessionIds) || has(Weakness::SessionIdCharset) {
        let style = if has(Weakness::PredictableSessionIds) { IdStyle::Sequential } else { IdStyle::Spaced };
        mcp = mcp.layer(from_fn_with_state(Arc::new(Rewriter::new(style)), rewrite_session_ids));
    }
    if has(Weakness::NoVersionCheck) {
        mcp = mcp.layer(from_fn(strip_version_header));
    }
    if !has(Weakness::NoRateLimit) {
        let burst = NonZeroU32::new(RATE_BURST).ok_or_else(|| invalid("burst"))?;
        let per_minute = NonZeroU32::new(RATE_PER_MINUTE).ok_or_else(|| invalid("rate"))?;
        mcp = mcp.layer(RateLimitLayer::new(RateLimitConfig::new(per_minute).with_burst(burst)));
        if has(Weakness::RateLimitNoRetryAfter) {
            mcp = mcp.layer(from_fn(strip_retry_after));
        }
    }
    if !has(Weakness::NoVersionCheck) {
        mcp = mcp.layer(NegotiationLayer::new(versions.clone()));
    }
    let max_body = if unbounded { UNBOUNDED } else { BODY_LIMIT };
    mcp = mcp.layer(JsonRpcInspectionLayer::new(Limits::default(), max_body, Duration::from_secs(30)));
    if has(Weakness::BatchAccepted) {
        mcp = mcp.layer(layer_fn(|inner| service_fn(move |req| serve_batch(Clone::clone(&inner), req))));
    }
    for (weakness, mode) in [
        (Weakness::ServerErrorOnMalformed, Malformed::ServerError),
        (Weakness::StackTrace, Malformed::StackTrace),
        (Weakness::HangOnMalformed, Malformed::Hang),
    ] {
        if has(weakness) {
            mcp = mcp.layer(from_fn_with_state(mode, on_malformed));
        }
    }
    if !has(Weakness::NoVersionCheck) {
        mcp = mcp.layer(ProtocolVersionLayer::new(versions));
    }
    if !has(Weakness::CrossPrincipal) {
        mcp = mcp.layer(SessionBindingLayer::new(SessionOwners::default()));
    }
    if has(Weakness::DeleteIneffective) {
        mcp = mcp.layer(from_fn(ineffective_delete));
    }
    let metadata_url = format!("http://{addr}{METADATA_PATH}");
    let keys = ApiKeys { any: has(Weakness::AcceptsMalformedToken) };
    mcp = mcp.layer(AuthLayer::new(Arc::new(keys), Challenge::new(metadata_url, ["mcp"])));
    if has(Weakness::NoAuthChallenge) {
        mcp = mcp.layer(from_fn(strip_challenge));
    }
    if has(Weakness::BodyLimit5xx) {
        mcp = mcp.layer(from_fn(fail_on_big_bodies));
    } else if !has(Weakness::NoBodyLimit) {
        mcp = mcp.layer(BodyLimitLayer::new(BODY_LIMIT));
    }
    let mut policy = HostOriginPolicy::loopback(addr.port());
    if has(Weakness::ForeignHost) {
        policy = policy.allow_host("*").map_err(invalid)?;
    }
    if has(Weakness::ForeignOrigin) {
        policy = policy.allow_origin("*").map_err(invalid)?;
    }
    if has(Weakness::NullOrigin) {
        policy = policy.allow_origin("null").map_err(invalid)?;
    }
    // CORS keeps to the loopback origins whatever the Origin check lets through.
    let cors = cors::layer(&HostOriginPolicy::loopback(addr.port()));
    mcp = mcp.layer(cors).layer(HostOriginLayer::new(policy));
    if has(Weakness::CorsReflect) || has(Weakness::CorsWildcardCredentials) {
        mcp = mcp.layer(from_fn_with_state(has(Weakness::CorsWildcardCredentials), weak_cors));
    }

    let document = metadata(addr, has(Weakness::BadMetadata));
    let mut app = mcp.route(
        METADATA_PATH,
        get(move || {
            let document = document.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], document) }
        }),
    );
    if !has(Weakness::MissingHeaders) {
        app = app.layer(SecurityHeadersLayer::new());
    }
    if has(Weakness::ServerVersionHeader) {
        app = app.layer(from_fn(server_header));
    }
    Ok(app.layer(from_fn_with_state(requests, count)))
}

/// The RFC 9728 document: right, or naming another resource and no authorization server.
fn metadata(addr: SocketAddr, bad: bool) -> String {
    let document = if bad {
        serde_json::json!({ "resource": "http://other.example/mcp" })
    } else {
        serde_json::json!({
            "resource": format!("http://{addr}/mcp"),
            "authorization_servers": [format!("http://{addr}")],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["mcp"],
        })
    };
    document.to_string()
}

/// Two API keys, two principals; with `any`, every token is someone.
struct ApiKeys {
    any: bool,
}

impl Authenticate for ApiKeys {
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Principal, AuthFailure>> + Send + 'a>> {
        Box::pin(async move {
            let subject = match credential {
                TOKEN_A => "a",
                TOKEN_B => "b",
                _ if self.any => "a",
                _ => return Err(AuthFailure::invalid("unknown_key")),
            };
            Ok(Principal { subject: subject.into(), scopes: Arc::new([]), method: AuthMethod::ApiKey })
        })
    }
}
