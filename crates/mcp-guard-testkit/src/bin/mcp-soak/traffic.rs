//! The load: whole MCP sessions (valid traffic, every answer checked) and
//! single requests the gateway must refuse with a given status and stable
//! reason (hostile traffic).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    http::{Body, Client, Request, Response},
    stats::{Class, Stats},
};

/// The protocol revision asked for in `initialize`.
const VERSION: &str = "2025-11-25";
const JSON: (&str, &str) = ("content-type", "application/json");
const ACCEPT: (&str, &str) = ("accept", "application/json, text/event-stream");
const LIST: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
/// Sessionless hostile requests, taken in turn.
const HOSTILE: [Class; 9] = [
    Class::ForeignOrigin,
    Class::BadHost,
    Class::OversizedDeclared,
    Class::OversizedChunked,
    Class::InvalidJson,
    Class::InvalidJsonRpc,
    Class::TooDeep,
    Class::UnknownSession,
    Class::BadVersion,
];

/// Valid requests in an average session (see [`session`]): initialize,
/// initialized, echo ×2, add, tools/list, resources/list, DELETE, and a
/// progress call in one session out of four.
pub(crate) const VALID_PER_SESSION: f64 = 8.25;
/// Hostile requests inside an average session: a denied tool call and a
/// reuse of the deleted session, each in one session out of five.
pub(crate) const HOSTILE_PER_SESSION: f64 = 0.4;

/// The gateway under load and what it is expected to refuse.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) client: Client,
    /// The real authority, for the `Host` header.
    pub(crate) host: String,
    /// An origin the gateway allows; some sessions send it.
    pub(crate) origin: Option<String>,
    /// A tool the gateway's policy denies.
    pub(crate) denied_tool: String,
    pub(crate) timeout: Duration,
    /// Pause before each request after initialize, as a client between
    /// its model's turns: sessions overlap, so the gateway holds many open.
    pub(crate) think: Duration,
    /// The gateway's body limit.
    pub(crate) max_body: usize,
    /// Whether sessions carry their hostile requests too.
    pub(crate) in_session_hostile: bool,
    pub(crate) stats: Stats,
    /// Built once: the chunked oversize body and the deeply nested one.
    oversize: Vec<u8>,
    deep: Vec<u8>,
}

impl Target {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        client: Client,
        host: String,
        origin: Option<String>,
        denied_tool: String,
        timeout: Duration,
        think: Duration,
        max_body: usize,
        in_session_hostile: bool,
    ) -> Self {
        let depth = 200;
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{}1{}}}}}"#,
            r#"{"a":"#.repeat(depth),
            "}".repeat(depth)
        );
        Target {
            client,
            host,
            origin,
            denied_tool,
            timeout,
            think,
            max_body,
            in_session_hostile,
            stats: Stats::new(),
            oversize: vec![b' '; max_body + (64 << 10)],
            deep: deep.into_bytes(),
        }
    }

    /// One exchange, bounded by the timeout; every failure is a message.
    async fn send(&self, req: &Request<'_>) -> Result<(Response, Duration), String> {
        let start = Instant::now();
        match tokio::time::timeout(self.timeout, self.client.send(req)).await {
            Ok(Ok(response)) => Ok((response, start.elapsed())),
            Ok(Err(e)) => Err(format!("transport error: {e:#}")),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    fn post<'a>(&'a self, headers: &'a [(&'static str, &'a str)], body: Body<'a>) -> Request<'a> {
        Request { method: "POST", host: &self.host, headers, body }
    }
}

/// An open session: its id, negotiated version and the next request id.
#[derive(Debug)]
struct Session {
    id: String,
    version: String,
    origin: bool,
    next: u64,
}

