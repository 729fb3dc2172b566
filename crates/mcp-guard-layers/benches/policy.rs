//! The per-message cost of MCP-aware policy: `cargo bench -p mcp-guard-layers --bench policy`.
//!
//! - `call_*`: a `tools/call` through the access policy (5 rules) and the
//!   tool-call guard (pin check + `inputSchema` validation), against
//!   `call_baseline` (the same request to the same service with no layer).
//! - `list_*`: a 20-tool `tools/list` JSON answer read whole, passed
//!   through (`list_baseline`) or filtered for a caller who may see half
//!   of it (`list_filtered`), which includes checking every tool's pin.
//! - `*_only`: the decision or validation alone, without a service.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{collections::HashMap, convert::Infallible, sync::Arc};

use bytes::Bytes;
use divan::Bencher;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use mcp_guard_layers::{
    identity::{AuthMethod, Principal},
    jsonrpc::{Limits, inspect},
    policy::{
        AccessPolicyLayer, ToolCallLayer,
        catalog::{CatalogConfig, ToolCatalog},
        rules::{AccessPolicy, Effect, Kind, RuleSpec},
        schema::ArgumentSchema,
    },
};
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceExt, service_fn};

const CALL: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Lisbon","units":"metric"},"_meta":{"progressToken":"p-42"}}}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/list"}"#;

fn main() {
    divan::main();
}

fn schema() -> Value {
    json!({"type":"object","properties":{"city":{"type":"string","minLength":1},"units":{"type":"string","enum":["metric","imperial"]}},"required":["city"],"additionalProperties":false})
}

/// 20 tools: `get_0`…`get_9` and `delete_0`…`delete_9`, each with a schema.
fn tools_answer() -> Bytes {
    let tools: Vec<Value> = (0..10)
        .flat_map(|i| {
            [format!("get_{i}"), format!("delete_{i}")].map(|name| {
                json!({"name": name, "description": format!("Does {name} for the caller, carefully."), "inputSchema": schema(),
                       "annotations": {"readOnlyHint": name.starts_with("get")}})
            })
        })
        .chain([json!({"name":"get_weather","description":"Weather","inputSchema":schema()})])
        .collect();
    Bytes::from(json!({"jsonrpc":"2.0","id":42,"result":{"tools":tools,"nextCursor":"c2"}}).to_string())
}

fn access_policy() -> AccessPolicy {
    let v = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let rule = |who: &[&str], effect, tools: &[&str]| RuleSpec {
        principals: v(who),
        effect,
        tools: v(tools),
        resources: v(&["file:///public/*"]),
        prompts: vec![],
    };
    let groups = HashMap::from([("readers".to_owned(), v(&["alice", "bob", "carol"]))]);
    let rules = [
        rule(&["group:readers"], Effect::Allow, &["get_*", "search_*", "list_*"]),
        rule(&["admin"], Effect::Allow, &["*"]),
        rule(&["*"], Effect::Deny, &["*_secret", "drop_*"]),
        rule(&["bob"], Effect::Deny, &["get_payroll"]),
        rule(&["carol"], Effect::Allow, &["write_notes"]),
    ];
    AccessPolicy::compile(Effect::Deny, &groups, &rules).unwrap()
}

fn request(body: &'static str) -> Request<Full<Bytes>> {
    let mut req = Request::post("/mcp").body(Full::new(Bytes::from_static(body.as_bytes()))).unwrap();
    let mut inspection = inspect(body.as_bytes(), Limits::default()).unwrap();
    inspection.body = Bytes::from_static(body.as_bytes());
    req.extensions_mut().insert(inspection);
    req.extensions_mut().insert(Principal {
        subject: "alice".into(),
        scopes: Arc::new([]),
        method: AuthMethod::Bearer,
    });
    req
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

async fn answer_call<B>(_req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(br#"{"jsonrpc":"2.0","id":42,"result":{}}"#))))
}

/// A catalog that has seen the tools list.
fn catalog() -> ToolCatalog {
    let catalog = ToolCatalog::new(CatalogConfig::default());
    let answer: Value = serde_json::from_slice(&tools_answer()).unwrap();
    let tools: Vec<_> =
        answer["result"]["tools"].as_array().unwrap().iter().filter_map(|t| t.as_object().cloned()).collect();
    catalog.observe(&tools);
    catalog
}

fn run_call<S>(bencher: Bencher, svc: S)
where
    S: Service<Request<Full<Bytes>>, Error = Infallible> + Clone,
{
    let rt = runtime();
    bencher.bench_local(|| rt.block_on(svc.clone().oneshot(request(CALL))).unwrap());
}

#[divan::bench]
fn call_baseline(bencher: Bencher) {
    run_call(bencher, service_fn(answer_call));
}

#[divan::bench]
fn call_access_policy(bencher: Bencher) {
    run_call(bencher, AccessPolicyLayer::new(Some(access_policy()), Some(catalog())).layer(service_fn(answer_call)));
}

#[divan::bench]
fn call_tool_guard(bencher: Bencher) {
    run_call(bencher, ToolCallLayer::new(catalog()).layer(service_fn(answer_call)));
}

#[divan::bench]
fn call_both(bencher: Bencher) {
    let catalog = catalog();
    let svc = AccessPolicyLayer::new(Some(access_policy()), Some(catalog.clone()))
        .layer(ToolCallLayer::new(catalog).layer(service_fn(answer_call)));
    run_call(bencher, svc);
}

fn run_list<S, B>(bencher: Bencher, svc: S)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let rt = runtime();
    bencher.bench_local(|| {
        rt.block_on(async {
            let res = svc.clone().oneshot(request(LIST)).await.unwrap();
            res.into_body().collect().await.unwrap().to_bytes()
        })
    });
}

fn list_upstream()
-> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone {
    let answer = tools_answer();
    service_fn(move |_req: Request<Full<Bytes>>| {
        let mut res = Response::new(Full::new(answer.clone()));
        res.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        async move { Ok(res) }
    })
}

#[divan::bench]
fn list_baseline(bencher: Bencher) {
    run_list(bencher, list_upstream());
}

#[divan::bench]
fn list_filtered(bencher: Bencher) {
    run_list(bencher, AccessPolicyLayer::new(Some(access_policy()), Some(catalog())).layer(list_upstream()));
}

#[divan::bench]
fn decision_only(bencher: Bencher) {
    let policy = access_policy();
    let alice = Principal { subject: "alice".into(), scopes: Arc::new([]), method: AuthMethod::Bearer };
    bencher.bench_local(|| policy.allows(Some(&alice), Kind::Tool, divan::black_box("get_weather")));
}

#[divan::bench]
fn validation_only(bencher: Bencher) {
    let schema = ArgumentSchema::compile(&schema()).unwrap();
    let args: Value = json!({"city":"Lisbon","units":"metric"});
    bencher.bench_local(|| schema.violations(divan::black_box(&args)));
}

#[divan::bench]
fn list_parse_only(bencher: Bencher) {
    let answer = tools_answer();
    bencher.bench_local(|| serde_json::from_slice::<Value>(divan::black_box(&answer)).unwrap());
}

#[divan::bench]
fn list_pin_check_only(bencher: Bencher) {
    let catalog = catalog();
    let answer: Value = serde_json::from_slice(&tools_answer()).unwrap();
    let tools: Vec<_> =
        answer["result"]["tools"].as_array().unwrap().iter().filter_map(|t| t.as_object().cloned()).collect();
    bencher.bench_local(|| catalog.observe(divan::black_box(&tools)));
}
