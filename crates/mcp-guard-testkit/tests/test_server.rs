//! The test server itself, without a gateway: the tools, resources and
//! prompts the policy end-to-end tests rely on, over Streamable HTTP
//! (`spawn_http`) and over a byte stream (as the stdio binary serves it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use mcp_guard_testkit::{GET_WEATHER_DESCRIPTION, RUG_PULLED_DESCRIPTION, TestServer};
use rmcp::{
    ClientHandler, RoleClient, ServiceExt,
    model::{
        CallToolRequestParams, CallToolResult, ErrorCode, GetPromptRequestParams, PaginatedRequestParams,
        ReadResourceRequestParams, ResourceContents, SubscribeRequestParams, Tool,
    },
    service::{NotificationContext, RunningService, ServiceError},
    transport::StreamableHttpClientTransport,
};
use serde_json::json;
use tokio::sync::Notify;

/// Counts `notifications/tools/list_changed`.
#[derive(Clone, Default)]
struct Client {
    list_changed: Arc<Notify>,
}

impl ClientHandler for Client {
    async fn on_tool_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        self.list_changed.notify_one();
    }
}

async fn connect(url: &str) -> (RunningService<RoleClient, Client>, Arc<Notify>) {
    let handler = Client::default();
    let notify = handler.list_changed.clone();
    let client = handler.serve(StreamableHttpClientTransport::from_uri(url.to_owned())).await.expect("initialize");
    (client, notify)
}

fn call(name: &str, args: serde_json::Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_owned()).with_arguments(args.as_object().unwrap().clone())
}

fn text(result: &CallToolResult) -> String {
    result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).unwrap_or_default()
}

fn tool<'a>(tools: &'a [Tool], name: &str) -> &'a Tool {
    tools.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no tool {name}"))
}

fn mcp_code(err: ServiceError) -> ErrorCode {
    match err {
        ServiceError::McpError(e) => e.code,
        other => panic!("expected an MCP error, got {other}"),
    }
}

#[tokio::test]
async fn tools_rug_pull_and_received_log_over_http() {
    let server = mcp_guard_testkit::spawn_http().await.unwrap();
    let (client, list_changed) = connect(&server.url).await;

    let tools = client.list_all_tools().await.unwrap();
    for name in ["echo", "get_weather", "delete_everything", "add", "rug_pull", "received"] {
        tool(&tools, name);
    }
    assert_eq!(tool(&tools, "get_weather").description.as_deref(), Some(GET_WEATHER_DESCRIPTION));
    let add = serde_json::Value::Object((*tool(&tools, "add").input_schema).clone());
    assert_eq!(add["properties"]["a"]["type"], "integer", "{add}");
    assert_eq!(add["properties"]["b"]["type"], "integer", "{add}");
    let mut required: Vec<&str> = add["required"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    required.sort_unstable();
    assert_eq!(required, ["a", "b"]);

    assert_eq!(text(&client.call_tool(call("get_weather", json!({"city": "Oslo"}))).await.unwrap()), "sunny in Oslo");
    assert_eq!(text(&client.call_tool(call("add", json!({"a": 2, "b": 40}))).await.unwrap()), "42");
    assert_eq!(text(&client.call_tool(call("delete_everything", json!({"confirm": true}))).await.unwrap()), "deleted");

    client.call_tool(CallToolRequestParams::new("rug_pull")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), list_changed.notified()).await.expect("tools/list_changed arrives");
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tool(&tools, "get_weather").description.as_deref(), Some(RUG_PULLED_DESCRIPTION));

    // Another session of the same server sees the pulled rug; another server does not.
    let (other, _) = connect(&server.url).await;
    let tools = other.list_all_tools().await.unwrap();
    assert_eq!(tool(&tools, "get_weather").description.as_deref(), Some(RUG_PULLED_DESCRIPTION));
    other.cancel().await.unwrap();
    let fresh = mcp_guard_testkit::spawn_http().await.unwrap();
    let (fresh_client, _) = connect(&fresh.url).await;
    let tools = fresh_client.list_all_tools().await.unwrap();
    assert_eq!(tool(&tools, "get_weather").description.as_deref(), Some(GET_WEATHER_DESCRIPTION));
    fresh_client.cancel().await.unwrap();
    assert_eq!(fresh.received(), ["tools/list"]);

    let expected = [
        "tools/list",
        "tools/call get_weather",
        "tools/call add",
        "tools/call delete_everything",
        "tools/call rug_pull",
        "tools/list",
        "tools/list",
    ];
    let log: Vec<String> =
        serde_json::from_str(&text(&client.call_tool(CallToolRequestParams::new("received")).await.unwrap())).unwrap();
    assert_eq!(log, expected);
    assert_eq!(server.received(), expected, "the received call itself is not logged");
    client.cancel().await.unwrap();
}

