//! For the hostile and faulty upstream tests: raw `tools/call` bodies, an
//! SSE answer read message by message as it arrives, what those messages
//! say, the gateway's violation counters, and a well-behaved rmcp session.

use std::time::{Duration, Instant};

use rmcp::{RoleClient, model::CallToolRequestParams, service::RunningService};
use serde_json::{Value, json};

use super::Recorder;

/// A `tools/call` request body.
pub fn call(id: u64, tool: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}}).to_string()
}

/// A `tools/call` request body asking for progress under `token`.
pub fn call_with_progress(id: u64, tool: &str, args: Value, token: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": args, "_meta": {"progressToken": token}}})
    .to_string()
}

/// The JSON-RPC messages of an SSE answer, read as they arrive.
pub struct Events {
    res: reqwest::Response,
    buf: Vec<u8>,
}

impl Events {
    /// Panics unless `res` is a 200 `text/event-stream` answer.
    pub fn new(res: reqwest::Response) -> Events {
        assert_eq!(res.status(), 200, "an SSE answer");
        let content_type = res.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        Events { res, buf: Vec::new() }
    }

    /// The next message, `None` when the stream ended. Panics after `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        tokio::time::timeout(within, self.next_message()).await.expect("the stream neither sent nor ended in time")
    }

    async fn next_message(&mut self) -> Option<Value> {
        loop {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8(event).expect("utf-8 events");
                if let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return Some(serde_json::from_str(data).expect("every event passed on is JSON"));
                }
            }
            match self.res.chunk().await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Every message until the stream ends; panics if that takes longer than `within`.
    pub async fn all(mut self, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        while let Some(m) = self.next(deadline.saturating_duration_since(Instant::now())).await {
            out.push(m);
        }
        out
    }
}

/// The message answering `id`, if any.
pub fn answer(messages: &[Value], id: u64) -> Option<&Value> {
    messages.iter().find(|m| m["id"] == id && m.get("method").is_none())
}

/// The text of a tool result.
pub fn text(message: &Value) -> &str {
    message["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("a text result: {message}"))
}

/// The `error.data.reason` of an error response.
pub fn error_reason(message: &Value) -> &str {
    message["error"]["data"]["reason"].as_str().unwrap_or_else(|| panic!("an error with a reason: {message}"))
}

/// `mcp_guard_upstream_violations_total{upstream,kind}` as `/metrics` shows it now.
pub async fn violations(port: u16, upstream: &str, kind: &str) -> u64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
    let (kind, upstream) = (format!("kind=\"{kind}\""), format!("upstream=\"{upstream}\""));
    text.lines()
        .filter(|l| l.starts_with("mcp_guard_upstream_violations_total{"))
        .filter(|l| l.contains(&kind) && l.contains(&upstream))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// A well-behaved session: the real rmcp client calling the `echo` tool,
/// answered within 5 s.
pub async fn echo_via_rmcp(client: &RunningService<RoleClient, Recorder>, word: &str) {
    let args = json!({ "text": word });
    let params = CallToolRequestParams::new("echo").with_arguments(args.as_object().unwrap().clone());
    let result = tokio::time::timeout(Duration::from_secs(5), client.call_tool(params))
        .await
        .expect("the well-behaved session is served promptly")
        .expect("echo succeeds");
    assert_eq!(result.content[0].as_text().unwrap().text, word);
}
