//! A hostile HTTP upstream behind the real gateway
//! (`mcp_guard_testkit::hostile_http`): answers that are not JSON-RPC,
//! answers to ids nobody asked for, oversized answers and events, silence,
//! stalls, resets before and during an answer, 5xx, floods of server
//! requests, too many requests waiting. Each gets a specific answer, is
//! counted in `mcp_guard_upstream_violations_total{upstream="http"}`, and
//! never stops another session (a real rmcp client) from being served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{
    Gateway, connect,
    events::{Events, call, call_with_progress, echo_via_rmcp, error_reason, text, violations},
    post, raw_initialize, reason,
};
use mcp_guard_testkit::hostile_http::{HostileServer, spawn_hostile_http};
use serde_json::{Value, json};

/// Small limits so every case ends within a few seconds.
const LIMITS: &str = r#"timeout = "1s"
max_request_duration = "3s"
max_message_size = "4KiB"
max_response_size = "16KiB"
max_pending_per_session = 2
max_server_requests_per_session = 3
[rate_limit]
enabled = false
"#;

async fn gateway(upstream: &HostileServer) -> Gateway {
    Gateway::http(&upstream.url, LIMITS).await
}

/// Every violation counter, to compare before and after.
struct Counts {
    port: u16,
    before: Vec<(&'static str, u64)>,
}

const KINDS: [&str; 9] = [
    "response_too_large",
    "message_too_large",
    "invalid_message",
    "unsolicited_response",
    "request_timeout",
    "too_many_pending",
    "server_request_timeout",
    "too_many_server_requests",
    "upstream_failure",
];

impl Counts {
    async fn now(port: u16) -> Counts {
        let mut before = Vec::new();
        for kind in KINDS {
            before.push((kind, violations(port, "http", kind).await));
        }
        Counts { port, before }
    }

    /// Asserts that exactly these kinds grew, by these amounts, since `now`.
    async fn grew(self, expected: &[(&str, u64)]) {
        for (kind, before) in self.before {
            let want = expected.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n);
            assert_eq!(violations(self.port, "http", kind).await - before, want, "violations of kind {kind}");
        }
    }
}

async fn call_all(url: &str, session: &str, id: u64, tool: &str, args: Value) -> Vec<Value> {
    Events::new(post(url, Some(session), &call(id, tool, args)).await).all(Duration::from_secs(10)).await
}

