//! A hostile MCP server on stdio, for testing how the gateway contains one.
//!
//! It speaks just enough MCP to get through `initialize`, then misbehaves
//! on request, one tool per misdeed:
//!
//! | tool | what it does |
//! |---|---|
//! | `echo {text}` | answers properly (the well-behaved control) |
//! | `pid` | answers its process id |
//! | `never` | never answers |
//! | `garbage {lines}` | writes `lines` lines that are not JSON-RPC, then answers |
//! | `flood {count}` | writes `count` log notifications as fast as it can, then answers |
//! | `flood_forever` | writes log notifications until stdout breaks; never answers |
//! | `wrong_id` | answers ids nobody asked for, then the right one |
//! | `huge {bytes}` | answers with one line of about `bytes` bytes |
//! | `chatty {count, size}` | `count` notifications of `size` bytes, then answers |
//! | `sample {wait_ms}` | asks the client for a sampling/createMessage, answers with what came back |
//! | `ask_roots {count, wait_ms}` | asks `count` roots/list at once, answers with the answers received |
//! | `spawn_sleeper` | starts `sleep 1000` (sharing its stdout), answers its pid |
//! | `received` | answers every message it has received, as a JSON array |
//!
//! Plain threads and serde_json, no MCP SDK: a real SDK would refuse to
//! misbehave.

