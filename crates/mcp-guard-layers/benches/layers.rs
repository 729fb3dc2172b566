//! The cost of each layer alone and of the whole MCP endpoint stack, per
//! request, in process: `cargo bench -p mcp-guard-layers`.
//!
//! Every case sends the same realistic request (a `tools/call` POST with an
//! allowed Origin, a session, and a protocol version) through the layer(s)
//! to a service that answers at once, so the figures are the layers' own
//! cost. `baseline` is that service alone: subtract it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, num::NonZeroU32, time::Duration};

use bytes::Bytes;
use divan::Bencher;
use http::{Request, Response};
use http_body_util::{Full, Limited};
use mcp_guard_layers::{
    body_limit::BodyLimitLayer,
    client_ip::{ClientIpLayer, TrustedProxies},
    host_origin::{HostOriginLayer, HostOriginPolicy},
    identity::PeerAddr,
    inspect::JsonRpcInspectionLayer,
    jsonrpc::{Limits, inspect},
    protocol_version::{NegotiationLayer, ProtocolVersionLayer, Versions},
    rate_limit::{RateLimitConfig, RateLimitLayer},
    request_id::RequestIdLayer,
    security_headers::SecurityHeadersLayer,
};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Lisbon","units":"metric"},"_meta":{"progressToken":"p-42"}}}"#;

fn main() {
    divan::main();
}

