//! Gateway behaviour around the upstreams: failures mapped to the right
//! status, limits, transport rules, timeouts, and shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Gateway, INIT, delete, post, raw_initialize, reason};

/// Reads an SSE body and returns the JSON of its `data:` lines.
fn events(body: &str) -> Vec<serde_json::Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_json::from_str(d).expect("each event is JSON"))
        .collect()
}

fn call(id: u32, tool: &str, args: serde_json::Value) -> String {
    serde_json::json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}})
        .to_string()
}

#[tokio::test]
async fn unreachable_upstream_is_502_and_silent_upstream_is_504() {
    // A port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    let gw = Gateway::http(&dead, "").await;
    let res = post(&gw.url, None, INIT).await;
    assert_eq!(res.status(), 502);
    assert_eq!(reason(res).await, "upstream_unavailable");
    let ready = reqwest::get(format!("http://127.0.0.1:{}/ready", gw.port)).await.unwrap();
    assert_eq!(ready.status(), 503);
    gw.shutdown().await;

    // Accepts connections, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    let gw = Gateway::http(&url, "timeout = \"300ms\"").await;
    let res = post(&gw.url, None, INIT).await;
    assert_eq!(res.status(), 504);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["data"]["reason"], "upstream_timeout");
    assert!(body.get("id").is_none());
    gw.shutdown().await;
    held.abort();
}

