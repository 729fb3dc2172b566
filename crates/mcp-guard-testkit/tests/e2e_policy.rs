//! MCP-aware policy end to end: per-principal list filtering, denied
//! requests answered by the gateway and never forwarded, tool pins catching
//! a rug pull, argument validation, and the config errors that guard them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, INIT, connect_with_token, post_as};
use mcp_guard::{
    auth::api_key,
    config::{Overrides, hash_api_key, load_from_str},
};
use mcp_guard_testkit::{GET_WEATHER_DESCRIPTION, RESOURCES, RUG_PULLED_DESCRIPTION};
use serde_json::{Map, Value, json};

/// A raw MCP session through the gateway, for exact ids and exact bytes.
struct Raw {
    url: String,
    token: Option<String>,
    session: String,
}

/// One answer: HTTP status, content type, and the JSON-RPC message carrying the request's id.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: String,
    message: Value,
}

impl Answer {
    fn result(&self) -> &Value {
        assert!(self.message.get("error").is_none(), "expected a result: {}", self.message);
        &self.message["result"]
    }

    fn error(&self) -> &Value {
        assert_eq!(self.status, 200, "refusals are JSON-RPC errors inside HTTP 200: {}", self.body);
        self.message.get("error").unwrap_or_else(|| panic!("expected an error: {}", self.message))
    }

    /// The text of a `tools/call` result's first content block.
    fn text(&self) -> String {
        self.result()["content"][0]["text"].as_str().unwrap_or_default().to_owned()
    }

    /// The sorted `key` values of the result's `field` entries.
    fn names(&self, field: &str, key: &str) -> Vec<String> {
        let entries = self.result()[field].as_array().unwrap_or_else(|| panic!("no {field}: {}", self.message));
        let mut names: Vec<String> = entries.iter().map(|e| e[key].as_str().unwrap().to_owned()).collect();
        names.sort();
        names
    }
}

impl Raw {
    async fn open(url: &str, token: Option<&str>) -> Raw {
        let res = post_as(url, token, None, INIT).await;
        assert_eq!(res.status(), 200);
        let session = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        assert!(res.text().await.unwrap().contains("protocolVersion"));
        let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert_eq!(post_as(url, token, Some(&session), initialized).await.status(), 202);
        Raw { url: url.to_owned(), token: token.map(str::to_owned), session }
    }

    async fn send(&self, id: Value, method: &str, params: Value) -> Answer {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        let res = post_as(&self.url, self.token.as_deref(), Some(&self.session), &body).await;
        let status = res.status().as_u16();
        let content_type =
            res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body = res.text().await.unwrap();
        let message = answer_with_id(&body, &id).unwrap_or_else(|| panic!("no answer with id {id} in {body:?}"));
        Answer { status, content_type, body, message }
    }

    async fn call(&self, id: u64, tool: &str, arguments: Value) -> Answer {
        self.send(json!(id), "tools/call", json!({"name": tool, "arguments": arguments})).await
    }

    /// What the stdio child serving this session has received (its `received` tool).
    async fn received(&self) -> Vec<String> {
        serde_json::from_str(&self.call(9999, "received", json!({})).await.text()).unwrap()
    }
}

/// The JSON-RPC response with `id` in a JSON body or an SSE stream.
fn answer_with_id(body: &str, id: &Value) -> Option<Value> {
    let messages: Vec<Value> = match serde_json::from_str::<Value>(body) {
        Ok(Value::Array(batch)) => batch,
        Ok(one) => vec![one],
        // SSE: the data lines of each event (the gateway and rmcp write one JSON text per line).
        Err(_) => body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim_start()).ok())
            .collect(),
    };
    messages.into_iter().find(|m| &m["id"] == id && (m.get("result").is_some() || m.get("error").is_some()))
}

fn count(log: &[String], entry: &str) -> usize {
    log.iter().filter(|e| *e == entry).count()
}

