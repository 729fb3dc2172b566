//! The security middleware guide's checklist, played against the running
//! binary with its default settings (only the header timeout is shortened
//! so the slowloris case runs in a second).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::{Child, Command},
    time::{Duration, Instant},
};

use common::{BIN, spawn_and_wait};
const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"checklist","version":"1"}}}"#;
const PING: &str = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;

/// The gateway process; killed by PID when dropped.
struct Gateway {
    child: Child,
    url: String,
    addr: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Gateway {
    let (child, endpoint, lines) = spawn_and_wait(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0"])
            .env_clear()
            .env("MCP_GUARD_SERVER__HEADER_READ_TIMEOUT", "1s"),
    );
    // Keep draining the log so the gateway never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let addr = endpoint.trim_start_matches("http://").trim_end_matches("/mcp").to_owned();
    Gateway { child, url: endpoint, addr }
}

fn post(url: &str, body: impl Into<reqwest::Body>, extra: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if !extra.iter().any(|(k, _)| *k == "mcp-protocol-version") {
        req = req.header("mcp-protocol-version", "2025-11-25");
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req
}

fn assert_security_headers(res: &reqwest::Response) {
    let h = res.headers();
    assert_eq!(h["x-frame-options"], "DENY", "{}", res.status());
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h.contains_key("cache-control"));
    assert!(h.contains_key("x-request-id"));
    assert!(!h.contains_key("server") && !h.contains_key("strict-transport-security"));
}

async fn reason(res: reqwest::Response) -> String {
    let v: serde_json::Value = res.json().await.expect("JSON-RPC error body");
    assert!(v.get("id").is_none());
    v["error"]["data"]["reason"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn checklist() {
    let gw = start();

    // Valid request: 200, with the headers. It is also the first of the minute's quota.
    let quota_started = Instant::now();
    let res = post(&gw.url, INIT, &[("origin", &format!("http://{}", gw.addr))]).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_security_headers(&res);
    assert_eq!(res.headers()["cache-control"], "no-cache, no-transform", "SSE answer");
    drop(res);

    // DNS rebinding: a foreign Origin, and a foreign Host.
    let res = post(&gw.url, INIT, &[("origin", "http://evil.com")]).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_security_headers(&res);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(reason(res).await, "origin_not_allowed");
    let res = post(&gw.url, INIT, &[("host", "evil.com")]).send().await.unwrap();
    assert_eq!((res.status().as_u16(), reason(res).await.as_str()), (403, "host_not_allowed"));

    // Protocol version.
    let res = post(&gw.url, PING, &[("mcp-protocol-version", "1.0.0")]).send().await.unwrap();
    assert_eq!((res.status().as_u16(), reason(res).await.as_str()), (400, "unsupported_protocol_version"));
    let res = post(&gw.url, INIT, &[("mcp-protocol-version", "2025-06-18")]).send().await.unwrap();
    assert_eq!((res.status().as_u16(), reason(res).await.as_str()), (400, "protocol_version_mismatch"));

    // 5 MiB with a Content-Length, and a chunked body that grows past 4 MiB.
    let big = vec![b' '; 5 << 20];
    let res = post(&gw.url, big, &[]).send().await.unwrap();
    assert_eq!((res.status().as_u16(), reason(res).await.as_str()), (413, "request_too_large"));
    let chunks = futures_util::stream::iter((0..80).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024])));
    let res = post(&gw.url, reqwest::Body::wrap_stream(chunks), &[]).send().await.unwrap();
    assert_eq!((res.status().as_u16(), reason(res).await.as_str()), (413, "request_too_large"));

    // Rate limit: one valid request so far. The 61st in quick succession is
    // refused; on a loaded machine GCRA has returned one unit per elapsed
    // second by then, and the bound below allows exactly that.
    let mut accepted = 1;
    let res = loop {
        let res = post(&gw.url, PING, &[]).send().await.unwrap();
        if res.status() == 429 || accepted > 200 {
            break res;
        }
        accepted += 1;
    };
    let refill = quota_started.elapsed().as_secs_f64().ceil() as usize;
    assert_eq!(res.status(), 429);
    assert!((60..=60 + refill).contains(&accepted), "{accepted} accepted in {refill}s, quota 60/min");
    assert_security_headers(&res);
    let h = res.headers();
    let retry_after: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(h["ratelimit-limit"], "60");
    assert_eq!(h["ratelimit-remaining"], "0");
    assert!(h.contains_key("ratelimit-reset"));
    assert_eq!(reason(res).await, "rate_limited");

    // A client cannot choose its own key: the peer is not a trusted proxy.
    // Spoofed addresses share the exhausted bucket, so at most what refilled
    // meanwhile (one a second) gets through.
    let spoofing = Instant::now();
    let mut passed = 0;
    for i in 0..6 {
        let header = if i % 2 == 0 { ("x-forwarded-for", "203.0.113.77") } else { ("forwarded", "for=198.51.100.9") };
        let res = post(&gw.url, PING, &[header]).send().await.unwrap();
        passed += usize::from(res.status() != 429);
    }
    let refilled = spoofing.elapsed().as_secs_f64().ceil() as usize;
    assert!(passed <= refilled, "{passed} spoofed requests passed in {refilled}s");

    // Capacity returns at the quota's rate: one request a second.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let res = post(&gw.url, PING, &[]).send().await.unwrap();
    assert_ne!(res.status(), 429);

    // A client that never finishes its headers is disconnected.
    let mut slow = TcpStream::connect(&gw.addr).unwrap();
    slow.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let n = slow.read(&mut buf).unwrap_or(0);
    assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"), "closed, not answered");
    assert!(started.elapsed() < Duration::from_secs(4), "disconnected after the 1s header timeout");
}

/// A refusal decided before the body is read must still reach a client that
/// is busy sending that body: the gateway drains it instead of resetting.
#[tokio::test]
async fn early_refusals_reach_clients_still_sending_their_body() {
    let gw = start();
    let big = vec![b' '; 6 << 20];
    for round in 0..20 {
        let res = post(&gw.url, big.clone(), &[]).send().await.unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert_eq!(res.status(), 413, "round {round}");
        let res = post(&gw.url, vec![b' '; 1 << 20], &[("origin", "http://evil.com")])
            .send()
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert_eq!(res.status(), 403, "round {round}");
    }
}