#[tokio::test]
async fn transport_rules_are_enforced_at_the_front_door() {
    let gw = Gateway::demo().await;
    let client = reqwest::Client::new();
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            client
                .post(&gw.url)
                .header("content-type", "text/plain")
                .header("accept", "application/json, text/event-stream")
                .body(INIT),
            415,
            "unsupported_media_type",
        ),
        (
            client
                .post(&gw.url)
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .body(INIT),
            406,
            "not_acceptable",
        ),
        (client.get(&gw.url).header("accept", "application/json"), 406, "not_acceptable"),
        (client.put(&gw.url).body(INIT), 405, "method_not_allowed"),
        (client.get(format!("http://127.0.0.1:{}/elsewhere", gw.port)), 404, "not_found"),
        (
            client
                .post(&gw.url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("origin", "http://evil.com")
                .body(INIT),
            403,
            "origin_not_allowed",
        ),
        (
            client
                .post(&gw.url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("host", "evil.com")
                .body(INIT),
            403,
            "host_not_allowed",
        ),
    ];
    for (req, status, want) in cases {
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{want}");
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(reason(res).await, want);
    }
    let health = client.get(format!("http://127.0.0.1:{}/health", gw.port)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn readiness_reports_spawnable_children() {
    let ready = |port: u16| reqwest::get(format!("http://127.0.0.1:{port}/ready"));
    let gw = Gateway::stdio("").await;
    assert_eq!(ready(gw.port).await.unwrap().status(), 200);
    gw.shutdown().await;
    let gw = Gateway::start("[upstream]\ncommand = [\"/nonexistent/mcp-server\"]").await;
    let res = ready(gw.port).await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.text().await.unwrap().contains("not an executable"));
    // And a session cannot start: 502, not a hang or a panic.
    let res = post(&gw.url, None, INIT).await;
    assert_eq!((res.status().as_u16(), reason(res).await.as_str()), (502, "upstream_unavailable"));
    gw.shutdown().await;
}

#[tokio::test]
async fn stdio_session_cap_answers_503_with_retry_after() {
    let gw = Gateway::stdio("[stdio]\nmax_sessions = 1").await;
    let first = raw_initialize(&gw.url).await;
    let res = post(&gw.url, None, INIT).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
    assert_eq!(reason(res).await, "too_many_sessions");
    // Ending the first session frees the slot.
    assert!(delete(&gw.url, &first).await.status().is_success());
    raw_initialize(&gw.url).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn stdio_session_rules() {
    let gw = Gateway::stdio("").await;
    // No session, not initialize.
    let res = post(&gw.url, None, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
    assert_eq!(res.status(), 400);
    assert_eq!(reason(res).await, "session_required");
    // Unknown session.
    let res = post(&gw.url, Some("deadbeef"), r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
    assert_eq!(res.status(), 404);
    // Malformed and invalid bodies.
    let session = raw_initialize(&gw.url).await;
    assert_eq!(session.len(), 64);
    let res = post(&gw.url, Some(&session), "{not json").await;
    assert_eq!((res.status().as_u16(), reason(res).await.as_str()), (400, "parse_error"));
    let res = post(&gw.url, Some(&session), r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#).await;
    assert_eq!((res.status().as_u16(), reason(res).await.as_str()), (400, "invalid_jsonrpc"));
    let res = post(&gw.url, Some(&session), INIT).await;
    assert_eq!((res.status().as_u16(), reason(res).await.as_str()), (400, "initialize_in_session"));
    // One GET stream per session.
    let client = reqwest::Client::new();
    let get = || client.get(&gw.url).header("accept", "text/event-stream").header("mcp-session-id", &session).send();
    let stream = get().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    assert_eq!(stream.headers()["cache-control"], "no-cache, no-transform");
    assert_eq!(stream.headers()["x-accel-buffering"], "no");
    let second = get().await.unwrap();
    assert_eq!((second.status().as_u16(), reason(second).await.as_str()), (409, "sse_stream_conflict"));
    drop(stream);
    gw.shutdown().await;
}

#[tokio::test]
async fn stdio_child_gets_a_clean_environment() {
    let gw = Gateway::stdio("[stdio]\nenv_passthrough = [\"PATH\"]\nenv = { GREETING = \"hi\" }").await;
    let session = raw_initialize(&gw.url).await;
    let body = post(&gw.url, Some(&session), &call(2, "whoami", serde_json::json!({}))).await.text().await.unwrap();
    let result = &events(&body)[0]["result"]["content"][0]["text"];
    let report: serde_json::Value = serde_json::from_str(result.as_str().unwrap()).unwrap();
    let env: Vec<&str> = report["env"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(env, ["GREETING", "PATH"], "only the pass-through list and configured variables");
    gw.shutdown().await;
}

#[tokio::test]
async fn stdio_request_timeout_answers_the_caller() {
    let gw = Gateway::stdio("timeout = \"1s\"").await;
    let session = raw_initialize(&gw.url).await;
    let started = std::time::Instant::now();
    let body =
        post(&gw.url, Some(&session), &call(5, "sleep", serde_json::json!({"ms": 10_000}))).await.text().await.unwrap();
    let events = events(&body);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"], 5);
    assert_eq!(events[0]["error"]["data"]["reason"], "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The session survives a slow call.
    let res = post(&gw.url, Some(&session), r#"{"jsonrpc":"2.0","id":6,"method":"ping"}"#).await;
    assert_eq!(res.status(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn stdio_idle_sessions_end() {
    let gw = Gateway::stdio("[stdio]\nidle_timeout = \"1s\"").await;
    let session = raw_initialize(&gw.url).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let res = post(&gw.url, Some(&session), r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#).await;
    assert_eq!(res.status(), 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_calls_and_ends_children() {
    let gw = Gateway::stdio("").await;
    let session = raw_initialize(&gw.url).await;
    let body = post(&gw.url, Some(&session), &call(2, "whoami", serde_json::json!({}))).await.text().await.unwrap();
    let report: serde_json::Value =
        serde_json::from_str(events(&body)[0]["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    let pid = report["pid"].as_u64().unwrap();
    let url = gw.url.clone();
    let in_flight = tokio::spawn(async move {
        post(&url, Some(&session), &call(3, "sleep", serde_json::json!({"ms": 300}))).await.text().await.unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.shutdown().await;
    let body = in_flight.await.unwrap();
    let events = events(&body);
    // Shutdown ends the session; the in-flight call gets an answer either way, never silence.
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["id"], 3);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "child {pid} still running");
}

#[tokio::test]
async fn stateless_2026_revision_passes_through_to_http_upstreams() {
    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    let gw = Gateway::http(&upstream.url, "").await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"e2e","version":"1"}}}}"#;
    let res = reqwest::Client::new()
        .post(&gw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("mcp-session-id").is_none(), "stateless: no session");
    let events = events(&res.text().await.unwrap());
    let tools = events[0]["result"]["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| t["name"] == "echo"));
    gw.shutdown().await;
}
