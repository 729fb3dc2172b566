//! Sealed session tokens end to end: two gateways with the same key in
//! front of one HTTP upstream share sessions, for their owner only; tokens
//! are opaque, unforgeable, bound to their key, and (stdio) to their replica.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, INIT, TEST_SERVER, connect_with_token, post_as, reason};
use mcp_guard::{auth::api_key, config::hash_api_key};
use rmcp::model::CallToolRequestParams;

const KEY_VAR: &str = "TEST_SESSION_KEY";
/// 32 bytes in hex, as `[[sessions.keys]]` accepts.
const KEY: &str = "0707070707070707070707070707070707070707070707070707070707070707";
const OTHER_KEY: &str = "0808080808080808080808080808080808080808080808080808080808080808";

const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
const ECHO: &str =
    r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"through B"}}}"#;
const HEADERS: &str = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"headers","arguments":{}}}"#;
const PING: &str = r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#;

/// Sealing with the key in `TEST_SESSION_KEY`, and API keys for alice and bob.
fn config(upstream: &str, alice: &str, bob: &str) -> String {
    format!(
        "{upstream}\n[[sessions.keys]]\nenv = \"{KEY_VAR}\"\n\
         [[auth.api_keys]]\nname = \"alice\"\nhash = \"{}\"\n\
         [[auth.api_keys]]\nname = \"bob\"\nhash = \"{}\"\n",
        hash_api_key(alice),
        hash_api_key(bob)
    )
}

/// A gateway in this process; `key` goes into `TEST_SESSION_KEY`.
async fn gateway(toml: &str, key: &str) -> Gateway {
    Gateway::start_with_env(toml, &[(KEY_VAR, key)]).await
}

/// Initializes as `token` through `url`; returns the session id handed out.
async fn initialize(url: &str, token: Option<&str>) -> String {
    let res = post_as(url, token, None, INIT).await;
    assert_eq!(res.status(), 200);
    let session = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    assert!(res.text().await.unwrap().contains("\"protocolVersion\""));
    assert_eq!(post_as(url, token, Some(&session), INITIALIZED).await.status(), 202);
    session
}