impl Session {
    fn headers<'a>(&'a self, t: &'a Target) -> Vec<(&'static str, &'a str)> {
        let mut h = vec![JSON, ACCEPT, ("mcp-session-id", self.id.as_str()), ("mcp-protocol-version", &self.version)];
        if let (true, Some(o)) = (self.origin, &t.origin) {
            h.push(("origin", o));
        }
        h
    }

    /// Sends a request in the session; its JSON-RPC answer, every message
    /// of the response, and the time it took.
    async fn request(
        &mut self,
        t: &Target,
        method: &str,
        params: Value,
    ) -> Result<(Value, Vec<Value>, Duration), String> {
        let id = self.next;
        self.next += 1;
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }).to_string();
        let headers = self.headers(t);
        let (response, took) = t.send(&t.post(&headers, Body::Bytes(body.as_bytes()))).await?;
        let (answer, all) = answer(&response, id)?;
        Ok((answer, all, took))
    }

    /// A valid request: counted, and `check`ed on its `result`.
    async fn step(
        &mut self,
        t: &Target,
        class: Class,
        method: &str,
        params: Value,
        check: impl FnOnce(&Value, &[Value]) -> Result<(), String>,
    ) -> bool {
        tokio::time::sleep(t.think).await;
        let outcome = match self.request(t, method, params).await {
            Ok((answer, all, took)) => match answer.get("result") {
                Some(result) => check(result, &all).map(|()| took),
                None => Err(format!("JSON-RPC error {}", answer["error"])),
            },
            Err(e) => Err(e),
        };
        let ok = outcome.is_ok();
        // The progress call's time is mostly the tool's own delays.
        let latency = outcome_latency(&outcome, class != Class::Progress);
        t.stats.record(class, outcome.map(|_| ()), latency);
        ok
    }
}

fn outcome_latency(outcome: &Result<Duration, String>, timed: bool) -> Option<Duration> {
    outcome.as_ref().ok().copied().filter(|_| timed)
}

/// The message answering `id` (with all the response carried: progress
/// notifications come first on the same stream).
fn answer(response: &Response, id: u64) -> Result<(Value, Vec<Value>), String> {
    if response.status != 200 {
        return Err(format!("HTTP {}: {}", response.status, snippet(&response.body)));
    }
    let all = response.messages().map_err(|e| format!("{e:#}: {}", snippet(&response.body)))?;
    let answer = all
        .iter()
        .find(|m| m["id"].as_u64() == Some(id) && (m.get("result").is_some() || m.get("error").is_some()))
        .cloned()
        .ok_or_else(|| format!("no answer to request {id} in {}", snippet(&response.body)))?;
    Ok((answer, all))
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

fn text_of(result: &Value) -> Option<&str> {
    result["content"][0]["text"].as_str()
}

fn expect_text(result: &Value, want: &str) -> Result<(), String> {
    match text_of(result) {
        Some(got) if got == want && result["isError"] != json!(true) => Ok(()),
        _ => Err(format!("expected text {want:?}, got {result}")),
    }
}

/// A whole session: open, use, close; then, in some, hostile use of it.
pub(crate) async fn session(t: Arc<Target>, k: u64) {
    let Some(mut s) = open(&t, k).await else { return };
    use_session(&t, &mut s, k).await;
    // Closed even after a failed step: a failure must not leave state behind.
    tokio::time::sleep(t.think).await;
    let headers = s.headers(&t);
    let outcome = match t.send(&Request { method: "DELETE", host: &t.host, headers: &headers, body: Body::Empty }).await
    {
        Ok((r, took)) if (200..300).contains(&r.status) => Ok(took),
        Ok((r, _)) => Err(format!("HTTP {}: {}", r.status, snippet(&r.body))),
        Err(e) => Err(e),
    };
    let deleted = outcome.is_ok();
    let latency = outcome_latency(&outcome, true);
    t.stats.record(Class::Delete, outcome.map(|_| ()), latency);
    if deleted && t.in_session_hostile && k % 5 == 2 {
        let headers = s.headers(&t);
        let outcome = refused(&t, &t.post(&headers, Body::Bytes(LIST)), 404, "session_not_found").await;
        t.stats.record(Class::DeletedSession, outcome, None);
    }
}

async fn open(t: &Target, k: u64) -> Option<Session> {
    let body = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": { "protocolVersion": VERSION, "capabilities": {}, "clientInfo": { "name": "mcp-soak", "version": "1" } }
    })
    .to_string();
    // Some sessions come from a browser on an allowed origin; some state
    // their version on initialize too (checked against the body).
    let origin = k.is_multiple_of(3) && t.origin.is_some();
    let mut headers = vec![JSON, ACCEPT];
    if let (true, Some(o)) = (origin, &t.origin) {
        headers.push(("origin", o));
    }
    if k.is_multiple_of(2) {
        headers.push(("mcp-protocol-version", VERSION));
    }
    let opened = t.send(&t.post(&headers, Body::Bytes(body.as_bytes()))).await.and_then(|(r, took)| {
        let (answer, _) = answer(&r, 0)?;
        let version = answer["result"]["protocolVersion"].as_str().ok_or(format!("no protocolVersion in {answer}"))?;
        let id = r.header("mcp-session-id").ok_or("no Mcp-Session-Id")?;
        Ok((Session { id: id.to_owned(), version: version.to_owned(), origin, next: 1 }, took))
    });
    let (session, took) = match opened {
        Ok(o) => o,
        Err(e) => {
            t.stats.record(Class::Initialize, Err(e), None);
            return None;
        }
    };
    t.stats.record(Class::Initialize, Ok(()), Some(took));
    let headers = session.headers(t);
    let note = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let outcome = match t.send(&t.post(&headers, Body::Bytes(note))).await {
        Ok((r, took)) if r.status == 202 => Ok(took),
        Ok((r, _)) => Err(format!("expected 202, got HTTP {}: {}", r.status, snippet(&r.body))),
        Err(e) => Err(e),
    };
    t.stats.record(Class::Initialized, outcome.as_ref().map(|_| ()).map_err(Clone::clone), outcome.ok());
    Some(session)
}

