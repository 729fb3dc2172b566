use std::{convert::Infallible, path::Path, sync::Arc};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use mcp_guard_layers::{
    Rejection,
    identity::AuthMethod,
    jsonrpc::{Limits, RequestId, inspect},
    policy::{
        Refused,
        catalog::{CatalogConfig, ToolCatalog},
    },
    rejection::Refusal,
};
use serde_json::{Value, json};
use tower::{ServiceExt, service_fn};

use super::*;

type TestBody = StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// A fresh directory under the system temp dir; the test removes it.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let unique = SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("mcp-guard-{name}-{}-{unique}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn chunks(parts: &[&str]) -> TestBody {
    let frames: Vec<_> = parts.iter().map(|p| Ok(Frame::data(Bytes::from(p.to_string())))).collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

fn answer(content_type: &'static str, parts: &[&str]) -> Response<TestBody> {
    let mut res = Response::new(chunks(parts));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// A file-output layer in a fresh directory, with per-tool settings.
fn layer(name: &str, tools: &[(&str, ToolAudit)]) -> (AuditLayer, PathBuf) {
    let dir = temp_dir(name);
    let config = AuditConfig {
        output: AuditOutput::File(dir.join("audit.jsonl")),
        tools: tools.iter().map(|(n, t)| ((*n).to_owned(), *t)).collect(),
        ..AuditConfig::default()
    };
    (AuditLayer::new(&config, None).expect("layer"), dir)
}

/// An inspected POST, as the pipeline hands it on.
fn post(body: &str, session: Option<&'static str>) -> Request<TestBody> {
    let mut inspection = inspect(body.as_bytes(), Limits::default()).expect("valid JSON-RPC");
    inspection.body = Bytes::from(body.to_owned());
    let mut req = Request::post("/mcp").body(chunks(&[])).expect("request");
    req.extensions_mut().insert(inspection);
    req.extensions_mut().insert(Principal {
        subject: "alice".into(),
        scopes: Arc::new([]),
        method: AuthMethod::ApiKey,
    });
    req.extensions_mut().insert(ClientIp("192.0.2.7".parse().expect("ip")));
    if let Some(s) = session {
        req.headers_mut().insert(&MCP_SESSION_ID, HeaderValue::from_static(s));
    }
    req
}

/// Runs one request through the layer to an inner service answering
/// `response`, reads the whole answer, and returns the records written.
async fn exchange(layer: &AuditLayer, dir: &Path, req: Request<TestBody>, response: Response<TestBody>) -> Vec<Value> {
    let mut slot = Some(response);
    let svc = layer.layer(service_fn(move |_req: Request<TestBody>| {
        let response = slot.take().expect("called once");
        async move { Ok::<_, Infallible>(response) }
    }));
    let res = svc.oneshot(req).await.expect("infallible");
    res.into_body().collect().await.expect("body");
    records(layer, dir)
}

fn records(layer: &AuditLayer, dir: &Path) -> Vec<Value> {
    assert!(layer.flush(Duration::from_secs(5)));
    let text = std::fs::read_to_string(dir.join("audit.jsonl")).expect("audit file");
    text.lines().map(|l| serde_json::from_str(l).expect("one JSON record per line")).collect()
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"q":"x","Token":"t0p","opts":[{"PASSWORD":"p"}]}}}"#;
const OK_JSON: &str = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}],"secret":"s"}}"#;

