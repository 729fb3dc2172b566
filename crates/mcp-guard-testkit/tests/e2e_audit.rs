//! The audit log through the real gateway: one JSON line per request that
//! reached a decision, denials with their real reason, arguments only where
//! enabled and redacted, and the tool metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, post};
use serde_json::Value;

fn records(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_decision_is_one_audit_line() {
    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    let dir = std::env::temp_dir().join(format!("mcp-guard-e2e-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    let gateway = Gateway::http(
        &upstream.url,
        &format!(
            r#"
[policy]
default = "allow"
[[policy.rules]]
principals = ["*"]
effect = "deny"
tools = ["delete_*"]
[audit]
output = "file"
path = {path:?}
[audit.tools.get_weather]
arguments = true
results = true
"#
        ),
    )
    .await;
    let init = post(&gateway.url, None, common::INIT).await;
    let session = init.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    init.text().await.unwrap();
    let call = |id: u32, tool: &str, args: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
        )
    };
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    for body in [
        list.to_owned(),
        call(3, "get_weather", r#"{"city":"Oslo","api_token":"tok-123"}"#),
        call(4, "delete_everything", r#"{"confirm":true}"#),
        call(5, "add", r#"{"a":"x"}"#),
    ] {
        post(&gateway.url, Some(&session), &body).await.text().await.unwrap();
    }
    gateway.shutdown().await;

    let records = records(&path);
    let by_id = |id: u64| records.iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("record {id}: {records:?}"));
    assert_eq!(by_id(1)["method"], "initialize");
    let session_hash = by_id(1)["session"].as_str().unwrap().to_owned();
    assert_eq!(session_hash.len(), 12);
    assert!(!std::fs::read_to_string(&path).unwrap().contains(&session), "the raw session id is never written");
    assert_eq!(by_id(2)["session"], session_hash.as_str());

    let weather = by_id(3);
    assert_eq!((weather["decision"].as_str(), weather["name"].as_str()), (Some("allow"), Some("get_weather")));
    assert_eq!(weather["arguments"]["city"], "Oslo");
    assert_eq!(weather["arguments"]["api_token"], "[redacted]");
    assert!(weather["result"]["content"][0]["text"].as_str().unwrap().contains("Oslo"), "{weather}");
    assert!(weather["latency_ms"].as_f64().unwrap() > 0.0);

    let denied = by_id(4);
    assert_eq!((denied["decision"].as_str(), denied["reason"].as_str()), (Some("deny"), Some("tool_denied")));
    assert!(denied.get("arguments").is_none(), "arguments only where enabled");
    let invalid = by_id(5);
    assert_eq!((invalid["decision"].as_str(), invalid["reason"].as_str()), (Some("deny"), Some("invalid_arguments")));
    assert_eq!(records.len(), 5, "one line per request, none for the notification-free list: {records:?}");
    let received = upstream.received();
    assert!(!received.iter().any(|r| r.contains("delete_everything") || r.contains(" add")), "{received:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