/// Two API-key principals: `alice` (in group `readers`: read-only) and `admin` (everything).
fn policy_config(alice: &str, admin: &str, extra_rules: &str) -> String {
    format!(
        r#"
[[auth.api_keys]]
name = "alice"
hash = "{}"
[[auth.api_keys]]
name = "admin"
hash = "{}"

[policy]
default = "deny"
[policy.groups]
readers = ["alice"]

[[policy.rules]]
principals = ["group:readers"]
effect = "allow"
tools = ["get_*", "received"]
resources = ["file:///public/*"]
prompts = ["greeting"]

[[policy.rules]]
principals = ["admin"]
effect = "allow"
tools = ["*"]
resources = ["*"]
prompts = ["*"]
{extra_rules}
"#,
        hash_api_key(alice),
        hash_api_key(admin)
    )
}

/// Alice may not see `notes.txt` (deny wins over her group's allow), so
/// resources/list page 1 is rewritten and must keep its `nextCursor`.
const HIDE_NOTES: &str = r#"
[[policy.rules]]
principals = ["alice"]
effect = "deny"
resources = ["file:///public/notes.txt"]
"#;

async fn assert_lists_filtered(url: &str, alice: &str, admin: &str, sse: bool) {
    let a = Raw::open(url, Some(alice)).await;
    let tools = a.send(json!(2), "tools/list", json!({})).await;
    if sse {
        assert!(tools.content_type.starts_with("text/event-stream"), "{tools:?}");
    }
    assert_eq!(tools.names("tools", "name"), ["get_weather", "received"]);

    let page1 = a.send(json!("res-1"), "resources/list", json!({})).await;
    assert_eq!(page1.names("resources", "uri"), ["file:///public/readme.txt"]);
    assert_eq!(page1.result()["nextCursor"], "page2", "cursor kept through the rewrite: {}", page1.body);
    let page2 = a.send(json!("res-2"), "resources/list", json!({"cursor": "page2"})).await;
    assert_eq!(page2.names("resources", "uri"), ["file:///public/todo.txt"]);
    assert!(page2.result().get("nextCursor").is_none(), "{}", page2.body);

    let templates = a.send(json!(4), "resources/templates/list", json!({})).await;
    assert_eq!(templates.names("resourceTemplates", "uriTemplate"), ["file:///public/{name}"]);
    let prompts = a.send(json!(5), "prompts/list", json!({})).await;
    assert_eq!(prompts.names("prompts", "name"), ["greeting"]);
    for answer in [&tools, &page1, &page2, &templates, &prompts] {
        assert!(!answer.body.contains("secret") && !answer.body.contains("delete_everything"), "{}", answer.body);
    }

    // Admin, through rmcp's client, sees everything (all pages).
    let client = connect_with_token(url, admin).await.unwrap();
    let tools: Vec<String> = client.list_all_tools().await.unwrap().into_iter().map(|t| t.name.to_string()).collect();
    for name in ["echo", "get_weather", "delete_everything", "add", "rug_pull", "received"] {
        assert!(tools.contains(&name.to_owned()), "{tools:?}");
    }
    let uris: Vec<String> = client.list_all_resources().await.unwrap().into_iter().map(|r| r.uri.clone()).collect();
    assert_eq!(uris, RESOURCES.iter().map(|r| r.0).collect::<Vec<_>>());
    assert_eq!(client.list_all_resource_templates().await.unwrap().len(), 2);
    let mut prompts: Vec<String> = client.list_all_prompts().await.unwrap().into_iter().map(|p| p.name).collect();
    prompts.sort();
    assert_eq!(prompts, ["admin_prompt", "greeting"]);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn lists_are_filtered_per_principal() {
    let (alice, admin) = (api_key::generate().unwrap(), api_key::generate().unwrap());
    let config = policy_config(&alice, &admin, HIDE_NOTES);

    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    let gw = Gateway::http(&upstream.url, &config).await;
    assert_lists_filtered(&gw.url, &alice, &admin, true).await;
    gw.shutdown().await;

    let gw = Gateway::stdio(&config).await;
    assert_lists_filtered(&gw.url, &alice, &admin, false).await;
    gw.shutdown().await;
}

/// Alice's denied requests, each answered as if the name did not exist.
async fn assert_denials(alice: &Raw) {
    let tool = alice.call(11, "delete_everything", json!({"confirm": true})).await;
    assert!(tool.content_type.starts_with("application/json"), "{tool:?}");
    assert_eq!(
        tool.message,
        json!({"jsonrpc": "2.0", "id": 11, "error": {"code": -32602, "message": "Unknown tool: delete_everything"}})
    );
    // Indistinguishable from a tool that does not exist.
    let missing = alice.call(12, "no_such_tool", json!({})).await;
    assert_eq!(missing.error(), &json!({"code": -32602, "message": "Unknown tool: no_such_tool"}));

    let secret = json!({"uri": "file:///secret/keys.txt"});
    let read = alice.send(json!("read-1"), "resources/read", secret.clone()).await;
    assert_eq!(read.message["id"], "read-1");
    assert_eq!(read.error(), &json!({"code": -32002, "message": "Resource not found", "data": secret}));
    let subscribe = alice.send(json!(13), "resources/subscribe", secret.clone()).await;
    assert_eq!(subscribe.error(), &json!({"code": -32002, "message": "Resource not found", "data": secret}));

    let prompt = alice.send(json!(14), "prompts/get", json!({"name": "admin_prompt"})).await;
    assert_eq!(prompt.error(), &json!({"code": -32602, "message": "Unknown prompt: admin_prompt"}));
    let complete =
        json!({"ref": {"type": "ref/prompt", "name": "admin_prompt"}, "argument": {"name": "x", "value": ""}});
    let completion = alice.send(json!(15), "completion/complete", complete).await;
    assert_eq!(completion.error(), &json!({"code": -32602, "message": "Unknown prompt: admin_prompt"}));
    let complete = json!({"ref": {"type": "ref/resource", "uri": "file:///secret/{name}"}, "argument": {"name": "name", "value": "k"}});
    let completion = alice.send(json!(16), "completion/complete", complete).await;
    assert_eq!(completion.error()["code"], -32002);

    // What alice may use still works.
    let readme = alice.send(json!(17), "resources/read", json!({"uri": "file:///public/readme.txt"})).await;
    assert_eq!(readme.result()["contents"][0]["text"], "hello");
    let greeting =
        alice.send(json!(18), "prompts/get", json!({"name": "greeting", "arguments": {"name": "Ada"}})).await;
    assert_eq!(greeting.result()["messages"][0]["content"]["text"], "Hello, Ada!");
}

fn assert_nothing_denied_forwarded(log: &[String]) {
    for entry in [
        "resources/read file:///secret/keys.txt",
        "resources/subscribe file:///secret/keys.txt",
        "prompts/get admin_prompt",
        "tools/call no_such_tool",
    ] {
        assert_eq!(count(log, entry), 0, "{entry} reached the upstream: {log:?}");
    }
    // Positive controls: allowed requests are recorded.
    assert_eq!(count(log, "resources/read file:///public/readme.txt"), 1, "{log:?}");
    assert_eq!(count(log, "prompts/get greeting"), 1, "{log:?}");
}

#[tokio::test]
async fn denied_requests_never_reach_the_upstream() {
    let (alice, admin) = (api_key::generate().unwrap(), api_key::generate().unwrap());
    // Deny wins: nobody, admin included, gets delete_everything.
    let deny_delete = "[[policy.rules]]\nprincipals = [\"*\"]\neffect = \"deny\"\ntools = [\"delete_*\"]\n";
    let config = policy_config(&alice, &admin, deny_delete);

    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    let gw = Gateway::http(&upstream.url, &config).await;
    assert_denials(&Raw::open(&gw.url, Some(&alice)).await).await;
    let ad = Raw::open(&gw.url, Some(&admin)).await;
    let denied = ad.call(20, "delete_everything", json!({"confirm": true})).await;
    assert_eq!(denied.error()["message"], "Unknown tool: delete_everything");
    // A truly unknown tool is forwarded for admin, and the upstream refuses it.
    let unknown = ad.call(21, "no_such_tool_at_all", json!({})).await;
    assert_eq!(unknown.error()["code"], -32602, "{}", unknown.body);
    let weather = ad.call(22, "get_weather", json!({"city": "Paris"})).await;
    assert_eq!(weather.text(), "sunny in Paris");
    let log = upstream.received();
    assert_nothing_denied_forwarded(&log);
    assert_eq!(count(&log, "tools/call delete_everything"), 0, "{log:?}");
    assert_eq!(count(&log, "tools/call no_such_tool_at_all"), 1, "{log:?}");
    gw.shutdown().await;

    // The stdio upstream: one child per session, asked through its `received` tool.
    let gw = Gateway::stdio(&config).await;
    let a = Raw::open(&gw.url, Some(&alice)).await;
    assert_denials(&a).await;
    let log = a.received().await;
    assert_nothing_denied_forwarded(&log);
    assert!(!log.iter().any(|e| e.contains("delete_everything")), "{log:?}");
    gw.shutdown().await;
}

/// SHA-256 (FIPS 180-4), so the pin file is computed independently of the gateway.
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes(word.try_into().unwrap());
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let mut v = h;
        for (k, w) in K.iter().zip(w) {
            let [a, b, c, d, e, f, g, hh] = v;
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let t1 = hh.wrapping_add(s1).wrapping_add((e & f) ^ (!e & g)).wrapping_add(*k).wrapping_add(w);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let t2 = s0.wrapping_add((a & b) ^ (a & c) ^ (b & c));
            v = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
        }
        for (x, y) in h.iter_mut().zip(v) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// A value with every object's keys in sorted order (compact `to_string` is then canonical).
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), canonical(&map[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        scalar => scalar.clone(),
    }
}