fn request() -> Request<Full<Bytes>> {
    let mut req = Request::post("/mcp")
        .header("host", "127.0.0.1:8001")
        .header("origin", "http://localhost:3000")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", "3f0c1b5e9a7d4c2e8b6a1f0d3c5e7a9b3f0c1b5e9a7d4c2e8b6a1f0d3c5e7a9b")
        .header("mcp-protocol-version", "2025-11-25")
        .header("content-length", CALL.len())
        .body(Full::new(Bytes::from_static(CALL)))
        .unwrap();
    req.extensions_mut().insert(PeerAddr("127.0.0.1:50000".parse().unwrap()));
    req
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

async fn answer<B>(_req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(br#"{"jsonrpc":"2.0","id":42,"result":{}}"#))))
}

fn run<S>(bencher: Bencher, svc: S)
where
    S: Service<Request<Full<Bytes>>, Error = Infallible> + Clone,
{
    let rt = runtime();
    bencher.bench_local(|| rt.block_on(svc.clone().oneshot(request())).unwrap());
}

fn policy() -> HostOriginPolicy {
    HostOriginPolicy::loopback(8001).allow_origin("http://localhost:3000").unwrap()
}

fn versions() -> Versions {
    let v = Versions::default();
    v.learn("3f0c1b5e9a7d4c2e8b6a1f0d3c5e7a9b3f0c1b5e9a7d4c2e8b6a1f0d3c5e7a9b", v.find(b"2025-11-25").unwrap());
    v
}

fn unlimited() -> RateLimitLayer {
    RateLimitLayer::new(RateLimitConfig::new(NonZeroU32::MAX))
}

#[divan::bench]
fn baseline(bencher: Bencher) {
    run(bencher, service_fn(answer));
}

#[divan::bench]
fn request_id(bencher: Bencher) {
    run(bencher, RequestIdLayer::default().layer(service_fn(answer)));
}

#[divan::bench]
fn client_ip(bencher: Bencher) {
    run(bencher, ClientIpLayer::new(TrustedProxies::default()).layer(service_fn(answer)));
}

#[divan::bench]
fn security_headers(bencher: Bencher) {
    run(bencher, SecurityHeadersLayer::new().layer(service_fn(answer)));
}

#[divan::bench]
fn host_origin(bencher: Bencher) {
    run(bencher, HostOriginLayer::new(policy()).layer(service_fn(answer)));
}

#[divan::bench]
fn body_limit(bencher: Bencher) {
    run(bencher, BodyLimitLayer::new(4 << 20).layer(service_fn(answer::<Limited<Full<Bytes>>>)));
}

#[divan::bench]
fn protocol_version(bencher: Bencher) {
    run(bencher, ProtocolVersionLayer::new(versions()).layer(service_fn(answer)));
}

#[divan::bench]
fn jsonrpc_inspection(bencher: Bencher) {
    let layer = JsonRpcInspectionLayer::new(Limits::default(), 4 << 20, Duration::from_secs(30));
    run(bencher, layer.layer(service_fn(answer)));
}

#[divan::bench]
fn jsonrpc_classify_only(bencher: Bencher) {
    bencher.bench_local(|| inspect(divan::black_box(CALL), Limits::default()).unwrap());
}

#[divan::bench]
fn rate_limit(bencher: Bencher) {
    run(bencher, unlimited().layer(service_fn(answer)));
}

/// Every layer of the gateway's MCP endpoint, in the gateway's order.
#[divan::bench]
fn full_stack(bencher: Bencher) {
    let versions = versions();
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::default())
        .layer(ClientIpLayer::new(TrustedProxies::default()))
        .layer(SecurityHeadersLayer::new())
        .layer(HostOriginLayer::new(policy()))
        .layer(mcp_guard_layers::cors::layer(&policy()))
        .layer(BodyLimitLayer::new(4 << 20))
        .map_request(|req: Request<Limited<Full<Bytes>>>| req.map(|b| Full::new(body_bytes(b))))
        .layer(ProtocolVersionLayer::new(versions.clone()))
        .layer(JsonRpcInspectionLayer::new(Limits::default(), 4 << 20, Duration::from_secs(30)))
        .layer(NegotiationLayer::new(versions))
        .layer(unlimited())
        .service(service_fn(answer));
    run(bencher, svc);
}

/// [`full_stack`] plus the access policy (step 13) and the tool-call guard
/// (step 16) with a learned `inputSchema`, as the gateway runs by default
/// once a policy is configured.
#[divan::bench]
fn full_stack_with_policy(bencher: Bencher) {
    use mcp_guard_layers::policy::{
        AccessPolicyLayer, ToolCallLayer,
        catalog::{CatalogConfig, ToolCatalog},
        rules::{AccessPolicy, Effect, RuleSpec},
    };
    let rule = RuleSpec {
        principals: vec!["*".into()],
        effect: Effect::Allow,
        tools: vec!["get_*".into(), "search".into()],
        resources: vec!["file:///public/*".into()],
        prompts: vec![],
    };
    let access = AccessPolicy::compile(Effect::Deny, &std::collections::HashMap::new(), &[rule]).unwrap();
    let catalog = ToolCatalog::new(CatalogConfig::default());
    let tool = serde_json::json!({"name": "get_weather", "description": "Weather", "inputSchema": {"type": "object",
        "properties": {"city": {"type": "string"}, "units": {"type": "string", "enum": ["metric", "imperial"]}}, "required": ["city"]}});
    catalog.observe(&[tool.as_object().unwrap().clone()]);
    let versions = versions();
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::default())
        .layer(ClientIpLayer::new(TrustedProxies::default()))
        .layer(SecurityHeadersLayer::new())
        .layer(HostOriginLayer::new(policy()))
        .layer(mcp_guard_layers::cors::layer(&policy()))
        .layer(BodyLimitLayer::new(4 << 20))
        .map_request(|req: Request<Limited<Full<Bytes>>>| req.map(|b| Full::new(body_bytes(b))))
        .layer(ProtocolVersionLayer::new(versions.clone()))
        .layer(JsonRpcInspectionLayer::new(Limits::default(), 4 << 20, Duration::from_secs(30)))
        .layer(NegotiationLayer::new(versions))
        .layer(AccessPolicyLayer::new(Some(access), Some(catalog.clone())))
        .layer(unlimited())
        .layer(ToolCallLayer::new(catalog))
        .service(service_fn(answer));
    run(bencher, svc);
}

/// The body-limit wrapper holds a `Full`; unwrap it without an await in the bench.
fn body_bytes(limited: Limited<Full<Bytes>>) -> Bytes {
    use http_body::Body;
    let mut body = std::pin::pin!(limited);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match body.as_mut().poll_frame(&mut cx) {
        std::task::Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}