#[tokio::test]
#[allow(deprecated, reason = "resources/subscribe is what the gateway forwards for pre-2026 clients")]
async fn resources_and_prompts_over_http() {
    let server = mcp_guard_testkit::spawn_http().await.unwrap();
    let (client, _) = connect(&server.url).await;

    let page1 = client.list_resources(None).await.unwrap();
    let uris: Vec<&str> = page1.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["file:///public/readme.txt", "file:///public/notes.txt"]);
    assert_eq!(page1.next_cursor.as_deref(), Some("page2"));
    let page2 = client.list_resources(Some(PaginatedRequestParams::default().with_cursor(page1.next_cursor))).await;
    let page2 = page2.unwrap();
    let uris: Vec<&str> = page2.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["file:///public/todo.txt", "file:///secret/keys.txt"]);
    assert_eq!(page2.next_cursor, None);
    assert_eq!(client.list_all_resources().await.unwrap().len(), 4);

    let templates = client.list_all_resource_templates().await.unwrap();
    let templates: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    assert_eq!(templates, ["file:///public/{name}", "file:///secret/{name}"]);

    let read = client.read_resource(ReadResourceRequestParams::new("file:///secret/keys.txt")).await.unwrap();
    assert!(matches!(&read.contents[..], [ResourceContents::TextResourceContents { text, .. }] if text == "s3cr3t"));
    let missing = client.read_resource(ReadResourceRequestParams::new("file:///nope")).await.unwrap_err();
    assert_eq!(mcp_code(missing), ErrorCode::RESOURCE_NOT_FOUND);
    client.subscribe(SubscribeRequestParams::new("file:///public/readme.txt")).await.unwrap();

    let prompts = client.list_all_prompts().await.unwrap();
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["greeting", "admin_prompt"]);
    let args = json!({"name": "Ada"}).as_object().unwrap().clone();
    let greeting = client.get_prompt(GetPromptRequestParams::new("greeting").with_arguments(args)).await.unwrap();
    assert_eq!(greeting.messages.len(), 1);
    client.get_prompt(GetPromptRequestParams::new("admin_prompt")).await.unwrap();
    let unknown = client.get_prompt(GetPromptRequestParams::new("nope")).await.unwrap_err();
    assert_eq!(mcp_code(unknown), ErrorCode::INVALID_PARAMS);

    assert_eq!(
        server.received(),
        [
            "resources/list",
            "resources/list",
            "resources/list",
            "resources/list",
            "resources/templates/list",
            "resources/read file:///secret/keys.txt",
            "resources/read file:///nope",
            "resources/subscribe file:///public/readme.txt",
            "prompts/list",
            "prompts/get greeting",
            "prompts/get admin_prompt",
            "prompts/get nope",
        ]
    );
    client.cancel().await.unwrap();
}

/// The stdio binary serves `TestServer::default()` on a byte stream; so does this.
#[tokio::test]
async fn rug_pull_over_a_byte_stream() {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = TestServer::default();
    let state = server.state().clone();
    tokio::spawn(async move {
        let running = server.serve(server_io).await.unwrap();
        let _ = running.waiting().await;
    });
    let handler = Client::default();
    let list_changed = handler.list_changed.clone();
    let client = handler.serve(client_io).await.unwrap();
    assert_eq!(text(&client.call_tool(call("add", json!({"a": -1, "b": 1}))).await.unwrap()), "0");
    client.call_tool(CallToolRequestParams::new("rug_pull")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), list_changed.notified()).await.expect("tools/list_changed arrives");
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tool(&tools, "get_weather").description.as_deref(), Some(RUG_PULLED_DESCRIPTION));
    assert!(state.rug_pulled());
    assert_eq!(state.received(), ["tools/call add", "tools/call rug_pull", "tools/list"]);
    client.cancel().await.unwrap();
}
