//! Authentication end to end: hashed API keys and JWTs from a real OpenID
//! Provider, scopes, sessions bound to principals, no token passthrough.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, INIT, Oidc, connect_with_token, post_as};
use mcp_guard::{auth::api_key, config::hash_api_key};
use rmcp::model::CallToolRequestParams;

fn text(result: &rmcp::model::CallToolResult) -> String {
    result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).unwrap_or_default()
}

fn call(name: &str) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_owned())
        .with_arguments(serde_json::json!({"text": "hi"}).as_object().unwrap().clone())
}

/// Two keys: alice may call tools, bob may only read.
fn keys_config(alice: &str, bob: &str) -> String {
    format!(
        "[auth]\nscopes_supported = [\"mcp:tools\", \"mcp:read\"]\n[auth.tool_scopes]\necho = [\"mcp:tools\"]\n\
         [[auth.api_keys]]\nname = \"alice\"\nhash = \"{}\"\nscopes = [\"mcp:tools\", \"mcp:read\"]\n\
         [[auth.api_keys]]\nname = \"bob\"\nhash = \"{}\"\nscopes = [\"mcp:read\"]\n",
        hash_api_key(alice),
        hash_api_key(bob)
    )
}

async fn session_of(url: &str, token: &str) -> String {
    let res = post_as(url, Some(token), None, INIT).await;
    assert_eq!(res.status(), 200);
    res.headers()["mcp-session-id"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn api_keys_challenges_scopes_and_session_binding() {
    let (alice, bob) = (api_key::generate().unwrap(), api_key::generate().unwrap());
    let gw = Gateway::stdio(&keys_config(&alice, &bob)).await;
    let base = format!("http://127.0.0.1:{}", gw.port);

    // No credentials: 401 pointing at the RFC 9728 metadata, served at both paths.
    let res = post_as(&gw.url, None, None, INIT).await;
    assert_eq!(res.status(), 401);
    let www = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/mcp");
    assert_eq!(www, format!("Bearer resource_metadata=\"{metadata_url}\", scope=\"mcp:tools mcp:read\""));
    for url in [metadata_url.clone(), format!("{base}/.well-known/oauth-protected-resource")] {
        let doc: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        assert_eq!(doc["resource"], gw.url.as_str(), "{url}");
        assert_eq!(doc["bearer_methods_supported"][0], "header");
    }
    // A wrong key, and a right key in the query string: both refused.
    let res = post_as(&gw.url, Some("mcpg_wrong"), None, INIT).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("error=\"invalid_token\""));
    let res = post_as(&format!("{}?api_key={alice}&access_token={alice}", gw.url), None, None, INIT).await;
    assert_eq!(res.status(), 401);

    // Alice works end to end with rmcp's client.
    let client = connect_with_token(&gw.url, &alice).await.unwrap();
    assert_eq!(text(&client.call_tool(call("echo")).await.unwrap()), "hi");
    client.cancel().await.unwrap();

    // Bob may list but not call `echo`: 403 with every scope the call needs.
    let bob_session = session_of(&gw.url, &bob).await;
    let call_echo =
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}"#;
    let res = post_as(&gw.url, Some(&bob), Some(&bob_session), call_echo).await;
    assert_eq!(res.status(), 403);
    let www = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(www.contains("error=\"insufficient_scope\"") && www.contains("scope=\"mcp:read mcp:tools\""), "{www}");

    // Sessions are bound to their creator: bob replaying alice's id gets 404, like an unknown id.
    let alice_session = session_of(&gw.url, &alice).await;
    let ping = r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#;
    assert_eq!(post_as(&gw.url, Some(&bob), Some(&alice_session), ping).await.status(), 404);
    let res = reqwest::Client::new()
        .delete(&gw.url)
        .bearer_auth(&bob)
        .header("mcp-session-id", &alice_session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "bob cannot end alice's session");
    assert_eq!(post_as(&gw.url, Some(&alice), Some(&alice_session), ping).await.status(), 200, "still alice's");
    // A session never authenticates by itself.
    assert_eq!(post_as(&gw.url, None, Some(&alice_session), ping).await.status(), 401);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_upstream_never_sees_the_client_token() {
    let alice = api_key::generate().unwrap();
    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    // The gateway's own credential for the upstream comes from the environment, never from the client.
    let config = format!(
        "[upstream]\nurl = {:?}\nheaders = {{ \"x-upstream-key\" = {{ env = \"UPSTREAM_KEY\" }} }}\n{}",
        upstream.url,
        keys_config(&alice, &api_key::generate().unwrap())
    );
    let gw = Gateway::start_with_env(&config, &[("UPSTREAM_KEY", "gateway-own-credential")]).await;
    let client = connect_with_token(&gw.url, &alice).await.unwrap();
    let seen = text(&client.call_tool(CallToolRequestParams::new("headers")).await.unwrap()).to_ascii_lowercase();
    assert!(!seen.contains(&alice.to_ascii_lowercase()), "{seen}");
    assert!(!seen.contains("authorization:"), "{seen}");
    assert!(seen.contains("x-upstream-key: gateway-own-credential"), "{seen}");
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn jwt_from_a_real_openid_provider() {
    let oidc = Oidc::start();
    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    let config = format!(
        "[auth]\nscopes_supported = [\"mcp:tools\"]\nrequired_scopes = [\"mcp:tools\"]\n[auth.jwt]\nissuer = \"{}\"\n",
        oidc.issuer
    );
    let gw = Gateway::http(&upstream.url, &config).await;
    // The gateway discovered the issuer's JWKS; a token issued for it works with rmcp's client.
    let token = oidc.token("mcp-test-client", "mcp-test-secret", &gw.url, "mcp:tools").await;
    let client = connect_with_token(&gw.url, &token).await.unwrap();
    assert_eq!(text(&client.call_tool(call("echo")).await.unwrap()), "hi");
    let seen = text(&client.call_tool(CallToolRequestParams::new("headers")).await.unwrap());
    assert!(!seen.contains(&token), "token passthrough");
    client.cancel().await.unwrap();

    // A token for another resource is refused: the spec forbids accepting it.
    let elsewhere = oidc.token("mcp-test-client", "mcp-test-secret", "http://127.0.0.1:9/other", "mcp:tools").await;
    let res = post_as(&gw.url, Some(&elsewhere), None, INIT).await;
    assert_eq!(res.status(), 401);
    // Without the required scope: 403 insufficient_scope, asking for mcp:tools.
    let reader = oidc.token("mcp-test-client", "mcp-test-secret", &gw.url, "mcp:read").await;
    let res = post_as(&gw.url, Some(&reader), None, INIT).await;
    assert_eq!(res.status(), 403);
    assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("scope=\"mcp:read mcp:tools\""));
    // A tampered token is refused.
    let mut tampered = token.clone();
    tampered.insert(tampered.find('.').unwrap() + 5, 'A');
    assert_eq!(post_as(&gw.url, Some(&tampered), None, INIT).await.status(), 401);

    // Two principals from the same issuer: B cannot use A's session.
    let other = oidc.token("mcp-other-client", "mcp-other-secret", &gw.url, "mcp:tools").await;
    let session = session_of(&gw.url, &token).await;
    let ping = r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#;
    assert_eq!(post_as(&gw.url, Some(&other), Some(&session), ping).await.status(), 404);
    assert_eq!(post_as(&gw.url, Some(&token), Some(&session), ping).await.status(), 200);
    gw.shutdown().await;
}
