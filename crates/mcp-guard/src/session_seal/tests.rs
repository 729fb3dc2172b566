//! The layer alone against a recording service, and in the pipeline's order
//! with the protocol-version layers that key on the upstream's session id.

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use mcp_guard_layers::{
    Rejection,
    identity::{AuthMethod, Principal},
    inspect::JsonRpcInspectionLayer,
    jsonrpc::Limits,
    protocol_version::{NegotiationLayer, ProtocolVersion, ProtocolVersionLayer, Versions},
    transport::{MCP_PROTOCOL_VERSION, MCP_SESSION_ID},
};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

use super::*;
use crate::{body::BoxBody, config::SealingKey};

fn sealer(key: u8, target: &str) -> Sealer {
    let sealing =
        SessionSealing { keys: vec![SealingKey([key; 32])], ttl: Duration::from_secs(3600), replica_id: None };
    Sealer::new(&sealing, target).unwrap()
}

fn request(method: Method, who: &str, session: Option<&str>) -> Request<BoxBody> {
    let mut req = Request::builder().method(method).uri("/mcp");
    if let Some(s) = session {
        req = req.header(&MCP_SESSION_ID, s);
    }
    let mut req = req.body(BoxBody::empty()).unwrap();
    req.extensions_mut().insert(Principal { subject: who.into(), scopes: Arc::new([]), method: AuthMethod::ApiKey });
    req
}

/// What the upstream saw: each request's session header.
type Seen = Arc<Mutex<Vec<Option<String>>>>;

/// An upstream that opens session `up-1` (or whatever `x-new` asks for) on
/// a request without one, echoes the session id back otherwise, and fails
/// with 500 when asked by `x-fail`.
fn upstream(
    seen: Seen,
) -> impl Service<Request<BoxBody>, Response = Response<BoxBody>, Error = Infallible, Future: Send> + Clone + Send + 'static
{
    service_fn(move |req: Request<BoxBody>| {
        let session = req.headers().get(&MCP_SESSION_ID).map(|v| v.to_str().unwrap().to_owned());
        seen.lock().unwrap().push(session.clone());
        let mut res = Response::new(BoxBody::empty());
        let new = req.headers().get("x-new").cloned().unwrap_or(HeaderValue::from_static("up-1"));
        res.headers_mut().insert(&MCP_SESSION_ID, session.map_or(new, |s| HeaderValue::from_str(&s).unwrap()));
        if req.headers().contains_key("x-fail") {
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        async move { Ok::<_, Infallible>(res) }
    })
}

async fn send<S>(svc: &S, req: Request<BoxBody>) -> Response<BoxBody>
where
    S: Service<Request<BoxBody>, Response = Response<BoxBody>, Error = Infallible> + Clone,
{
    svc.clone().oneshot(req).await.unwrap()
}

fn session(res: &Response<BoxBody>) -> Option<&str> {
    res.headers().get(&MCP_SESSION_ID).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn tokens_outside_upstream_ids_inside() {
    let seen = Seen::default();
    let ended = Arc::new(MemoryEndedSessions::default());
    let svc = SealedSessionLayer::new(sealer(1, "http://u/mcp"), ended.clone()).layer(upstream(seen.clone()));
    let calls = || seen.lock().unwrap().len();

    let res = send(&svc, request(Method::POST, "alice", None)).await;
    let token = session(&res).unwrap().to_owned();
    assert_ne!(token, "up-1");
    assert!(token.bytes().all(|b| (0x21..=0x7e).contains(&b)));

    let res = send(&svc, request(Method::POST, "alice", Some(&token))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(session(&res), Some(token.as_str()), "an echoed id goes back as the caller's token");
    assert_eq!(seen.lock().unwrap().last().unwrap().as_deref(), Some("up-1"));

    // Refused without reaching the upstream: another caller, an altered token, a guess, two ids.
    let before = calls();
    let mut altered = token.clone().into_bytes();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for req in [
        request(Method::POST, "bob", Some(&token)),
        request(Method::DELETE, "bob", Some(&token)),
        request(Method::POST, "alice", Some(&altered)),
        request(Method::POST, "alice", Some("up-1")),
        {
            let mut req = request(Method::POST, "alice", Some(&token));
            req.headers_mut().append(&MCP_SESSION_ID, HeaderValue::from_str(&token).unwrap());
            req
        },
    ] {
        let res = send(&svc, req).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.extensions().get::<Rejection>(), Some(&Rejection::SessionNotFound));
    }
    assert_eq!(calls(), before);

    // A successful DELETE ends the session here, whatever the upstream keeps.
    assert_eq!(send(&svc, request(Method::DELETE, "alice", Some(&token))).await.status(), StatusCode::OK);
    assert_eq!(ended.len(), 1);
    let before = calls();
    assert_eq!(send(&svc, request(Method::POST, "alice", Some(&token))).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(calls(), before);
}

#[tokio::test]
async fn failed_and_unsealable_answers_leak_no_upstream_id() {
    let svc = SealedSessionLayer::new(sealer(1, "http://u/mcp"), Arc::new(MemoryEndedSessions::default()))
        .layer(upstream(Seen::default()));
    let mut req = request(Method::POST, "alice", None);
    req.headers_mut().insert("x-fail", HeaderValue::from_static("1"));
    let res = send(&svc, req).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(session(&res), None);

    let mut req = request(Method::POST, "alice", None);
    req.headers_mut().insert("x-new", HeaderValue::from_str(&"s".repeat(2000)).unwrap());
    let res = send(&svc, req).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.extensions().get::<Rejection>(), Some(&Rejection::UpstreamError));
    assert_eq!(session(&res), None);
}

/// A store that cannot answer.
#[derive(Debug)]
struct Down;

impl EndedSessions for Down {
    fn end(&self, _: EndedId, _: Duration) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Err(StoreError::new("down"))))
    }
    fn is_ended(&self, _: EndedId) -> StoreFuture<'_, bool> {
        Box::pin(std::future::ready(Err(StoreError::new("down"))))
    }
}