/// The session's requests, stopping at the first failure.
async fn use_session(t: &Target, s: &mut Session, k: u64) {
    let text = format!("soak {k}");
    let echo = json!({ "name": "echo", "arguments": { "text": text } });
    if !s.step(t, Class::Echo, "tools/call", echo.clone(), |r, _| expect_text(r, &text)).await {
        return;
    }
    let (a, b) = ((k % 1000) as i64, 7);
    let add = json!({ "name": "add", "arguments": { "a": a, "b": b } });
    if !s.step(t, Class::Add, "tools/call", add, |r, _| expect_text(r, &(a + b).to_string())).await {
        return;
    }
    let listed = |r: &Value, _: &[Value]| {
        let tools = r["tools"].as_array().ok_or("no tools array")?;
        let has = |name: &str| tools.iter().any(|tool| tool["name"] == name);
        match (has("echo"), has(&t.denied_tool)) {
            (true, false) => Ok(()),
            (echo, denied) => Err(format!("echo listed: {echo}, denied tool listed: {denied}")),
        }
    };
    if !s.step(t, Class::ToolsList, "tools/list", json!({}), listed).await {
        return;
    }
    let resources = |r: &Value, _: &[Value]| match r["resources"].as_array() {
        Some(list) if !list.is_empty() => Ok(()),
        _ => Err(format!("no resources in {r}")),
    };
    if !s.step(t, Class::ResourcesList, "resources/list", json!({}), resources).await {
        return;
    }
    if k % 4 == 1 && !progress(t, s, k).await {
        return;
    }
    if t.in_session_hostile && k.is_multiple_of(5) {
        denied_tool(t, s).await;
    }
    s.step(t, Class::Echo, "tools/call", echo, |r, _| expect_text(r, &text)).await;
}

/// A tool call answered on an event stream after three progress events.
async fn progress(t: &Target, s: &mut Session, k: u64) -> bool {
    let token = format!("soak-{k}");
    let params =
        json!({ "name": "progress", "arguments": { "steps": 3, "delay_ms": 2 }, "_meta": { "progressToken": token } });
    s.step(t, Class::Progress, "tools/call", params, |r, all| {
        let events = all
            .iter()
            .filter(|m| m["method"] == "notifications/progress" && m["params"]["progressToken"] == token.as_str())
            .count();
        if events != 3 {
            return Err(format!("{events} progress notifications, expected 3"));
        }
        expect_text(r, "done after 3 steps")
    })
    .await
}

