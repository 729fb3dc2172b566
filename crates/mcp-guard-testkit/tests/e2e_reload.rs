//! Configuration reload in process (`Running::reload`, what SIGHUP calls):
//! a request in flight finishes under the configuration it started with,
//! rate-limit buckets and sessions survive, sealing keys rotate without
//! ending sessions. The SIGHUP and file-watch triggers are tested on the
//! real binary in the `mcp-guard` crate's `tests/reload.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Gateway, post, raw_initialize, reason};

fn call(id: u32, tool: &str, arguments: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{arguments}}}}}"#
    )
}

const DENY_SLEEP: &str =
    "[policy]\ndefault = \"allow\"\n[[policy.rules]]\nprincipals = [\"*\"]\neffect = \"deny\"\ntools = [\"sleep\"]\n";

#[tokio::test]
async fn a_request_in_flight_finishes_under_the_config_it_started_with() {
    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    let gw = Gateway::http(&upstream.url, "").await;
    let session = raw_initialize(&gw.url).await;
    let slow = {
        let (url, session) = (gw.url.clone(), session.clone());
        tokio::spawn(async move {
            let res = post(&url, Some(&session), &call(2, "sleep", r#"{"delay_ms":800}"#)).await;
            (res.status(), res.text().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.reload(&format!("[upstream]\nurl = {:?}\n{DENY_SLEEP}", upstream.url)).expect("valid reload");

    // Started before the reload: allowed, and answered.
    let (status, body) = slow.await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"result\"") && !body.contains("\"error\""), "{body}");
    // Started after it: denied, as a tool that does not exist, same session.
    let res = post(&gw.url, Some(&session), &call(3, "sleep", r#"{"delay_ms":1}"#)).await;
    let body = res.text().await.unwrap();
    assert!(body.contains("-32602") && body.contains("Unknown tool"), "{body}");
    let res = post(&gw.url, Some(&session), &call(4, "echo", r#"{"text":"still here"}"#)).await;
    assert!(res.text().await.unwrap().contains("still here"));
    gw.shutdown().await;
}

#[tokio::test]
async fn rate_limit_buckets_survive_a_reload_that_keeps_the_limits() {
    let limits = "[rate_limit]\nper_minute = 3\n";
    let gw = Gateway::start(limits).await;
    for _ in 0..3 {
        assert_eq!(post(&gw.url, None, common::INIT).await.status(), 200);
    }
    assert_eq!(post(&gw.url, None, common::INIT).await.status(), 429);
    // Other settings change, the limits do not: the spent bucket stays spent.
    gw.reload(&format!("{limits}[server]\nallowed_origins = [\"https://app.example\"]\n")).unwrap();
    assert_eq!(reason(post(&gw.url, None, common::INIT).await).await, "rate_limited");
    // New limits start new buckets.
    gw.reload("[rate_limit]\nper_minute = 5\n").unwrap();
    assert_eq!(post(&gw.url, None, common::INIT).await.status(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn sealing_keys_rotate_without_ending_sessions_and_bad_reloads_change_nothing() {
    // 32 bytes in hex, in files (`[[sessions.keys]] file = …`).
    let dir = std::env::temp_dir().join(format!("mcp-guard-e2e-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (old, new, short) = (dir.join("old.key"), dir.join("new.key"), dir.join("short.key"));
    std::fs::write(&old, "07".repeat(32)).unwrap();
    std::fs::write(&new, "08".repeat(32)).unwrap();
    std::fs::write(&short, "09".repeat(8)).unwrap();
    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    let sessions = |keys: &[&std::path::Path]| {
        let keys: String =
            keys.iter().map(|k| format!("[[sessions.keys]]\nfile = {:?}\n", k.display().to_string())).collect();
        format!("[upstream]\nurl = {:?}\n{keys}", upstream.url)
    };
    let gw = Gateway::start(&sessions(&[&old])).await;
    let before = raw_initialize(&gw.url).await;

    // Rotation: the new key seals, the old one still opens.
    gw.reload(&sessions(&[&new, &old])).expect("rotation");
    let res = post(&gw.url, Some(&before), &call(2, "echo", r#"{"text":"a"}"#)).await;
    assert_eq!(res.status(), 200, "a session sealed before the rotation still opens");
    let after = raw_initialize(&gw.url).await;

    // Refused reloads leave everything as it was.
    let error = gw.reload(&sessions(&[&short])).expect_err("bad key");
    assert!(error.contains("sessions.keys"), "{error}");
    let error = gw.reload("[upstream]\nurl = \"http://127.0.0.1:9/mcp\"\n").expect_err("restart-only");
    assert!(error.contains("[upstream]"), "{error}");
    for session in [&before, &after] {
        let res = post(&gw.url, Some(session), &call(3, "echo", r#"{"text":"b"}"#)).await;
        assert_eq!(res.status(), 200);
    }

    // The old key retired: its sessions end (404), the new key's live on.
    gw.reload(&sessions(&[&new])).expect("retire the old key");
    assert_eq!(post(&gw.url, Some(&before), &call(4, "echo", r#"{"text":"c"}"#)).await.status(), 404);
    assert_eq!(post(&gw.url, Some(&after), &call(5, "echo", r#"{"text":"d"}"#)).await.status(), 200);
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_key_removed_by_a_reload_stops_working_at_once() {
    use mcp_guard::config::hash_api_key;
    let key = |name: &str, secret: &str| {
        format!("[[auth.api_keys]]\nname = \"{name}\"\nhash = \"{}\"\n", hash_api_key(secret))
    };
    let gw = Gateway::start(&key("alice", "alice-secret")).await;
    assert_eq!(common::post_as(&gw.url, Some("alice-secret"), None, common::INIT).await.status(), 200);
    assert_eq!(common::post_as(&gw.url, Some("bob-secret"), None, common::INIT).await.status(), 401);

    gw.reload(&key("bob", "bob-secret")).unwrap();
    assert_eq!(reason(common::post_as(&gw.url, Some("alice-secret"), None, common::INIT).await).await, "invalid_token");
    assert_eq!(common::post_as(&gw.url, Some("bob-secret"), None, common::INIT).await.status(), 200);
    gw.shutdown().await;
}
