//! The two layers end to end over `service_fn` upstreams: what is refused,
//! what is forwarded, and what the client gets back.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower::{Layer, ServiceExt, service_fn};

use super::{
    AccessPolicyLayer, Refused, ToolCallLayer,
    catalog::{CatalogConfig, PinAction, ToolCatalog, ToolLimits, Validation},
    rules::{AccessPolicy, Effect, RuleSpec},
};
use crate::{
    identity::{AuthMethod, Principal},
    jsonrpc::{Limits, inspect},
    rejection::Refusal,
};

const TOOLS: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[
    {"name":"get_weather","description":"Weather","inputSchema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},
    {"name":"delete_everything","description":"Deletes","inputSchema":{"type":"object"}}],"nextCursor":"n2"}}"#;

fn policy() -> AccessPolicy {
    let v = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect();
    let rules = [
        RuleSpec {
            principals: v(&["*"]),
            effect: Effect::Allow,
            tools: v(&["get_*"]),
            resources: v(&["file:///public/*"]),
            prompts: v(&["greeting"]),
        },
        RuleSpec {
            principals: v(&["admin"]),
            effect: Effect::Allow,
            tools: v(&["*"]),
            resources: vec![],
            prompts: vec![],
        },
    ];
    AccessPolicy::compile(Effect::Deny, &HashMap::new(), &rules).expect("compiles")
}

fn request(method: Method, body: &str, who: Option<&str>) -> Request<Full<Bytes>> {
    let mut req =
        Request::builder().method(method).uri("/mcp").body(Full::new(Bytes::from(body.to_owned()))).expect("req");
    if !body.is_empty() {
        let mut inspection = inspect(body.as_bytes(), Limits::default()).expect("valid JSON-RPC");
        inspection.body = Bytes::from(body.to_owned());
        req.extensions_mut().insert(inspection);
    }
    if let Some(who) = who {
        req.extensions_mut().insert(Principal {
            subject: who.into(),
            scopes: Arc::new([]),
            method: AuthMethod::ApiKey,
        });
    }
    req
}

/// An upstream that records the bodies it got and answers `answer` with `content_type`.
fn upstream(
    answer: &'static str,
    content_type: &'static str,
    seen: Arc<Mutex<Vec<String>>>,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone {
    service_fn(move |req: Request<Full<Bytes>>| {
        let seen = Arc::clone(&seen);
        async move {
            let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            seen.lock().expect("lock").push(String::from_utf8_lossy(&body).into_owned());
            let mut res = Response::new(Full::new(Bytes::from_static(answer.as_bytes())));
            res.headers_mut().insert(header::CONTENT_TYPE, content_type.parse().expect("ct"));
            res.headers_mut().insert(header::CONTENT_LENGTH, answer.len().into());
            Ok(res)
        }
    })
}

async fn json_body<B: http_body::Body<Data = Bytes>>(res: Response<B>) -> Value
where
    B::Error: std::fmt::Debug,
{
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice(&bytes).expect("JSON answer")
}

/// Body, principal, and the expected JSON-RPC error code and refusal (`None`: forwarded).
type Case = (&'static str, Option<&'static str>, Option<(i64, Refusal)>);

#[tokio::test]
async fn denied_requests_are_answered_in_protocol_and_never_forwarded() {
    let cases: &[Case] = &[
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_everything"}}"#,
            None,
            Some((-32602, Refusal::ToolDenied)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_everything"}}"#,
            Some("admin"),
            None,
        ),
        (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}}"#, Some("bob"), None),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///secret/k"}}"#,
            Some("bob"),
            Some((-32002, Refusal::ResourceDenied)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"file:///secret/k"}}"#,
            None,
            Some((-32002, Refusal::ResourceDenied)),
        ),
        (r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///public/a"}}"#, None, None),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"admin_prompt"}}"#,
            Some("admin"),
            Some((-32602, Refusal::PromptDenied)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"admin_prompt"},"argument":{"name":"a","value":""}}}"#,
            None,
            Some((-32602, Refusal::PromptDenied)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"file:///public/{x}"},"argument":{"name":"x","value":""}}}"#,
            None,
            None,
        ),
        (r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, None, None),
    ];
    for (body, who, want) in cases {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let svc = AccessPolicyLayer::new(Some(policy()), None).layer(upstream(
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            "application/json",
            Arc::clone(&seen),
        ));
        let res = svc.oneshot(request(Method::POST, body, *who)).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        let refused = res.extensions().get::<Refused>().cloned();
        let answer = json_body(res).await;
        match want {
            Some((code, refusal)) => {
                assert_eq!(answer["error"]["code"], *code, "{body}");
                assert_eq!(answer["id"], 1);
                assert!(answer["error"]["data"].get("reason").is_none(), "a denial is not announced: {answer}");
                assert_eq!(refused.map(|r| r.0[0].1), Some(*refusal));
                assert!(seen.lock().expect("lock").is_empty(), "never forwarded: {body}");
            }
            None => {
                assert!(answer.get("result").is_some(), "{body} {who:?}: {answer}");
                assert_eq!(seen.lock().expect("lock").len(), 1);
            }
        }
    }
}