/// A tool's definition (the pinned fields) and its `sha256:<hex>` hash, as the pin file documents them.
fn definition_hash(tool: &Map<String, Value>) -> (Value, String) {
    let definition: Map<String, Value> = ["name", "description", "inputSchema", "annotations"]
        .into_iter()
        .filter_map(|k| tool.get(k).map(|v| (k.to_owned(), v.clone())))
        .collect();
    let text = canonical(&Value::Object(definition.clone())).to_string();
    let hex: String = sha256(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    (Value::Object(definition), format!("sha256:{hex}"))
}

fn short(hash: &str) -> &str {
    &hash[.."sha256:".len() + 12]
}

/// The upstream's tools as it sends them, listed through a gateway without policy.
async fn upstream_tools(upstream_url: &str) -> Vec<Map<String, Value>> {
    let gw = Gateway::http(upstream_url, "").await;
    let answer = Raw::open(&gw.url, None).await.send(json!(1), "tools/list", json!({})).await;
    gw.shutdown().await;
    answer.result()["tools"].as_array().unwrap().iter().map(|t| t.as_object().unwrap().clone()).collect()
}

fn tool_named<'a>(tools: &'a [Map<String, Value>], name: &str) -> &'a Map<String, Value> {
    tools.iter().find(|t| t["name"] == name).unwrap()
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    std::env::temp_dir().join(format!("mcp-guard-e2e-{}-{nanos}-{name}", std::process::id()))
}

