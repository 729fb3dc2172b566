//! A hostile stdio server behind the real gateway (`src/bin/hostile-stdio.rs`):
//! garbage, floods, silence, answers to ids nobody asked for, oversized
//! lines and streams, questions to the client nobody answers, too many
//! requests waiting. Each is contained to its session, counted in
//! `mcp_guard_upstream_violations_total{upstream="stdio"}`, and never stops
//! another session (a real rmcp client) from being served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod stdio_support;

use std::time::{Duration, Instant};

use common::{
    Gateway, connect, delete,
    events::{Events, answer, call, call_with_progress, echo_via_rmcp, error_reason, text},
    post, raw_initialize, reason,
};
use serde_json::{Value, json};
use stdio_support::{HOSTILE, eventually, running, violations};

/// A gateway in front of the hostile server; `upstream` adds `[upstream]` keys.
async fn gateway(upstream: &str) -> Gateway {
    Gateway::start(&format!("[upstream]\ncommand = [{HOSTILE:?}]\n{upstream}\n[rate_limit]\nenabled = false\n")).await
}

/// Calls a tool over raw HTTP and reads its whole SSE answer.
async fn call_all(url: &str, session: &str, id: u64, tool: &str, args: Value) -> Vec<Value> {
    Events::new(post(url, Some(session), &call(id, tool, args)).await).all(Duration::from_secs(20)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_wrong_ids_and_floods_are_counted_and_contained() {
    let gw = gateway("").await;
    let (neighbour, _) = connect(&gw.url).await;
    let session = raw_initialize(&gw.url).await;
    let (invalid, unsolicited) =
        (violations(gw.port, "invalid_message").await, violations(gw.port, "unsolicited_response").await);

    // Twelve lines that are not JSON-RPC, then the answer: it still arrives.
    let messages = call_all(&gw.url, &session, 2, "garbage", json!({ "lines": 12 })).await;
    assert_eq!(text(answer(&messages, 2).expect("answered")), "ok");
    assert!(messages.iter().all(|m| m["jsonrpc"] == "2.0"), "no garbage reaches the client: {messages:?}");
    assert_eq!(violations(gw.port, "invalid_message").await - invalid, 12);

    // Answers to ids nobody asked for are dropped; the right one goes through.
    let messages = call_all(&gw.url, &session, 3, "wrong_id", json!({})).await;
    assert_eq!(messages.len(), 1, "only the answer to id 3: {messages:?}");
    assert_eq!(text(&messages[0]), "right");
    assert_eq!(violations(gw.port, "unsolicited_response").await - unsolicited, 3);

    // A flood of notifications reaches its own client, every one, in order,
    // while the neighbour keeps being served.
    let flood = tokio::spawn({
        let (url, session) = (gw.url.clone(), session.clone());
        async move { call_all(&url, &session, 4, "flood", json!({ "count": 20_000 })).await }
    });
    let started = Instant::now();
    for i in 0..10 {
        echo_via_rmcp(&neighbour, &format!("still here {i}")).await;
    }
    let neighbour_time = started.elapsed();
    let messages = flood.await.unwrap();
    assert_eq!(messages.len(), 20_001, "every notification, then the answer");
    assert_eq!(text(&messages[20_000]), "flooded");
    assert!(messages[..20_000].iter().enumerate().all(|(i, m)| m["params"]["data"] == format!("{i} ")));
    assert!(neighbour_time < Duration::from_secs(5), "10 calls took {neighbour_time:?} during the flood");
    neighbour.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_times_out_per_request() {
    let gw = gateway("timeout = \"1s\"").await;
    let session = raw_initialize(&gw.url).await;
    let before = violations(gw.port, "request_timeout").await;
    let started = Instant::now();
    let messages = call_all(&gw.url, &session, 5, "never", json!({})).await;
    let waited = started.elapsed();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(error_reason(&messages[0]), "upstream_timeout");
    assert_eq!(messages[0]["id"], 5);
    assert!(waited >= Duration::from_secs(1) && waited < Duration::from_secs(4), "timed out after {waited:?}");
    // At least: under `cargo test` other tests in this process count too.
    assert!(violations(gw.port, "request_timeout").await > before);

    // The child was told, and the session still works.
    let messages = call_all(&gw.url, &session, 6, "received", json!({})).await;
    let received: Vec<Value> = serde_json::from_str(text(&messages[0])).unwrap();
    let cancelled = received.iter().find(|m| m["method"] == "notifications/cancelled").expect("a cancellation");
    assert_eq!(cancelled["params"]["requestId"], 5);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_restarts_the_timeout_up_to_the_maximum() {
    // The real rmcp test server's `progress` tool: a notification every 600 ms.
    let gw = Gateway::stdio("timeout = \"1s\"\nmax_request_duration = \"3s\"\n[rate_limit]\nenabled = false").await;
    let session = raw_initialize(&gw.url).await;
    let body = call_with_progress(2, "progress", json!({ "steps": 3, "delay_ms": 600 }), "p2");
    let messages = Events::new(post(&gw.url, Some(&session), &body).await).all(Duration::from_secs(10)).await;
    let result = answer(&messages, 2).expect("answered");
    assert!(result.get("error").is_none(), "1.8 s of work in 600 ms steps outlives a 1 s timeout: {result}");
    assert_eq!(messages.len(), 4);

    let started = Instant::now();
    let body = call_with_progress(3, "progress", json!({ "steps": 20, "delay_ms": 600 }), "p3");
    let messages = Events::new(post(&gw.url, Some(&session), &body).await).all(Duration::from_secs(10)).await;
    let waited = started.elapsed();
    let last = messages.last().expect("an answer");
    assert_eq!(error_reason(last), "upstream_timeout");
    assert!(messages.len() >= 4, "progress arrived before the cap: {messages:?}");
    assert!(waited >= Duration::from_secs(3) && waited < Duration::from_millis(4500), "capped at 3 s: {waited:?}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_lines_and_streams_fail_their_requests_at_once() {
    let gw = gateway("timeout = \"30s\"\nmax_message_size = \"64KiB\"\nmax_response_size = \"256KiB\"").await;
    let session = raw_initialize(&gw.url).await;
    let (too_large, over_budget) =
        (violations(gw.port, "message_too_large").await, violations(gw.port, "response_too_large").await);

    // A 100 kB answer line: skipped, and its request answered with an error
    // at once, not after the 30 s timeout.
    let started = Instant::now();
    let messages = call_all(&gw.url, &session, 2, "huge", json!({ "bytes": 100_000 })).await;
    assert!(started.elapsed() < Duration::from_secs(5), "failed fast: {:?}", started.elapsed());
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!((messages[0]["id"].as_u64(), error_reason(&messages[0])), (Some(2), "upstream_response_too_large"));
    assert_eq!(violations(gw.port, "message_too_large").await - too_large, 1);

    // 100 notifications of 4 kB each: past 256 KiB the stream gets the
    // error for its request and ends.
    let messages = call_all(&gw.url, &session, 3, "chatty", json!({ "count": 100, "size": 4096 })).await;
    let last = messages.last().expect("an answer");
    assert_eq!((last["id"].as_u64(), error_reason(last)), (Some(3), "upstream_response_too_large"));
    let delivered: usize = messages[..messages.len() - 1].iter().map(|m| m.to_string().len()).sum();
    assert!(delivered <= 256 * 1024 && messages.len() > 50, "{} messages, {delivered} bytes", messages.len());
    assert!(violations(gw.port, "response_too_large").await > over_budget);

    // Within the budget, the same session is fine.
    let messages = call_all(&gw.url, &session, 4, "echo", json!({ "text": "fine" })).await;
    assert_eq!(text(&messages[0]), "fine");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_childs_requests_to_the_client_are_bounded_timed_out_and_answered_once() {
    let gw = gateway("timeout = \"30s\"\nmax_server_requests_per_session = 2\nserver_request_timeout = \"1s\"").await;
    let session = raw_initialize(&gw.url).await;
    let (too_many, timed_out) =
        (violations(gw.port, "too_many_server_requests").await, violations(gw.port, "server_request_timeout").await);

    // Five questions at once: two reach the client (which never answers),
    // three are refused to the child at once; the two time out after ~1 s.
    let messages = call_all(&gw.url, &session, 2, "ask_roots", json!({ "count": 5, "wait_ms": 4000 })).await;
    let asked: Vec<&Value> = messages.iter().filter(|m| m["method"] == "roots/list").collect();
    assert_eq!(asked.len(), 2, "{messages:?}");
    let answers: Vec<Value> = serde_json::from_str(text(answer(&messages, 2).expect("answered"))).unwrap();
    let reasons = |r: &str| answers.iter().filter(|a| a["error"]["data"]["reason"] == r).count();
    assert_eq!(
        (reasons("too_many_server_requests"), reasons("client_timeout"), answers.len()),
        (3, 2, 5),
        "{answers:?}"
    );
    assert_eq!(violations(gw.port, "too_many_server_requests").await - too_many, 3);
    assert_eq!(violations(gw.port, "server_request_timeout").await - timed_out, 2);

    // A question the client does answer: the answer reaches the child, once.
    let mut events = Events::new(post(&gw.url, Some(&session), &call(3, "sample", json!({}))).await);
    let question = events.next(Duration::from_secs(5)).await.expect("the sampling request");
    assert_eq!(question["method"], "sampling/createMessage");
    let reply = json!({"jsonrpc": "2.0", "id": question["id"], "result": {"role": "assistant",
        "content": {"type": "text", "text": "hello"}, "model": "m"}})
    .to_string();
    assert_eq!(post(&gw.url, Some(&session), &reply).await.status(), 202);
    let result = events.next(Duration::from_secs(5)).await.expect("the tool's answer");
    let got: Vec<Value> = serde_json::from_str(text(&result)).unwrap();
    assert_eq!(got[0]["result"]["content"]["text"], "hello");
    // A second answer to it, and an answer to a question never asked: accepted, not passed on.
    assert_eq!(post(&gw.url, Some(&session), &reply).await.status(), 202);
    let ghost = r#"{"jsonrpc":"2.0","id":"ghost","result":{}}"#;
    assert_eq!(post(&gw.url, Some(&session), ghost).await.status(), 202);
    let messages = call_all(&gw.url, &session, 4, "received", json!({})).await;
    let received: Vec<Value> = serde_json::from_str(text(&messages[0])).unwrap();
    let answers_to = |id: &Value| -> Vec<&Value> {
        received.iter().filter(|m| m["id"] == *id && m.get("method").is_none()).collect()
    };
    let sampled = answers_to(&question["id"]);
    assert_eq!(sampled.len(), 1, "exactly one answer reached the child: {sampled:?}");
    assert_eq!(sampled[0]["result"]["content"]["text"], "hello");
    assert!(answers_to(&json!("ghost")).is_empty());
    for q in &asked {
        let answers = answers_to(&q["id"]);
        assert_eq!(answers.len(), 1, "the gateway's answer only: {answers:?}");
        assert_eq!(error_reason(answers[0]), "client_timeout");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_pending_requests_get_429_before_reaching_the_child() {
    let gw = gateway("timeout = \"3s\"\nmax_pending_per_session = 3").await;
    let session = raw_initialize(&gw.url).await;
    let before = violations(gw.port, "too_many_pending").await;
    // Three requests the child never answers hold every place.
    let mut held = Vec::new();
    for id in 10..13 {
        let res = post(&gw.url, Some(&session), &call(id, "never", json!({}))).await;
        held.push(Events::new(res));
    }
    let res = post(&gw.url, Some(&session), &call(13, "echo", json!({ "text": "no room" }))).await;
    assert_eq!(res.status(), 429);
    assert_eq!(reason(res).await, "too_many_pending_requests");
    assert_eq!(violations(gw.port, "too_many_pending").await - before, 1);
    // Other sessions have their own places.
    let other = raw_initialize(&gw.url).await;
    assert_eq!(text(&call_all(&gw.url, &other, 2, "echo", json!({ "text": "own cap" })).await[0]), "own cap");

    // The places free up as the held requests time out; the refused one
    // never reached the child.
    for events in held {
        let messages = events.all(Duration::from_secs(10)).await;
        assert_eq!(error_reason(&messages[0]), "upstream_timeout");
    }
    let messages = call_all(&gw.url, &session, 14, "received", json!({})).await;
    let received: Vec<Value> = serde_json::from_str(text(&messages[0])).unwrap();
    let ids: Vec<&Value> = received.iter().filter_map(|m| m.get("id")).collect();
    assert!([10, 11, 12].iter().all(|id| ids.contains(&&json!(id))), "{ids:?}");
    assert!(!ids.contains(&&json!(13)), "{ids:?}");
    gw.shutdown().await;
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_flood_stays_in_its_session_and_its_memory_bounded() {
    let gw = gateway("timeout = \"30s\"\nmax_message_size = \"64KiB\"\nmax_response_size = \"1MiB\"").await;
    let (neighbour, _) = connect(&gw.url).await;
    let session = raw_initialize(&gw.url).await;
    let pid: u32 = text(&call_all(&gw.url, &session, 2, "pid", json!({})).await[0]).parse().unwrap();

    // The flood fills its call's stream to the byte budget, which fails the
    // call; after that it has nowhere to go and is dropped, for ever.
    let messages = call_all(&gw.url, &session, 3, "flood_forever", json!({})).await;
    assert_eq!(error_reason(messages.last().unwrap()), "upstream_response_too_large");
    let started = Instant::now();
    for i in 0..20 {
        echo_via_rmcp(&neighbour, &format!("unaffected {i}")).await;
    }
    assert!(started.elapsed() < Duration::from_secs(5), "20 calls took {:?} beside the flood", started.elapsed());
    // Two seconds more of flood add nothing that stays.
    let rss_before = rss_kib();
    let invalid_before = violations(gw.port, "invalid_message").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 8 * 1024, "the gateway grew by {grown} KiB during the flood");
    assert!(running(pid), "still flooding");
    // Valid messages nobody listens for are dropped, not counted as violations.
    assert_eq!(violations(gw.port, "invalid_message").await, invalid_before);

    // Ending the session ends the child, flood and all.
    assert_eq!(delete(&gw.url, &session).await.status(), 200);
    assert!(eventually(Duration::from_secs(5), || !running(pid)).await, "the flooding child was stopped");
    echo_via_rmcp(&neighbour, "after").await;
    neighbour.cancel().await.unwrap();
    gw.shutdown().await;
}