#[tokio::test]
async fn an_allowed_call_is_recorded_without_arguments_or_secrets() {
    let (layer, dir) = layer("allowed", &[]);
    let r =
        exchange(&layer, &dir, post(CALL, Some("raw-session-id-123")), answer("application/json", &[OK_JSON])).await;
    assert_eq!(r.len(), 1);
    let r = &r[0];
    let time = r["time"].as_str().expect("time");
    assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    assert_eq!(r["principal"], "alice");
    assert_eq!(r["client_ip"], "192.0.2.7");
    assert_eq!(r["session"], record::short_session(b"raw-session-id-123"));
    assert_eq!((&r["method"], &r["id"], &r["name"]), (&json!("tools/call"), &json!(7), &json!("search")));
    assert_eq!((&r["decision"], &r["reason"], &r["status"]), (&json!("allow"), &Value::Null, &json!(200)));
    assert_eq!(r["upstream_error"], false);
    assert!(r["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    for absent in ["arguments", "result", "error", "arguments_truncated", "result_truncated"] {
        assert!(r.get(absent).is_none(), "{absent} logged without being enabled");
    }
    let text = std::fs::read_to_string(dir.join("audit.jsonl")).expect("file");
    assert!(!text.contains("raw-session-id") && !text.contains("t0p"), "{text}");
    drop(layer);
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[tokio::test]
async fn refusals_and_rejections_are_denials_with_their_reason() {
    let (layer, dir) = layer("denied", &[]);
    let mut refused = answer(
        "application/json",
        &[r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"Unknown tool: search"}}"#],
    );
    refused.extensions_mut().insert(Refused(vec![(RequestId::from_json_text("7"), Refusal::ToolDenied)]));
    exchange(&layer, &dir, post(CALL, None), refused).await;
    let limited =
        Rejection::RateLimited.into_response::<Bytes>().map(|b| chunks(&[std::str::from_utf8(&b).expect("utf8")]));
    exchange(&layer, &dir, post(CALL, None), limited).await;
    let timeout = Rejection::UpstreamTimeout.into_response::<Bytes>().map(|_| chunks(&[]));
    let r = exchange(&layer, &dir, post(CALL, None), timeout).await;
    let got: Vec<_> = r
        .iter()
        .map(|r| (r["decision"].clone(), r["reason"].clone(), r["status"].clone(), r["upstream_error"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (json!("deny"), json!("tool_denied"), json!(200), json!(false)),
            (json!("deny"), json!("rate_limited"), json!(429), json!(false)),
            (json!("allow"), json!("upstream_timeout"), json!(504), json!(true)),
        ]
    );
    assert!(r.iter().all(|r| r["session"].is_null()));
    drop(layer);
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[tokio::test]
async fn a_batch_gives_one_record_per_request_and_none_for_notifications() {
    let (layer, dir) = layer("batch", &[]);
    let batch = r#"[{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},
        {"jsonrpc":"2.0","id":9,"result":{}},{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///x"}},
        {"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"p"}}]"#;
    let r = exchange(&layer, &dir, post(batch, Some("s")), answer("application/json", &["[]"])).await;
    let got: Vec<_> = r.iter().map(|r| (r["id"].clone(), r["method"].clone(), r["name"].clone())).collect();
    assert_eq!(
        got,
        [
            (json!("a"), json!("ping"), Value::Null),
            (json!(2), json!("resources/read"), json!("file:///x")),
            (json!(3), json!("prompts/get"), json!("p")),
        ]
    );
    let notification = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let mut accepted = answer("application/json", &[]);
    *accepted.status_mut() = StatusCode::ACCEPTED;
    assert_eq!(exchange(&layer, &dir, post(notification, Some("s")), accepted).await.len(), 3, "no new record");
    drop(layer);
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[tokio::test]
async fn an_initialize_takes_its_session_from_the_answer() {
    let (layer, dir) = layer("initialize", &[]);
    let init =
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}"#;
    let mut res = answer("application/json", &[r#"{"jsonrpc":"2.0","id":1,"result":{}}"#]);
    res.headers_mut().insert(&MCP_SESSION_ID, HeaderValue::from_static("new-session"));
    let r = exchange(&layer, &dir, post(init, None), res).await;
    assert_eq!(r[0]["session"], record::short_session(b"new-session"));
    drop(layer);
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[tokio::test]
async fn arguments_and_results_are_logged_only_when_enabled_and_redacted() {
    let all = ToolAudit { arguments: true, results: true };
    let (layer, dir) = layer("arguments", &[("search", all)]);
    let r =
        exchange(&layer, &dir, post(CALL, None), answer("application/json", &[&OK_JSON[..30], &OK_JSON[30..]])).await;
    assert_eq!(r[0]["arguments"], json!({"q": "x", "Token": "[redacted]", "opts": [{"PASSWORD": "[redacted]"}]}));
    assert_eq!(r[0]["result"], json!({"content": [{"type": "text", "text": "hi"}], "secret": "[redacted]"}));
    let other = CALL.replace("\"search\"", "\"other\"");
    let r = exchange(&layer, &dir, post(&other, None), answer("application/json", &[OK_JSON])).await;
    assert!(r[1].get("arguments").is_none() && r[1].get("result").is_none(), "not enabled for this tool");
    drop(layer);
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[tokio::test]
async fn results_are_read_from_an_sse_stream_and_big_ones_truncated() {
    let results = ToolAudit { arguments: false, results: true };
    let (layer, dir) = layer("sse", &[("search", results)]);
    let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#;
    let error = r#"{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"failed","data":{"authorization":"x"}}}"#;
    let stream = format!("event: message\ndata: {progress}\n\ndata: {error}\n\n");
    let (a, b) = stream.split_at(stream.len() / 2);
    let r = exchange(&layer, &dir, post(CALL, None), answer("text/event-stream", &[a, b])).await;
    assert_eq!(r[0]["error"], json!({"code": -1, "message": "failed", "data": {"authorization": "[redacted]"}}));
    assert!(r[0].get("result").is_none());
    let big = format!(r#"{{"jsonrpc":"2.0","id":7,"result":{{"text":"{}"}}}}"#, "x".repeat(70_000));
    let r = exchange(&layer, &dir, post(CALL, None), answer("application/json", &[&big])).await;
    assert_eq!(r[1]["result_truncated"], true);
    let sse = format!("data: {big}\n\n");
    let r = exchange(&layer, &dir, post(CALL, None), answer("text/event-stream", &[&sse])).await;
    assert_eq!(r[2]["result_truncated"], true);
    assert!(r[2].get("result").is_none());
    drop(layer);
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[tokio::test]
async fn the_record_waits_for_the_end_of_the_body() {
    let (layer, dir) = layer("latency", &[]);
    let svc = layer.layer(service_fn(|_req: Request<TestBody>| async {
        Ok::<_, Infallible>(answer("text/event-stream", &["data: {}\n\n"]))
    }));
    let res = svc.oneshot(post(CALL, None)).await.expect("infallible");
    assert!(records(&layer, &dir).is_empty(), "nothing before the stream ends");
    drop(res);
    assert_eq!(records(&layer, &dir).len(), 1, "a dropped answer is recorded once");
    drop(layer);
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[test]
fn tool_call_metrics_have_bounded_labels_even_when_off() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let catalog = ToolCatalog::new(CatalogConfig::default());
    let tool = |name: &str| match json!({"name": name, "inputSchema": {"type": "object"}}) {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    catalog.observe(&[tool("search")]);
    let layer = AuditLayer::new(&AuditConfig::default(), Some(catalog)).expect("off needs no file");
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            for body in [CALL.to_owned(), CALL.replace("search", "made-up-name")] {
                let svc = layer.layer(service_fn(|_req: Request<TestBody>| async {
                    Ok::<_, Infallible>(answer("application/json", &[OK_JSON]))
                }));
                let res = svc.oneshot(post(&body, None)).await.expect("infallible");
                res.into_body().collect().await.expect("body");
            }
        });
    });
    let text = handle.render();
    assert!(text.contains(r#"mcp_tool_calls_total{tool="search",decision="allow"} 1"#), "{text}");
    assert!(text.contains(r#"mcp_tool_calls_total{tool="unknown",decision="allow"} 1"#), "{text}");
    assert!(text.contains("mcp_tool_call_duration_seconds"), "{text}");
    assert!(!text.contains("made-up-name"), "{text}");
}

#[tokio::test]
async fn fits_the_gateway_pipeline_after_inspection() {
    use mcp_guard_layers::inspect::JsonRpcInspectionLayer;

    use crate::body::BoxBody;

    let results = ToolAudit { arguments: true, results: true };
    let (audit, dir) = layer("pipeline", &[("search", results)]);
    let svc = tower::ServiceBuilder::new()
        .map_response(|res: Response<_>| res.map(BoxBody::new))
        .layer(JsonRpcInspectionLayer::new(Limits::default(), 1 << 20, Duration::from_secs(5)))
        .layer(audit.clone())
        .map_response(|res: Response<_>| res.map(BoxBody::new))
        .service(service_fn(|_req: Request<BoxBody>| async {
            let mut res = Response::new(BoxBody::from(OK_JSON));
            res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok::<_, Infallible>(res)
        }));
    fn gateway_service<S>(_: &S)
    where
        S: Service<Request<BoxBody>, Response = Response<BoxBody>, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send,
    {
    }
    gateway_service(&svc);
    let req = Request::post("/mcp").body(BoxBody::from(CALL)).expect("request");
    let res = svc.oneshot(req).await.expect("infallible");
    assert_eq!(res.into_body().collect().await.expect("body").to_bytes(), OK_JSON.as_bytes(), "passed unchanged");
    let r = records(&audit, &dir);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["arguments"]["Token"], "[redacted]");
    assert_eq!(r[0]["result"]["content"][0]["text"], "hi");
    assert!(r[0]["principal"].is_null() && r[0]["client_ip"].is_null());
    drop(audit);
    std::fs::remove_dir_all(dir).expect("cleanup");
}