#[tokio::test]
async fn a_rug_pull_is_caught_by_the_pin_file() {
    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    let tools = upstream_tools(&upstream.url).await;
    assert_eq!(tool_named(&tools, "get_weather")["description"], GET_WEATHER_DESCRIPTION);
    // Every tool pinned except `whoami`.
    let pins: Map<String, Value> = tools
        .iter()
        .filter(|t| t["name"] != "whoami")
        .map(|t| {
            let (definition, sha256) = definition_hash(t);
            (t["name"].as_str().unwrap().to_owned(), json!({"sha256": sha256, "definition": definition}))
        })
        .collect();
    let pinned = pins["get_weather"]["sha256"].as_str().unwrap().to_owned();
    let path = temp_path("pins.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json!({"version": 1, "tools": pins})).unwrap()).unwrap();
    // `action` defaults to block with a pin file.
    let gw = Gateway::http(&upstream.url, &format!("[pins]\nfile = {:?}\n", path.to_str().unwrap())).await;
    std::fs::remove_file(&path).unwrap();

    let s = Raw::open(&gw.url, None).await;
    let listed = s.send(json!(2), "tools/list", json!({})).await.names("tools", "name");
    assert!(listed.contains(&"get_weather".to_owned()) && listed.contains(&"rug_pull".to_owned()), "{listed:?}");
    assert!(!listed.contains(&"whoami".to_owned()), "an unpinned tool is hidden: {listed:?}");
    let unpinned = s.call(3, "whoami", json!({})).await;
    assert_eq!(unpinned.error()["code"], -32000);
    assert_eq!(unpinned.error()["data"]["reason"], "tool_not_pinned");
    assert_eq!(s.call(4, "get_weather", json!({"city": "Oslo"})).await.text(), "sunny in Oslo");

    assert_eq!(s.call(5, "rug_pull", json!({})).await.text(), "rug pulled");
    let listed = s.send(json!(6), "tools/list", json!({})).await;
    let names = listed.names("tools", "name");
    assert!(!names.contains(&"get_weather".to_owned()), "the changed tool is hidden: {names:?}");
    assert!(names.contains(&"echo".to_owned()), "{names:?}");
    assert!(!listed.body.contains("id_rsa"), "{}", listed.body);

    let now = upstream_tools(&upstream.url).await;
    assert_eq!(tool_named(&now, "get_weather")["description"], RUG_PULLED_DESCRIPTION);
    let (_, changed) = definition_hash(tool_named(&now, "get_weather"));
    let before = count(&upstream.received(), "tools/call get_weather");
    let blocked = s.call(7, "get_weather", json!({"city": "Oslo"})).await;
    let error = blocked.error();
    assert_eq!(error["code"], -32000);
    assert_eq!(error["data"]["reason"], "tool_definition_changed");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("definition changed"), "{message}");
    assert!(message.contains(short(&pinned)) && message.contains(short(&changed)), "{message} {pinned} {changed}");
    assert_eq!(count(&upstream.received(), "tools/call get_weather"), before, "the blocked call was not forwarded");
    gw.shutdown().await;
}