/// The value of `mcp-session-id` in the upstream's `headers` tool output.
fn upstream_session(headers_output: &str) -> String {
    let start = headers_output.find("mcp-session-id: ").expect("the upstream saw a session id") + 16;
    headers_output[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect()
}

/// `token` with one character changed.
fn flipped(token: &str, at: usize) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn a_session_from_replica_a_works_through_replica_b_for_its_owner_only() {
    let (alice, bob) = (api_key::generate().unwrap(), api_key::generate().unwrap());
    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    let toml = config(&format!("[upstream]\nurl = {:?}", upstream.url), &alice, &bob);
    let (a, b) = (gateway(&toml, KEY).await, gateway(&toml, KEY).await);
    let other_key = gateway(&toml, OTHER_KEY).await;

    let token = initialize(&a.url, Some(&alice)).await;
    assert!(token.len() <= 1024 && token.bytes().all(|c| (0x21..=0x7e).contains(&c)), "{token}");

    // Through B, same principal: list, call, and see what the upstream got.
    let res = post_as(&b.url, Some(&alice), Some(&token), LIST).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("\"echo\""));
    let res = post_as(&b.url, Some(&alice), Some(&token), ECHO).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("through B"));
    let res = post_as(&b.url, Some(&alice), Some(&token), HEADERS).await;
    assert_eq!(res.status(), 200);
    let seen = upstream_session(&res.text().await.unwrap());
    assert!(!seen.is_empty());
    assert_ne!(seen, token, "the client holds a sealed token, not the upstream's id");
    assert!(!token.contains(&seen));

    // Another principal, an altered token, the upstream's own id, another key: 404 like an unknown session.
    let res = post_as(&b.url, Some(&bob), Some(&token), PING).await;
    assert_eq!(res.status(), 404);
    assert_eq!(reason(res).await, "session_not_found");
    for at in [0, 5, 20, token.len() - 1] {
        let res = post_as(&b.url, Some(&alice), Some(&flipped(&token, at)), PING).await;
        assert_eq!(res.status(), 404, "byte {at}");
    }
    assert_eq!(post_as(&b.url, Some(&alice), Some(&seen), PING).await.status(), 404, "raw upstream id");
    let res = post_as(&other_key.url, Some(&alice), Some(&token), PING).await;
    assert_eq!(res.status(), 404);
    assert_eq!(reason(res).await, "session_not_found");

    // DELETE through A ends it; A refuses the token from then on.
    let delete = |url: &str, key: &str| {
        reqwest::Client::new().delete(url).bearer_auth(key).header("mcp-session-id", &token).send()
    };
    assert_eq!(delete(&b.url, &bob).await.unwrap().status(), 404, "bob cannot end it");
    let status = delete(&a.url, &alice).await.unwrap().status();
    assert!(status.is_success(), "{status}");
    assert_eq!(post_as(&a.url, Some(&alice), Some(&token), PING).await.status(), 404, "ended");

    // A real client works end to end with sealed ids.
    let client = connect_with_token(&a.url, &alice).await.unwrap();
    let args = serde_json::json!({"text": "sealed"}).as_object().unwrap().clone();
    let result = client.call_tool(CallToolRequestParams::new("echo").with_arguments(args)).await.unwrap();
    assert_eq!(result.content.first().and_then(|c| c.as_text()).map(|t| t.text.as_str()), Some("sealed"));
    client.cancel().await.unwrap();

    for gw in [a, b, other_key] {
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn in_process_sessions_name_their_replica() {
    let (alice, bob) = (api_key::generate().unwrap(), api_key::generate().unwrap());
    let stdio = config(&format!("[upstream]\ncommand = [{TEST_SERVER:?}, \"stdio\"]"), &alice, &bob);
    let (one, two) = (gateway(&stdio, KEY).await, gateway(&stdio, KEY).await);
    let token = initialize(&one.url, Some(&alice)).await;
    assert_eq!(post_as(&one.url, Some(&alice), Some(&token), PING).await.status(), 200);
    let res = post_as(&two.url, Some(&alice), Some(&token), PING).await;
    assert_eq!(res.status(), 404, "the session lives in the other process");
    assert_eq!(reason(res).await, "session_not_found");
    assert_eq!(post_as(&one.url, Some(&bob), Some(&token), PING).await.status(), 404);
    // Real clients, through a stdio and a demo upstream.
    let demo = gateway(&config("", &alice, &bob), KEY).await;
    for url in [&one.url, &demo.url] {
        let client = connect_with_token(url, &alice).await.unwrap();
        assert!(!client.list_all_tools().await.unwrap().is_empty(), "{url}");
        client.cancel().await.unwrap();
    }
    for gw in [one, two, demo] {
        gw.shutdown().await;
    }
}

/// With `[redis]`, a DELETE through one replica ends the session on every
/// replica, even though the upstream (which kept it) would still serve it.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_deleted_through_one_replica_is_refused_by_the_others() {
    let redis = mcp_guard_testkit::redis::RedisServer::start().expect("redis-server runs");
    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    let (alice, bob) = (api_key::generate().unwrap(), api_key::generate().unwrap());
    let toml = format!(
        "{}\n[redis]\nurl = \"{}\"\n",
        config(&format!("[upstream]\nurl = \"{}\"", upstream.url), &alice, &bob),
        redis.url()
    );
    let (a, b) = (gateway(&toml, KEY).await, gateway(&toml, KEY).await);
    let session = initialize(&a.url, Some(&alice)).await;
    assert_eq!(post_as(&b.url, Some(&alice), Some(&session), PING).await.status(), 200, "shared before the DELETE");
    let deleted = reqwest::Client::new()
        .delete(&a.url)
        .bearer_auth(&alice)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let replay = post_as(&b.url, Some(&alice), Some(&session), PING).await;
    assert_eq!(replay.status(), 404, "replayed through the other replica");
    assert_eq!(reason(replay).await, "session_not_found");
    let mut conn = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::AsyncCommands::keys(&mut conn, "mcp-guard:ended:*").await.unwrap();
    assert_eq!(keys.len(), 1, "one record, keyed by a hash: {keys:?}");
    assert!(!keys[0].contains(&session), "the token itself is never stored");
    let ttl: i64 = redis::AsyncCommands::ttl(&mut conn, &keys[0]).await.unwrap();
    assert!(ttl > 3600, "kept until the token would expire (24h by default): {ttl}");
    a.shutdown().await;
    b.shutdown().await;
}
