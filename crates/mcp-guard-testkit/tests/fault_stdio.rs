//! Fault injection on stdio children behind the real gateway: the child
//! SIGKILLed mid-call and mid-stream (the real rmcp test server), and a
//! child that started processes of its own (the hostile server). Each time
//! the caller gets a JSON-RPC error for its id at once, the session is
//! gone, the child is reaped, nothing it started survives it, and every
//! other session carries on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod stdio_support;

use std::time::{Duration, Instant};

use common::{
    Gateway, connect, delete,
    events::{Events, call, call_with_progress, error_reason, text},
    post, raw_initialize, reason,
};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use stdio_support::{HOSTILE, Reap, eventually, kill, running};

const PING: &str = r#"{"jsonrpc":"2.0","id":99,"method":"ping"}"#;

/// The pid of the session's child, from the test server's `whoami` tool.
async fn child_pid(url: &str, session: &str) -> u32 {
    let messages =
        Events::new(post(url, Some(session), &call(50, "whoami", json!({}))).await).all(Duration::from_secs(5)).await;
    let report: Value = serde_json::from_str(text(&messages[0])).unwrap();
    u32::try_from(report["pid"].as_u64().unwrap()).unwrap()
}

/// What every fault must leave intact: the neighbour's session, new
/// sessions, and no process of the dead session's left (not even a zombie).
async fn assert_contained(
    gw: &Gateway,
    survivor: &rmcp::service::RunningService<rmcp::RoleClient, common::Recorder>,
    session: &str,
    pid: u32,
) {
    let res = post(&gw.url, Some(session), PING).await;
    assert_eq!(res.status(), 404);
    assert_eq!(reason(res).await, "session_not_found");
    let gone = eventually(Duration::from_secs(5), || !std::path::Path::new(&format!("/proc/{pid}")).exists()).await;
    assert!(gone, "the killed child {pid} was reaped");
    let args = json!({ "text": "unaffected" }).as_object().unwrap().clone();
    let echoed = survivor.call_tool(CallToolRequestParams::new("echo").with_arguments(args)).await.unwrap();
    assert_eq!(echoed.content[0].as_text().unwrap().text, "unaffected");
    let fresh = raw_initialize(&gw.url).await;
    assert_eq!(post(&gw.url, Some(&fresh), PING).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_killed_mid_call() {
    let gw = Gateway::stdio("[rate_limit]\nenabled = false").await;
    let (survivor, _) = connect(&gw.url).await;
    let session = raw_initialize(&gw.url).await;
    let pid = child_pid(&gw.url, &session).await;

    let mut events = Events::new(post(&gw.url, Some(&session), &call(7, "sleep", json!({ "ms": 60_000 }))).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed = Instant::now();
    kill(pid);
    let error = events.next(Duration::from_secs(5)).await.expect("an answer for the call");
    let waited = killed.elapsed();
    assert_eq!((error["id"].as_u64(), error_reason(&error)), (Some(7), "upstream_exited"));
    assert!(waited < Duration::from_secs(3), "answered {waited:?} after the kill");
    assert!(events.next(Duration::from_secs(5)).await.is_none(), "then the stream ends");

    assert_contained(&gw, &survivor, &session, pid).await;
    survivor.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_killed_mid_stream() {
    let gw = Gateway::stdio("[rate_limit]\nenabled = false").await;
    let (survivor, _) = connect(&gw.url).await;
    let session = raw_initialize(&gw.url).await;
    let pid = child_pid(&gw.url, &session).await;

    let body = call_with_progress(8, "progress", json!({ "steps": 100, "delay_ms": 100 }), "tok");
    let mut events = Events::new(post(&gw.url, Some(&session), &body).await);
    let first = events.next(Duration::from_secs(5)).await.expect("the first progress");
    assert_eq!(
        (first["method"].as_str(), first["params"]["progressToken"].as_str()),
        (Some("notifications/progress"), Some("tok"))
    );
    let killed = Instant::now();
    kill(pid);
    // Progress already in the pipe may still arrive; then the error, then the end.
    let rest = events.all(Duration::from_secs(5)).await;
    let waited = killed.elapsed();
    let last = rest.last().expect("an answer for the call");
    assert_eq!((last["id"].as_u64(), error_reason(last)), (Some(8), "upstream_exited"));
    assert!(rest[..rest.len() - 1].iter().all(|m| m["method"] == "notifications/progress"), "{rest:?}");
    assert!(waited < Duration::from_secs(3), "the stream ended {waited:?} after the kill");

    assert_contained(&gw, &survivor, &session, pid).await;
    survivor.cancel().await.unwrap();
    gw.shutdown().await;
}

/// The hostile server's pid and the pid of the `sleep 1000` it started.
async fn child_and_grandchild(url: &str, session: &str) -> (u32, u32) {
    let read = |id: u64, tool: &'static str| async move {
        let messages =
            Events::new(post(url, Some(session), &call(id, tool, json!({}))).await).all(Duration::from_secs(5)).await;
        text(&messages[0]).parse::<u32>().unwrap_or_else(|_| panic!("{tool}: {messages:?}"))
    };
    (read(2, "pid").await, read(3, "spawn_sleeper").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_a_child_started_end_with_its_session() {
    let gw = Gateway::start(&format!("[upstream]\ncommand = [{HOSTILE:?}]\n[rate_limit]\nenabled = false\n")).await;

    // Ended by the client: the child exits when its stdin closes; what it
    // started does not know to, and is killed with its process group.
    let deleted = raw_initialize(&gw.url).await;
    let (child, sleeper) = child_and_grandchild(&gw.url, &deleted).await;
    let _reap = (Reap(child), Reap(sleeper));
    assert!(running(child) && running(sleeper));
    assert_eq!(delete(&gw.url, &deleted).await.status(), 200);
    assert!(
        eventually(Duration::from_secs(5), || !running(child) && !running(sleeper)).await,
        "both gone after DELETE"
    );

    // Killed from outside: the grandchild still holds the child's stdout
    // open, which must not keep the session (or the sleeper) alive.
    let session = raw_initialize(&gw.url).await;
    let (child, sleeper) = child_and_grandchild(&gw.url, &session).await;
    let _reap_too = (Reap(child), Reap(sleeper));
    let mut events = Events::new(post(&gw.url, Some(&session), &call(4, "never", json!({}))).await);
    kill(child);
    let error = events.next(Duration::from_secs(5)).await.expect("an answer for the call");
    assert_eq!(error_reason(&error), "upstream_exited");
    assert!(eventually(Duration::from_secs(5), || !running(sleeper)).await, "the sleeper died with its parent");
    let gone = eventually(Duration::from_secs(5), || !std::path::Path::new(&format!("/proc/{child}")).exists()).await;
    assert!(gone, "the killed child was reaped");
    assert_eq!(post(&gw.url, Some(&session), PING).await.status(), 404);
    gw.shutdown().await;
}