#[tokio::test]
async fn learned_pins_block_or_warn() {
    for (action, blocked) in [("block", true), ("warn", false)] {
        let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
        let gw = Gateway::http(&upstream.url, &format!("[pins]\naction = \"{action}\"\n")).await;
        let s = Raw::open(&gw.url, None).await;
        let first = s.send(json!(1), "tools/list", json!({})).await;
        assert!(first.names("tools", "name").contains(&"get_weather".to_owned()), "{action}");
        assert_eq!(s.call(2, "rug_pull", json!({})).await.text(), "rug pulled");
        let second = s.send(json!(3), "tools/list", json!({})).await;
        let call = s.call(4, "get_weather", json!({"city": "Rome"})).await;
        if blocked {
            assert!(!second.names("tools", "name").contains(&"get_weather".to_owned()), "{}", second.body);
            assert_eq!(call.error()["data"]["reason"], "tool_definition_changed");
        } else {
            let tools = second.result()["tools"].as_array().unwrap();
            let weather = tools.iter().find(|t| t["name"] == "get_weather").expect("still listed under warn");
            assert_eq!(weather["description"], RUG_PULLED_DESCRIPTION);
            assert_eq!(call.text(), "sunny in Rome");
        }
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn invalid_arguments_are_refused_with_pointers() {
    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    let gw = Gateway::http(
        &upstream.url,
        "[tools.\"*\"]\nvalidation = \"enforce\"\n[tools.add]\nmax_argument_size = \"64\"\n",
    )
    .await;
    let s = Raw::open(&gw.url, None).await;
    // The gateway knows a tool's inputSchema from a tools/list it has seen.
    assert!(s.send(json!(1), "tools/list", json!({})).await.names("tools", "name").contains(&"add".to_owned()));

    let invalid = s.call(2, "add", json!({"a": "hunter2"})).await;
    let error = invalid.error();
    assert_eq!(error["code"], -32602);
    assert_eq!(error["data"]["reason"], "invalid_arguments");
    let violations = error["data"]["violations"].as_array().unwrap();
    let at = |pointer: &str| violations.iter().find(|v| v["pointer"] == pointer).map(|v| v["message"].clone());
    assert!(at("/a").is_some(), "{violations:?}");
    let missing = at("").unwrap_or_else(|| panic!("no violation for the missing `b`: {violations:?}"));
    assert!(missing.as_str().unwrap().contains('b'), "{missing}");
    assert!(!invalid.body.contains("hunter2"), "values are masked: {}", invalid.body);

    let pad = "x".repeat(64);
    let large = s.call(3, "add", json!({"a": 1, "b": 2, "pad": pad})).await;
    assert_eq!(large.error()["code"], -32602);
    assert_eq!(large.error()["data"]["reason"], "arguments_too_large");

    let absent = s.send(json!(5), "tools/call", json!({"name": "add"})).await;
    assert_eq!(absent.error()["data"]["violations"][0]["pointer"], "", "absent arguments are checked as {{}}");
    assert_eq!(s.call(4, "add", json!({"a": 2, "b": 3})).await.text(), "5");
    assert_eq!(count(&upstream.received(), "tools/call add"), 1, "only the valid call: {:?}", upstream.received());
    gw.shutdown().await;

    // `validation = "log"` forwards the invalid call; the upstream judges it.
    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    let gw = Gateway::http(&upstream.url, "[tools.add]\nvalidation = \"log\"\n").await;
    let s = Raw::open(&gw.url, None).await;
    s.send(json!(1), "tools/list", json!({})).await;
    let forwarded = s.call(2, "add", json!({"a": "x"})).await;
    assert_ne!(forwarded.message["error"]["data"]["reason"], "invalid_arguments", "{}", forwarded.body);
    assert_eq!(count(&upstream.received(), "tools/call add"), 1, "{:?}", upstream.received());
    gw.shutdown().await;
}

fn load(toml: &str) -> Result<mcp_guard::config::Config, String> {
    load_from_str(toml, "test.toml", std::iter::empty(), &Overrides::default()).map_err(|e| e.to_string())
}

#[test]
fn policy_config_errors_name_the_key() {
    let rule = |body: &str| format!("[[policy.rules]]\nprincipals = [\"*\"]\n{body}\n");
    let allow = "effect = \"allow\"\ntools = [\"get_*\"]";
    let deny = "[policy]\ndefault = \"deny\"\n";
    let bad_pins = temp_path("bad-pins.json");
    std::fs::write(&bad_pins, r#"{"version": 2, "tools": {}}"#).unwrap();
    let cases = [
        (rule(allow), "policy.default"),
        (format!("[policy]\ndefault = \"maybe\"\n{}", rule(allow)), "policy.default"),
        (format!("{deny}[[policy.rules]]\nprincipals = [\"group:nobody\"]\n{allow}\n"), "policy.rules[0].principals"),
        (format!("{deny}{}", rule("effect = \"allow\"\ntools = [\"[z-a\"]")), "policy.rules[0].tools[0]"),
        (format!("{deny}{}", rule("effect = \"permit\"\ntools = [\"x\"]")), "policy.rules[0].effect"),
        ("[pins]\naction = \"panic\"\n".to_owned(), "pins.action"),
        ("[pins]\nfile = \"/nonexistent/mcp-guard/pins.json\"\n".to_owned(), "pins.file"),
        (format!("[pins]\nfile = {:?}\n", bad_pins.to_str().unwrap()), "pins.file"),
        ("[tools.add]\nvalidation = \"strict\"\n".to_owned(), "tools.\"add\".validation"),
        ("[tools.add]\nmax_argument_size = \"lots\"\n".to_owned(), "tools.\"add\".max_argument_size"),
        ("[tools.\"*\"]\nvalidation = \"maybe\"\n".to_owned(), "tools.\"*\".validation"),
    ];
    for (toml, key) in &cases {
        let message = load(toml).map(|_| ()).expect_err(toml);
        assert!(message.contains(key), "{key:?} not in {message:?} for:\n{toml}");
    }
    std::fs::remove_file(&bad_pins).unwrap();

    // The same sections, valid, load.
    let ok = format!(
        "{deny}[policy.groups]\nreaders = [\"alice\"]\n{}[pins]\naction = \"off\"\n[tools.add]\nvalidation = \"log\"\nmax_argument_size = \"1KiB\"\n",
        rule("effect = \"allow\"\ntools = [\"get_*\"]\nresources = [\"file:///public/*\"]\nprompts = [\"greeting\"]")
    );
    let config = load(&ok).expect("valid policy config");
    assert!(config.policy.access.is_some());
}

/// A raw request body through `raw`'s session; the answer's text within 3 s (`None`: no answer).
async fn send_text(raw: &Raw, body: &str) -> Option<String> {
    let res = post_as(&raw.url, raw.token.as_deref(), Some(&raw.session), body).await;
    tokio::time::timeout(std::time::Duration::from_secs(3), res.text()).await.ok().map(Result::unwrap)
}

/// Bug: the list filter matches the upstream's answer by the *re-serialized*
/// id (`filter.rs`, `rewrite_message`) against the request's id *text*
/// (`access.rs`, `Targets::Ids`); an upstream echoes `"\u0061"` as `"a"` and
/// `-0` as `0`, so the answer is not filtered at all.
#[tokio::test]
async fn list_filtering_is_not_bypassed_by_the_id_spelling() {
    let (alice, admin) = (api_key::generate().unwrap(), api_key::generate().unwrap());
    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    let gw = Gateway::http(&upstream.url, &policy_config(&alice, &admin, "")).await;
    let a = Raw::open(&gw.url, Some(&alice)).await;
    for (id, echoed) in [(r#""\u0061""#, json!("a")), ("-0", json!(0)), (r#""a\/b""#, json!("a/b"))] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list","params":{{}}}}"#);
        let text = send_text(&a, &body).await.expect("answered");
        let message = answer_with_id(&text, &echoed).unwrap_or_else(|| panic!("{text}"));
        let answer = Answer { status: 200, content_type: String::new(), body: text, message };
        assert_eq!(answer.names("tools", "name"), ["get_weather", "received"], "id {id}");
    }
    gw.shutdown().await;
}

/// Bug (not policy): the stdio upstream routes the child's response by the
/// id's exact text (`upstream/stdio/child.rs`, `route_response`); the child
/// re-serializes it, so the response is dropped as unsolicited and the
/// client waits until the request timeout.
#[tokio::test]
async fn stdio_answers_requests_with_escaped_ids() {
    let gw = Gateway::stdio("").await;
    let s = Raw::open(&gw.url, None).await;
    let text = send_text(&s, r#"{"jsonrpc":"2.0","id":"\u0061","method":"ping"}"#).await;
    assert!(text.is_some_and(|t| answer_with_id(&t, &json!("a")).is_some()), "no answer within 3 s");
    gw.shutdown().await;
}

/// Bug: `completion/complete` is refused only when the gateway's own parse of
/// `params.ref` succeeds (`access.rs`, `completion_target`: `.ok()?`); a ref
/// with an extra field of an unexpected type (ignored by rmcp and most
/// servers) is forwarded, completing a denied prompt's arguments.
#[tokio::test]
async fn completion_refs_the_gateway_cannot_parse_are_not_forwarded() {
    let (alice, admin) = (api_key::generate().unwrap(), api_key::generate().unwrap());
    let upstream = mcp_guard_testkit::spawn_http().await.unwrap();
    let gw = Gateway::http(&upstream.url, &policy_config(&alice, &admin, "")).await;
    let a = Raw::open(&gw.url, Some(&alice)).await;
    let refs = [
        json!({"type": "ref/prompt", "name": "admin_prompt", "uri": 5}),
        json!({"type": "ref/resource", "uri": "file:///secret/{name}", "name": 5}),
    ];
    for (id, reference) in refs.into_iter().enumerate() {
        let params = json!({"ref": reference, "argument": {"name": "name", "value": ""}});
        let answer = a.send(json!(id), "completion/complete", params).await;
        let code = &answer.message["error"]["code"];
        assert!(*code == -32602 || *code == -32002, "forwarded, the upstream answered: {}", answer.body);
    }
    gw.shutdown().await;
}