#[tokio::test]
async fn a_store_that_cannot_answer_fails_open() {
    let svc = SealedSessionLayer::new(sealer(1, "http://u/mcp"), Arc::new(Down)).layer(upstream(Seen::default()));
    let token = session(&send(&svc, request(Method::POST, "alice", None)).await).unwrap().to_owned();
    assert_eq!(send(&svc, request(Method::POST, "alice", Some(&token))).await.status(), StatusCode::OK);
    assert_eq!(send(&svc, request(Method::DELETE, "alice", Some(&token))).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn replicas_share_http_sessions_but_not_stdio_ones() {
    let ended: Arc<dyn EndedSessions> = Arc::new(MemoryEndedSessions::default());
    let a = SealedSessionLayer::new(sealer(1, "http://u/mcp"), ended.clone()).layer(upstream(Seen::default()));
    let b = SealedSessionLayer::new(sealer(1, "http://u/mcp"), ended.clone()).layer(upstream(Seen::default()));
    let token = session(&send(&a, request(Method::POST, "alice", None)).await).unwrap().to_owned();
    assert_eq!(send(&b, request(Method::POST, "alice", Some(&token))).await.status(), StatusCode::OK);
    let other_key = SealedSessionLayer::new(sealer(2, "http://u/mcp"), ended.clone()).layer(upstream(Seen::default()));
    assert_eq!(send(&other_key, request(Method::POST, "alice", Some(&token))).await.status(), StatusCode::NOT_FOUND);

    let (stdio_a, stdio_b) = (sealer(1, "stdio:aaaa"), sealer(1, "stdio:bbbb"));
    let a = SealedSessionLayer::new(stdio_a, ended.clone()).layer(upstream(Seen::default()));
    let b = SealedSessionLayer::new(stdio_b, ended).layer(upstream(Seen::default()));
    let token = session(&send(&a, request(Method::POST, "alice", None)).await).unwrap().to_owned();
    assert_eq!(send(&a, request(Method::POST, "alice", Some(&token))).await.status(), StatusCode::OK);
    assert_eq!(send(&b, request(Method::POST, "alice", Some(&token))).await.status(), StatusCode::NOT_FOUND);
}

#[test]
fn targets_and_replica_ids() {
    let sealing = SessionSealing { keys: vec![], ttl: Duration::from_secs(1), replica_id: None };
    let (a, b) = (replica_id(&sealing), replica_id(&sealing));
    assert_eq!(a.len(), 16);
    assert_ne!(a, b, "random per start");
    let named = SessionSealing { replica_id: Some("r1".into()), ..sealing };
    assert_eq!(replica_id(&named), "r1");
    assert_eq!(target(&UpstreamConfig::Demo, "r1"), "demo:r1");
}

/// Steps 9–12 in the pipeline's order: the version layers see the upstream's
/// id, and negotiation learns from the answer before it is sealed.
#[tokio::test]
async fn version_layers_key_on_the_upstream_id() {
    let versions = Versions::default();
    let seen_versions = Arc::new(Mutex::new(Vec::new()));
    let log = seen_versions.clone();
    let upstream = service_fn(move |req: Request<BoxBody>| {
        log.lock().unwrap().push(req.extensions().get::<ProtocolVersion>().map(|v| v.version.to_string()));
        let mut res = if req.headers().contains_key(&MCP_SESSION_ID) {
            Response::new(BoxBody::from(r#"{"jsonrpc":"2.0","id":2,"result":{}}"#))
        } else {
            let body = r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"u","version":"1"}}}"#;
            let mut res = Response::new(BoxBody::from(body));
            res.headers_mut().insert(&MCP_SESSION_ID, HeaderValue::from_static("up-1"));
            res
        };
        res.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        async move { Ok::<_, Infallible>(res) }
    });
    let svc = ServiceBuilder::new()
        .layer(SealedSessionLayer::new(sealer(1, "http://u/mcp"), Arc::new(MemoryEndedSessions::default())))
        .layer(ProtocolVersionLayer::new(versions.clone()))
        .layer(JsonRpcInspectionLayer::new(Limits::default(), 1 << 20, Duration::from_secs(5)))
        .layer(NegotiationLayer::new(versions.clone()))
        .service(upstream);
    let post = |session: Option<&str>, version: Option<&'static str>, body: &'static str| {
        let mut req = request(Method::POST, "alice", session);
        *req.body_mut() = BoxBody::from(body);
        if let Some(v) = version {
            req.headers_mut().insert(&MCP_PROTOCOL_VERSION, HeaderValue::from_static(v));
        }
        req
    };
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#;
    let res = svc.clone().oneshot(post(None, Some("2025-06-18"), init)).await.unwrap();
    let token = res.headers()[&MCP_SESSION_ID].to_str().unwrap().to_owned();
    res.into_body().collect().await.unwrap();
    assert_eq!(versions.negotiated("up-1").as_deref(), Some("2025-06-18"), "learned under the upstream's id");
    assert!(versions.negotiated(&token).is_none());

    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    let res = svc.clone().oneshot(post(Some(&token), None, ping)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(seen_versions.lock().unwrap().last().unwrap().as_deref(), Some("2025-06-18"), "negotiated, not assumed");
    let res = svc.clone().oneshot(post(Some(&token), Some("2025-11-25"), ping)).await.unwrap();
    assert_eq!(res.extensions().get::<Rejection>(), Some(&Rejection::ProtocolVersionMismatch));

    let res = svc.clone().oneshot(request(Method::DELETE, "alice", Some(&token))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(versions.negotiated("up-1").is_none(), "DELETE forgot the upstream's id");
}