#[tokio::test]
async fn json_lists_are_filtered_per_principal_with_the_cursor_kept() {
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    for (who, want) in [(None, vec!["get_weather"]), (Some("admin"), vec!["get_weather", "delete_everything"])] {
        let svc =
            AccessPolicyLayer::new(Some(policy()), None).layer(upstream(TOOLS, "application/json", Arc::default()));
        let res = svc.oneshot(request(Method::POST, list, who)).await.expect("infallible");
        assert!(res.headers().get(header::CONTENT_LENGTH).is_none(), "the length changes");
        let answer = json_body(res).await;
        let names: Vec<&str> =
            answer["result"]["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(names, want, "{who:?}");
        assert_eq!(answer["result"]["nextCursor"], "n2");
    }
}

#[tokio::test]
async fn sse_lists_are_filtered_event_by_event_keeping_ids_and_keep_alives() {
    let data = TOOLS.replace('\n', "");
    let stream = format!(
        "id: 0\nretry: 3000\ndata: \n\n: keep-alive\n\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{}}}}\n\nevent: message\nid: 1/0\ndata: {data}\n\n"
    );
    // Delivered in small chunks, as a network would.
    let chunks: Vec<Bytes> = stream.as_bytes().chunks(7).map(Bytes::copy_from_slice).collect();
    let text = String::from_utf8(filtered_sse_list(chunks).await.to_vec()).expect("utf8");
    assert!(text.starts_with("id: 0\nretry: 3000\ndata: \n\n"), "priming event kept: {text}");
    assert!(text.contains("notifications/progress"));
    assert!(text.contains("event: message\nid: 1/0\ndata: {"), "{text}");
    assert!(text.contains("get_weather") && !text.contains("delete_everything"), "{text}");
    assert!(text.contains("\"nextCursor\":\"n2\""));
}

/// Found by the `sse` fuzz target: a stream starting with a byte order mark
/// cut short, sent a byte at a time, lost its first event on the way out.
#[tokio::test]
async fn a_split_partial_bom_is_not_passed_on_as_a_keep_alive() {
    let stream: &[u8] = b"\xEF\xBB:\ndata: 2\n\nid: b\0c\ndata: 3\ndata: x\n\n";
    let chunks: Vec<Bytes> = stream.chunks(1).map(Bytes::copy_from_slice).collect();
    let out = filtered_sse_list(chunks).await;
    let (mut sent, mut seen) = (Vec::new(), Vec::new());
    crate::sse::SseParser::new(1024).feed(stream, &mut sent).expect("small");
    crate::sse::SseParser::new(1024).feed(&out, &mut seen).expect("small");
    assert_eq!(seen, sent, "the client reads what the upstream sent: {}", out.escape_ascii());
    assert_eq!(seen.len(), 2);
}

/// Found by the `sse` fuzz target: with the stream's first bytes withheld
/// (a line split across chunks), a chunk of lines we ignore was passed on
/// as the client's first bytes, and the client, skipping a byte order mark
/// there, read `\u{FEFF}data:` as `data:`: a list answer, unfiltered.
#[tokio::test]
async fn a_bom_never_starts_what_the_client_reads_after_withheld_bytes() {
    let answer = format!("\u{FEFF}data: {}\n\n", TOOLS.replace('\n', ""));
    let chunks = vec![Bytes::from_static(b"x"), Bytes::from_static(b"\n"), Bytes::from(answer.clone())];
    let out = filtered_sse_list(chunks).await;
    let mut seen = Vec::new();
    crate::sse::SseParser::new(1 << 20).feed(&out, &mut seen).expect("small");
    assert!(seen.is_empty(), "the upstream sent no event, the client read {seen:?}: {}", out.escape_ascii());
    assert!(out.ends_with(answer.as_bytes()), "the ignored lines still pass on");
}

#[tokio::test]
async fn a_get_stream_is_filtered_by_shape_only_when_something_can_be_hidden() {
    let sse = format!("data: {}\n\n", TOOLS.replace('\n', ""));
    let sse: &'static str = Box::leak(sse.into_boxed_str());
    for (layer, hidden) in [
        (AccessPolicyLayer::new(Some(policy()), None), true),
        (AccessPolicyLayer::new(None, Some(ToolCatalog::new(CatalogConfig::default()))), false),
    ] {
        let svc = layer.layer(upstream(sse, "text/event-stream", Arc::default()));
        let res = svc.oneshot(request(Method::GET, "", None)).await.expect("ok");
        let text = res.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(!String::from_utf8_lossy(&text).contains("delete_everything"), hidden);
    }
}

#[tokio::test]
async fn tool_calls_are_checked_against_pins_size_and_schema() {
    let mut config = CatalogConfig { action: PinAction::Block, ..CatalogConfig::default() };
    config.per_tool.insert("small".into(), ToolLimits { validation: Validation::Enforce, max_argument_bytes: Some(8) });
    let catalog = ToolCatalog::new(config);
    // Learn the definitions from a list passing through.
    let lister =
        AccessPolicyLayer::new(None, Some(catalog.clone())).layer(upstream(TOOLS, "application/json", Arc::default()));
    let res = lister
        .oneshot(request(Method::POST, r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, None))
        .await
        .expect("ok");
    json_body(res).await;
    let call = |name: &str, args: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{name}","arguments":{args}}}}}"#)
    };
    let cases: Vec<(String, Option<Refusal>)> = vec![
        (call("get_weather", r#"{"city":"Oslo"}"#), None),
        (call("get_weather", r#"{"city":7}"#), Some(Refusal::InvalidArguments)),
        (
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_weather"}}"#.to_owned(),
            Some(Refusal::InvalidArguments),
        ),
        (call("unlisted", "{}"), Some(Refusal::UnknownTool)),
        (call("small", r#"{"x":"123456789"}"#), Some(Refusal::UnknownTool)),
    ];
    for (body, want) in cases {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let svc = ToolCallLayer::new(catalog.clone()).layer(upstream(
            r#"{"jsonrpc":"2.0","id":7,"result":{}}"#,
            "application/json",
            Arc::clone(&seen),
        ));
        let res = svc.oneshot(request(Method::POST, &body, None)).await.expect("ok");
        let refused = res.extensions().get::<Refused>().map(|r| r.0[0].1);
        assert_eq!(refused, want, "{body}");
        let answer = json_body(res).await;
        if want == Some(Refusal::InvalidArguments) {
            let pointer = &answer["error"]["data"]["violations"][0]["pointer"];
            assert!(pointer == "/city" || pointer == "", "{answer}");
            assert_eq!(answer["error"]["data"]["reason"], "invalid_arguments");
        }
        assert_eq!(seen.lock().expect("lock").len(), usize::from(want.is_none()), "{body}");
    }
    // A size limit applies before the schema, to learned tools too.
    let learning = ToolCatalog::new(CatalogConfig {
        per_tool: HashMap::from([(
            "small".into(),
            ToolLimits { validation: Validation::Off, max_argument_bytes: Some(8) },
        )]),
        ..CatalogConfig::default()
    });
    let svc = ToolCallLayer::new(learning).layer(upstream("{}", "application/json", Arc::default()));
    let res = svc.oneshot(request(Method::POST, &call("small", r#"{"x":"123456789"}"#), None)).await.expect("ok");
    assert_eq!(res.extensions().get::<Refused>().map(|r| r.0[0].1), Some(Refusal::ArgumentsTooLarge));
}

/// What a client reads of a `tools/list` answered by an SSE stream the
/// upstream sends in `chunks`, through the access policy.
async fn filtered_sse_list(chunks: Vec<Bytes>) -> Bytes {
    let inner = service_fn(move |_req: Request<Full<Bytes>>| {
        let mut res = Response::new(Chunks(chunks.clone().into()));
        res.headers_mut().insert(header::CONTENT_TYPE, "text/event-stream".parse().expect("ct"));
        async move { Ok::<_, Infallible>(res) }
    });
    let svc = AccessPolicyLayer::new(Some(policy()), None).layer(inner);
    let res = svc
        .oneshot(request(Method::POST, r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, None))
        .await
        .expect("ok");
    res.into_body().collect().await.expect("body").to_bytes()
}

/// A response body delivered in the given chunks.
struct Chunks(std::collections::VecDeque<Bytes>);

impl From<Bytes> for Chunks {
    fn from(b: Bytes) -> Self {
        Chunks([b].into())
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
    }
}