/// A denied tool is answered as an unknown one: HTTP 200, JSON-RPC -32602,
/// and no reason that would tell it apart.
async fn denied_tool(t: &Target, s: &mut Session) {
    tokio::time::sleep(t.think).await;
    let params = json!({ "name": t.denied_tool, "arguments": { "confirm": true } });
    let outcome = s.request(t, "tools/call", params).await.and_then(|(answer, _, _)| {
        let error = &answer["error"];
        if error["code"] == -32602 && error["data"].get("reason").is_none() {
            Ok(())
        } else {
            Err(format!("expected JSON-RPC -32602 without a reason, got {answer}"))
        }
    });
    t.stats.record(Class::DeniedTool, outcome, None);
}

/// One sessionless hostile request, of the kind `k` picks.
pub(crate) async fn hostile(t: Arc<Target>, k: u64) {
    let class = HOSTILE[(k % HOSTILE.len() as u64) as usize];
    let init = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}"#;
    let plain = [JSON, ACCEPT];
    let session_id = format!("{:016x}{:016x}", mix(k), mix(!k));
    let outcome = match class {
        Class::ForeignOrigin => {
            let h = [JSON, ACCEPT, ("origin", "http://evil.example")];
            refused(&t, &t.post(&h, Body::Bytes(init)), 403, "origin_not_allowed").await
        }
        Class::BadHost => {
            let req = Request { method: "POST", host: "evil.example", headers: &plain, body: Body::Bytes(init) };
            refused(&t, &req, 403, "host_not_allowed").await
        }
        Class::OversizedDeclared => {
            refused(&t, &t.post(&plain, Body::DeclaredOnly(t.max_body + 1)), 413, "request_too_large").await
        }
        Class::OversizedChunked => {
            refused(&t, &t.post(&plain, Body::Chunked(&t.oversize)), 413, "request_too_large").await
        }
        Class::InvalidJson => {
            let body = br#"{"jsonrpc":"2.0","id":1,"method":"#;
            refused(&t, &t.post(&plain, Body::Bytes(body)), 400, "parse_error").await
        }
        Class::InvalidJsonRpc => {
            let body = br#"{"jsonrpc":"1.0","id":1,"method":"tools/list"}"#;
            refused(&t, &t.post(&plain, Body::Bytes(body)), 400, "invalid_jsonrpc").await
        }
        Class::TooDeep => refused(&t, &t.post(&plain, Body::Bytes(&t.deep)), 400, "nesting_too_deep").await,
        Class::UnknownSession => {
            let h = [JSON, ACCEPT, ("mcp-session-id", session_id.as_str()), ("mcp-protocol-version", VERSION)];
            refused(&t, &t.post(&h, Body::Bytes(LIST)), 404, "session_not_found").await
        }
        _ => {
            let h = [JSON, ACCEPT, ("mcp-protocol-version", "1999-01-01")];
            refused(&t, &t.post(&h, Body::Bytes(LIST)), 400, "unsupported_protocol_version").await
        }
    };
    t.stats.record(class, outcome, None);
}

/// Whether the answer is the refusal expected: this status and this
/// `error.data.reason` in a JSON-RPC error body.
async fn refused(t: &Target, req: &Request<'_>, status: u16, reason: &str) -> Result<(), String> {
    let (r, _) = t.send(req).await?;
    let got: Option<Value> = serde_json::from_slice(&r.body).ok();
    let got_reason = got.as_ref().and_then(|v| v["error"]["data"]["reason"].as_str());
    if r.status == status && got_reason == Some(reason) {
        Ok(())
    } else {
        Err(format!("expected {status} {reason}, got HTTP {}: {}", r.status, snippet(&r.body)))
    }
}

/// SplitMix64: distinct, unguessable-looking session ids without a RNG.
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