/// A tool, its arguments, the status and reason the client gets, the violations counted.
type Refused = (&'static str, Value, u16, &'static str, &'static [(&'static str, u64)]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_answers_that_are_not_answers_are_refused() {
    let upstream = spawn_hostile_http().await.unwrap();
    let gw = gateway(&upstream).await;
    let session = raw_initialize(&gw.url).await;
    let refused = |tool: &'static str, args: Value| {
        let (url, session) = (gw.url.clone(), session.clone());
        async move { post(&url, Some(&session), &call(9, tool, args)).await }
    };
    let cases: [Refused; 7] = [
        ("garbage", json!({}), 502, "upstream_invalid_response", &[("invalid_message", 1)]),
        ("wrong_id", json!({}), 502, "upstream_invalid_response", &[("unsolicited_response", 1)]),
        ("huge_json", json!({"bytes": 8192}), 502, "upstream_response_too_large", &[("message_too_large", 1)]),
        ("status_500", json!({}), 502, "upstream_error", &[("upstream_failure", 1)]),
        ("redirect", json!({}), 502, "upstream_invalid_response", &[("invalid_message", 1)]),
        ("reset_before_headers", json!({}), 502, "upstream_error", &[("upstream_failure", 1)]),
        ("slow_headers", json!({}), 504, "upstream_timeout", &[("request_timeout", 1)]),
    ];
    for (tool, args, status, want, counted) in cases {
        let counts = Counts::now(gw.port).await;
        let started = Instant::now();
        let res = refused(tool, args).await;
        assert_eq!(res.status(), status, "{tool}");
        assert_eq!(reason(res).await, want, "{tool}");
        assert!(started.elapsed() < Duration::from_secs(3), "{tool} took {:?}", started.elapsed());
        counts.grew(counted).await;
    }
    // The gateway gave up on id 9 (`slow_headers`): the upstream hears so.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !upstream.cancelled().contains(&"9".to_owned()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(upstream.cancelled(), ["9"], "one notifications/cancelled, for the timed-out call");

    // A 5xx with a JSON-RPC error body and a 4xx pass as they are; a good answer too.
    let counts = Counts::now(gw.port).await;
    let res = refused("status_500_jsonrpc", json!({})).await;
    assert_eq!(res.status(), 500);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["message"], "upstream broke");
    let res = refused("status_404", json!({})).await;
    assert_eq!(res.status(), 404, "a client must see 404 to initialize again");
    let res = refused("echo_json", json!({"text": "fine"})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(text(&res.json::<Value>().await.unwrap()), "fine");
    counts.grew(&[("upstream_failure", 1)]).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_answers_are_checked_event_by_event() {
    let upstream = spawn_hostile_http().await.unwrap();
    let gw = gateway(&upstream).await;
    let session = raw_initialize(&gw.url).await;

    let counts = Counts::now(gw.port).await;
    let messages = call_all(&gw.url, &session, 2, "garbage_sse", json!({})).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(text(&messages[0]), "after the garbage");
    let messages = call_all(&gw.url, &session, 3, "wrong_id_sse", json!({})).await;
    assert_eq!(messages.len(), 1, "only the answer to id 3: {messages:?}");
    assert_eq!((messages[0]["id"].as_u64(), text(&messages[0])), (Some(3), "right"));
    counts.grew(&[("invalid_message", 1), ("unsolicited_response", 1)]).await;

    // Answered streams end at once, and their connections are reused.
    let connections = upstream.connections();
    for id in 100..110 {
        let messages = call_all(&gw.url, &session, id, "echo", json!({"text": "again"})).await;
        assert_eq!(text(&messages[0]), "again");
    }
    assert!(upstream.connections() - connections <= 1, "{} new connections", upstream.connections() - connections);

    // An event over the message cap is dropped; the call is answered with an error.
    let counts = Counts::now(gw.port).await;
    let messages = call_all(&gw.url, &session, 4, "huge_event", json!({"bytes": 8192})).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!((messages[0]["id"].as_u64(), error_reason(&messages[0])), (Some(4), "upstream_response_too_large"));
    counts.grew(&[("message_too_large", 1)]).await;

    // Server requests: at most 3 unanswered in the session; an answer frees a slot.
    let counts = Counts::now(gw.port).await;
    let messages = call_all(&gw.url, &session, 5, "flood_server_requests", json!({"count": 10})).await;
    let asked: Vec<&str> =
        messages.iter().filter(|m| m["method"] == "roots/list").map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(asked, ["srv-0", "srv-1", "srv-2"]);
    assert_eq!(text(messages.last().unwrap()), "flooded");
    let answer = json!({"jsonrpc": "2.0", "id": "srv-0", "result": {"roots": []}}).to_string();
    assert_eq!(post(&gw.url, Some(&session), &answer).await.status(), 202);
    assert_eq!(upstream.client_answers(), [r#""srv-0""#], "the client's answer reaches the upstream");
    let messages = call_all(&gw.url, &session, 6, "flood_server_requests", json!({"first": 10, "count": 2})).await;
    let asked: Vec<&str> =
        messages.iter().filter(|m| m["method"] == "roots/list").map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(asked, ["srv-10"], "one slot was free");
    counts.grew(&[("too_many_server_requests", 8)]).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_stalls_and_resets_end_in_an_error_for_the_call() {
    let upstream = spawn_hostile_http().await.unwrap();
    let gw = gateway(&upstream).await;
    let session = raw_initialize(&gw.url).await;

    // Keep-alive comments are not an answer: the call times out after 1s.
    let counts = Counts::now(gw.port).await;
    let started = Instant::now();
    let messages = call_all(&gw.url, &session, 7, "never_answer", json!({})).await;
    let waited = started.elapsed();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!((messages[0]["id"].as_u64(), error_reason(&messages[0])), (Some(7), "upstream_timeout"));
    assert!(waited >= Duration::from_millis(950) && waited < Duration::from_millis(2500), "{waited:?}");

    let started = Instant::now();
    let messages = call_all(&gw.url, &session, 8, "stall_mid_sse", json!({})).await;
    assert_eq!(messages.len(), 2, "the notification, then the error: {messages:?}");
    assert_eq!(messages[0]["method"], "notifications/message");
    assert_eq!((messages[1]["id"].as_u64(), error_reason(&messages[1])), (Some(8), "upstream_timeout"));
    assert!(started.elapsed() < Duration::from_millis(2500));
    counts.grew(&[("request_timeout", 2)]).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while upstream.cancelled().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(upstream.cancelled(), ["7", "8"], "the upstream is told to stop each");

    // Progress keeps a call alive past the timeout, not past max_request_duration.
    let counts = Counts::now(gw.port).await;
    let started = Instant::now();
    let body = call_with_progress(10, "progress_forever", json!({"every_ms": 300}), "tok-10");
    let messages = Events::new(post(&gw.url, Some(&session), &body).await).all(Duration::from_secs(10)).await;
    let waited = started.elapsed();
    let (progress, rest): (Vec<&Value>, Vec<&Value>) =
        messages.iter().partition(|m| m["method"] == "notifications/progress");
    assert!(progress.len() >= 8, "progress flowed for 3s: {}", progress.len());
    assert_eq!(rest.len(), 1);
    assert_eq!((rest[0]["id"].as_u64(), error_reason(rest[0])), (Some(10), "upstream_timeout"));
    assert!(waited >= Duration::from_millis(2950) && waited < Duration::from_secs(4), "{waited:?}");
    counts.grew(&[("request_timeout", 1)]).await;

    // A connection broken off mid-answer: the call gets an error, the stream ends.
    let counts = Counts::now(gw.port).await;
    let messages = call_all(&gw.url, &session, 11, "reset_mid_sse", json!({})).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!((messages[1]["id"].as_u64(), error_reason(&messages[1])), (Some(11), "upstream_error"));
    counts.grew(&[("upstream_failure", 1)]).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_stream_is_checked_too() {
    let upstream = spawn_hostile_http().await.unwrap();
    let gw = gateway(&upstream).await;
    let session = raw_initialize(&gw.url).await;
    let counts = Counts::now(gw.port).await;
    let res = reqwest::Client::new()
        .get(&gw.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("x-hostile-get", "flood")
        .send()
        .await
        .unwrap();
    let mut events = Events::new(res);
    let mut seen = Vec::new();
    loop {
        let message = events.next(Duration::from_secs(5)).await.expect("the stream stays open");
        let last = message["params"]["data"] == "end of the flood";
        seen.push(message);
        if last {
            break;
        }
    }
    let asked: Vec<&str> =
        seen.iter().filter(|m| m["method"] == "roots/list").map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(asked, ["srv-get-0", "srv-get-1", "srv-get-2"]);
    assert_eq!(seen.len(), 4, "no response, garbage or oversized event: {seen:?}");
    drop(events);
    counts
        .grew(&[
            ("too_many_server_requests", 2),
            ("unsolicited_response", 1),
            ("invalid_message", 1),
            ("message_too_large", 1),
        ])
        .await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_requests_are_capped_per_session_and_others_are_served() {
    let upstream = spawn_hostile_http().await.unwrap();
    let gw = gateway(&upstream).await;
    let (neighbour, _) = connect(&gw.url).await;
    let session = raw_initialize(&gw.url).await;
    let counts = Counts::now(gw.port).await;
    // Two calls that will never be answered take the session's two slots.
    let mut waiting = Vec::new();
    for id in [20, 21] {
        let res = post(&gw.url, Some(&session), &call(id, "never_answer", json!({}))).await;
        waiting.push(Events::new(res));
    }
    let (started, calls) = (Instant::now(), upstream.calls());
    let res = post(&gw.url, Some(&session), &call(22, "echo", json!({"text": "third"}))).await;
    assert_eq!(res.status(), 429);
    assert_eq!(reason(res).await, "too_many_pending_requests");
    assert!(started.elapsed() < Duration::from_millis(500), "refused at once, not after the upstream");
    assert_eq!(upstream.calls(), calls, "the upstream never saw it");
    // Meanwhile, another session — and hostile answers on this one — change nothing for it.
    let noise = tokio::spawn({
        let (url, other) = (gw.url.clone(), raw_initialize(&gw.url).await);
        async move {
            call_all(&url, &other, 30, "flood_server_requests", json!({"count": 50})).await;
            call_all(&url, &other, 31, "reset_mid_sse", json!({})).await;
            call_all(&url, &other, 32, "garbage_sse", json!({})).await;
        }
    });
    for i in 0..5 {
        echo_via_rmcp(&neighbour, &format!("still here {i}")).await;
    }
    noise.await.unwrap();
    // The two calls time out; their slots come back.
    for events in waiting {
        let messages = events.all(Duration::from_secs(3)).await;
        assert_eq!(error_reason(&messages[0]), "upstream_timeout");
    }
    let messages = call_all(&gw.url, &session, 23, "echo", json!({"text": "room again"})).await;
    assert_eq!(text(&messages[0]), "room again");
    counts
        .grew(&[
            ("too_many_pending", 1),
            ("request_timeout", 2),
            ("too_many_server_requests", 47),
            ("upstream_failure", 1),
            ("invalid_message", 1),
        ])
        .await;
    neighbour.cancel().await.unwrap();
    gw.shutdown().await;
}
