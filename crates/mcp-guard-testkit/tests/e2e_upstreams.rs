//! The same MCP conversation through each kind of upstream, driven by
//! rmcp's Streamable HTTP client: initialize, tools/list, tools/call,
//! progress before the result, an elicitation round trip, and DELETE.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::{Gateway, connect, delete, post, raw_initialize, reason};
use rmcp::model::CallToolRequestParams;
use serde_json::json;

fn call(name: &str, args: serde_json::Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_owned()).with_arguments(args.as_object().unwrap().clone())
}

fn text(result: &rmcp::model::CallToolResult) -> String {
    result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).unwrap_or_default()
}

/// Progress notifications must arrive while the call is still running.
async fn assert_progress_before_result(url: &str, tool: &str, args: serde_json::Value, steps: usize) {
    let (client, recorder) = connect(url).await;
    let result = client.call_tool(call(tool, args)).await.expect("call succeeds");
    let answered = Instant::now();
    let times = recorder.progress_times();
    assert_eq!(times.len(), steps, "every progress notification arrives");
    assert!(times.iter().all(|t| *t <= answered));
    // Streamed, not buffered: with steps 200 ms apart the first arrived well
    // before the result (a buffering proxy delivers them together, ~0 ms).
    let first = times[0];
    assert!(answered.duration_since(first).as_millis() >= 150, "progress was buffered until the result");
    assert!(result.is_error != Some(true));
    client.cancel().await.expect("clean close");
}

async fn assert_delete_then_404(url: &str) {
    let session = raw_initialize(url).await;
    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    assert_eq!(post(url, Some(&session), ping).await.status(), 200);
    assert!(delete(url, &session).await.status().is_success());
    let res = post(url, Some(&session), ping).await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn demo_upstream() {
    let gw = Gateway::demo().await;
    let (client, _) = connect(&gw.url).await;
    let tools: Vec<String> = client.list_all_tools().await.unwrap().into_iter().map(|t| t.name.to_string()).collect();
    assert_eq!(tools.len(), 3);
    for name in ["echo", "countdown", "fail"] {
        assert!(tools.contains(&name.to_owned()), "{tools:?}");
    }
    let echoed = client.call_tool(call("echo", json!({"text": "hi"}))).await.unwrap();
    assert_eq!(text(&echoed), "hi");
    let failed = client.call_tool(call("fail", json!({"message": "boom"}))).await.unwrap();
    assert_eq!(failed.is_error, Some(true));
    assert_eq!(text(&failed), "boom");
    client.cancel().await.unwrap();
    assert_progress_before_result(&gw.url, "countdown", json!({"steps": 3, "step_ms": 200}), 3).await;
    assert_delete_then_404(&gw.url).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn stdio_upstream() {
    let gw = Gateway::stdio("").await;
    let (client, recorder) = connect(&gw.url).await;
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "ask_name"));
    assert_eq!(text(&client.call_tool(call("echo", json!({"text": "via stdio"}))).await.unwrap()), "via stdio");
    // A server-to-client request round trip: the child asks, the client answers over POST.
    let greeted = client.call_tool(CallToolRequestParams::new("ask_name")).await.unwrap();
    assert_eq!(text(&greeted), "hello Ada");
    assert_eq!(recorder.elicitations(), ["What is your name?"]);
    client.cancel().await.unwrap();
    assert_progress_before_result(&gw.url, "progress", json!({"steps": 3, "delay_ms": 200}), 3).await;
    assert_delete_then_404(&gw.url).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn http_upstream() {
    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    let gw = Gateway::http(&upstream.url, "").await;
    let (client, recorder) = connect(&gw.url).await;
    assert!(client.list_all_tools().await.unwrap().iter().any(|t| t.name == "progress"));
    assert_eq!(text(&client.call_tool(call("echo", json!({"text": "via http"}))).await.unwrap()), "via http");
    let greeted = client.call_tool(CallToolRequestParams::new("ask_name")).await.unwrap();
    assert_eq!(text(&greeted), "hello Ada");
    assert_eq!(recorder.elicitations().len(), 1);
    client.cancel().await.unwrap();
    assert_progress_before_result(&gw.url, "progress", json!({"steps": 3, "delay_ms": 200}), 3).await;
    assert_delete_then_404(&gw.url).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn stdio_child_crash_is_contained() {
    let gw = Gateway::stdio("").await;
    let (survivor, _) = connect(&gw.url).await;
    let session = raw_initialize(&gw.url).await;
    let crash = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"crash","arguments":{}}}"#;
    let res = post(&gw.url, Some(&session), crash).await;
    assert_eq!(res.status(), 200, "the call's stream opens before the child dies");
    let body = res.text().await.unwrap();
    assert!(body.contains(r#""id":7"#) && body.contains("upstream_exited"), "the caller gets a JSON-RPC error: {body}");
    let ping = r#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#;
    let res = post(&gw.url, Some(&session), ping).await;
    assert_eq!(res.status(), 404);
    assert_eq!(reason(res).await, "session_not_found");
    // Everyone else is still served.
    let echoed = survivor.call_tool(call("echo", json!({"text": "still here"}))).await.unwrap();
    assert_eq!(text(&echoed), "still here");
    survivor.cancel().await.unwrap();
    gw.shutdown().await;
}