use std::{
    collections::HashMap,
    io::{BufRead, Write},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use serde_json::{Value, json};

#[derive(Default)]
struct Server {
    /// Every message received, in order.
    received: Mutex<Vec<Value>>,
    /// Answers awaited for requests this server sent, by id.
    waiting: Mutex<HashMap<String, mpsc::Sender<Value>>>,
    out: Mutex<()>,
}

impl Server {
    fn write_raw(&self, bytes: &[u8]) -> std::io::Result<()> {
        let _turn = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(bytes)?;
        stdout.write_all(b"\n")?;
        stdout.flush()
    }

    fn write(&self, message: &Value) -> std::io::Result<()> {
        self.write_raw(message.to_string().as_bytes())
    }

    fn answer(&self, id: &Value, result: Value) {
        let _ = self.write(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
    }

    fn text(&self, id: &Value, text: impl Into<String>) {
        self.answer(id, json!({"content": [{"type": "text", "text": text.into()}]}));
    }

    /// Sends requests to the client and waits up to `wait` for their answers.
    fn ask(&self, requests: Vec<Value>, wait: Duration) -> Vec<Value> {
        let (tx, rx) = mpsc::channel();
        for request in &requests {
            let key = request["id"].to_string();
            self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, tx.clone());
        }
        drop(tx);
        for request in &requests {
            let _ = self.write(request);
        }
        let deadline = std::time::Instant::now() + wait;
        let mut answers = Vec::new();
        while answers.len() < requests.len() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(answer) => answers.push(answer),
                Err(_) => break,
            }
        }
        answers
    }

    fn call(self: &Arc<Self>, id: &Value, name: &str, args: &Value) {
        let n = |key: &str, default: u64| args[key].as_u64().unwrap_or(default);
        match name {
            "echo" => self.text(id, args["text"].as_str().unwrap_or_default()),
            "pid" => self.text(id, std::process::id().to_string()),
            "never" => {}
            "garbage" => {
                let junk: [&[u8]; 6] = [
                    b"this is not json",
                    br#"{"jsonrpc":"2.0"}"#,
                    b"[1, 2",
                    b"\xff\xfe not utf-8",
                    br#"{"jsonrpc":"1.0","id":1,"result":{}}"#,
                    br#"{"jsonrpc":"2.0","id":{"no":"objects"},"result":{}}"#,
                ];
                for i in 0..n("lines", 6) {
                    let _ = self.write_raw(junk[i as usize % junk.len()]);
                }
                self.text(id, "ok");
            }
            "flood" => {
                for i in 0..n("count", 1000) {
                    let _ = self.write(&log_notification(i, ""));
                }
                self.text(id, "flooded");
            }
            "flood_forever" => {
                let server = Arc::clone(self);
                std::thread::spawn(move || {
                    let mut i = 0;
                    while server.write(&log_notification(i, "")).is_ok() {
                        i += 1;
                    }
                });
            }
            "wrong_id" => {
                for wrong in [json!(987_654), json!("nobody-asked"), json!(format!("{id}-not"))] {
                    self.text(&wrong, "for nobody");
                }
                self.text(id, "right");
            }
            "huge" => self.text(id, "x".repeat(n("bytes", 1 << 20) as usize)),
            "chatty" => {
                let data = "c".repeat(n("size", 1024) as usize);
                for i in 0..n("count", 100) {
                    if self.write(&log_notification(i, &data)).is_err() {
                        return;
                    }
                }
                self.text(id, "chatted");
            }
            "sample" => {
                let request = json!({"jsonrpc": "2.0", "id": format!("sample-{id}"), "method": "sampling/createMessage",
                    "params": {"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}], "maxTokens": 10}});
                let answers = self.ask(vec![request], Duration::from_millis(n("wait_ms", 30_000)));
                self.text(id, Value::Array(answers).to_string());
            }
            "ask_roots" => {
                let requests = (0..n("count", 1))
                    .map(|i| json!({"jsonrpc": "2.0", "id": format!("roots-{id}-{i}"), "method": "roots/list"}))
                    .collect();
                let answers = self.ask(requests, Duration::from_millis(n("wait_ms", 1000)));
                self.text(id, Value::Array(answers).to_string());
            }
            "spawn_sleeper" => match std::process::Command::new("sleep").arg("1000").spawn() {
                Ok(child) => self.text(id, child.id().to_string()),
                Err(e) => self.text(id, format!("spawn failed: {e}")),
            },
            "received" => {
                let log = self.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                self.text(id, Value::Array(log).to_string());
            }
            _ => {
                let _ = self
                    .write(&json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": "unknown tool"}}));
            }
        }
    }

    fn request(self: &Arc<Self>, id: &Value, method: &str, params: &Value) {
        match method {
            "initialize" => self.answer(
                id,
                json!({
                    "protocolVersion": params["protocolVersion"].as_str().unwrap_or("2025-06-18"),
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "hostile-stdio", "version": "1.0.0"},
                }),
            ),
            "ping" => self.answer(id, json!({})),
            "tools/list" => {
                let tools: Vec<Value> = TOOLS
                    .iter()
                    .map(|name| json!({"name": name, "description": "misbehaves", "inputSchema": {"type": "object"}}))
                    .collect();
                self.answer(id, json!({"tools": tools}));
            }
            "tools/call" => {
                let name = params["name"].as_str().unwrap_or_default();
                self.call(id, name, &params["arguments"]);
            }
            _ => {
                let _ = self.write(
                    &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no such method"}}),
                );
            }
        }
    }
}

const TOOLS: [&str; 13] = [
    "echo",
    "pid",
    "never",
    "garbage",
    "flood",
    "flood_forever",
    "wrong_id",
    "huge",
    "chatty",
    "sample",
    "ask_roots",
    "spawn_sleeper",
    "received",
];

fn log_notification(i: u64, data: &str) -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": format!("{i} {data}")}})
}

fn main() {
    let server = Arc::new(Server::default());
    let stdin = std::io::stdin().lock();
    for line in stdin.split(b'\n') {
        let Ok(line) = line else { break };
        let Ok(message) = serde_json::from_slice::<Value>(&line) else { continue };
        server.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(message.clone());
        match (message.get("method").and_then(Value::as_str), message.get("id")) {
            (Some(method), Some(id)) => {
                let (server, id, method) = (Arc::clone(&server), id.clone(), method.to_owned());
                let params = message.get("params").cloned().unwrap_or(Value::Null);
                // Each request on its own thread: one that never answers blocks nothing else.
                std::thread::spawn(move || server.request(&id, &method, &params));
            }
            (None, Some(id)) => {
                let waiter =
                    server.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id.to_string());
                if let Some(waiter) = waiter {
                    let _ = waiter.send(message);
                }
            }
            _ => {}
        }
    }
    // Stdin closed: the MCP stdio way to be asked to exit.
}
