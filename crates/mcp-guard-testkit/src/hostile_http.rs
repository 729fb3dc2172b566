//! A hostile Streamable HTTP MCP server, for testing how the gateway
//! contains an upstream that misbehaves.
//!
//! [`spawn_hostile_http`] serves `/mcp` on a free loopback port. It answers
//! `initialize` (issuing a session id), `ping`, `tools/list` and
//! notifications as a server should, so a real rmcp client can use it
//! through the gateway; `tools/call` does what the tool's name says:
//!
//! | tool | answer |
//! |---|---|
//! | `echo` | SSE: the `text` argument as the result (well-behaved) |
//! | `echo_json` | JSON: the same |
//! | `garbage` | `200 application/json` that is not JSON |
//! | `garbage_sse` | SSE: an event that is not JSON-RPC, then the result |
//! | `huge_json` | JSON: a result of `bytes` bytes |
//! | `huge_event` | SSE: one event of `bytes` bytes, then the stream ends |
//! | `wrong_id` | JSON: a response to another id |
//! | `wrong_id_sse` | SSE: a response to another id, then the result |
//! | `never_answer` | SSE: a keep-alive comment every 100 ms, never a result |
//! | `progress_forever` | SSE: progress for the call's token every `every_ms`, never a result |
//! | `flood_server_requests` | SSE: `count` `roots/list` requests (ids `srv-<first>` on), then the result |
//! | `reset_mid_sse` | SSE: one notification, then the connection breaks |
//! | `stall_mid_sse` | SSE: one notification, then silence |
//! | `status_500` | `500 text/plain` |
//! | `status_500_jsonrpc` | `500` with a JSON-RPC error body |
//! | `status_404` | `404`, as for an unknown session |
//! | `redirect` | `307` to another host |
//! | `slow_headers` | no answer at all |
//! | `reset_before_headers` | the TCP connection is reset before any answer |
//!
//! A GET with `x-hostile-get: flood` gets a hostile standalone stream: more
//! server requests than a session may have, a response nobody asked for,
//! garbage, an oversized event; any other GET gets 405.
//!
//! `reset_before_headers` is done below HTTP: every connection goes through
//! a small TCP relay that resets it (`SO_LINGER` 0) when a request carries
//! that tool's name. The server records the `notifications/cancelled` it gets
//! ([`HostileServer::cancelled`]). Streams end when their reader goes away,
//! and the whole server when the [`HostileServer`] is dropped.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, body::Body, extract::State, response::Response, routing::post};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_util::{io::ReaderStream, sync::CancellationToken};

/// The tool whose request makes the relay reset the connection.
const RESET_MARKER: &[u8] = b"reset_before_headers";

/// A running hostile server.
#[derive(Debug)]
pub struct HostileServer {
    /// Where it listens (the relay).
    pub addr: SocketAddr,
    /// Its MCP endpoint URL.
    pub url: String,
    state: Arc<Hostile>,
    stop: CancellationToken,
}

impl HostileServer {
    /// The `requestId`s of the `notifications/cancelled` received so far, as JSON text.
    pub fn cancelled(&self) -> Vec<String> {
        self.state.cancelled.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// `tools/call` requests received so far.
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::Relaxed)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// The ids of the responses clients sent to its server-to-client requests, as JSON text.
    pub fn client_answers(&self) -> Vec<String> {
        self.state.answers.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Debug, Default)]
struct Hostile {
    sessions: AtomicU64,
    connections: AtomicU64,
    calls: AtomicU64,
    cancelled: Mutex<Vec<String>>,
    answers: Mutex<Vec<String>>,
}

/// Serves the hostile server on a free loopback port.
pub async fn spawn_hostile_http() -> io::Result<HostileServer> {
    let stop = CancellationToken::new();
    let state = Arc::<Hostile>::default();
    let app = Router::new().route("/mcp", post(mcp).get(standalone).delete(end_session)).with_state(state.clone());
    let inner = TcpListener::bind("127.0.0.1:0").await?;
    let inner_addr = inner.local_addr()?;
    let token = stop.child_token();
    tokio::spawn(async move {
        let _ = axum::serve(inner, app).with_graceful_shutdown(token.cancelled_owned()).await;
    });
    let relay = TcpListener::bind("127.0.0.1:0").await?;
    let addr = relay.local_addr()?;
    tokio::spawn(accept(relay, inner_addr, state.clone(), stop.child_token()));
    Ok(HostileServer { addr, url: format!("http://{addr}/mcp"), state, stop })
}

async fn accept(listener: TcpListener, inner: SocketAddr, state: Arc<Hostile>, stop: CancellationToken) {
    loop {
        let client = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => {
                    // Out of descriptors, say: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        state.connections.fetch_add(1, Ordering::Relaxed);
        let stop = stop.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(inner).await else { return };
            tokio::select! {
                () = stop.cancelled() => {}
                _ = relay(client, server) => {}
            }
        });
    }
}

/// Copies bytes both ways; resets the client's connection when a request
/// names [`RESET_MARKER`].
async fn relay(mut client: TcpStream, mut server: TcpStream) -> io::Result<()> {
    let reset = {
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
        // The end of the previous read, so a marker split across reads is found.
        let mut carry: Vec<u8> = Vec::new();
        loop {
            tokio::select! {
                n = client_read.read(&mut up) => {
                    let n = n?;
                    if n == 0 {
                        break false;
                    }
                    carry.extend_from_slice(&up[..n]);
                    if carry.windows(RESET_MARKER.len()).any(|w| w == RESET_MARKER) {
                        break true;
                    }
                    let keep = carry.len().saturating_sub(RESET_MARKER.len());
                    carry.drain(..keep);
                    server_write.write_all(&up[..n]).await?;
                }
                n = server_read.read(&mut down) => {
                    let n = n?;
                    if n == 0 {
                        break false;
                    }
                    client_write.write_all(&down[..n]).await?;
                }
            }
        }
    };
    if reset {
        client.set_zero_linger()?;
    }
    Ok(())
}

/// GET: no standalone stream (405), unless the request carries
/// `x-hostile-get: flood`: then a stream of `roots/list` requests
/// (`srv-get-0` …), a response nobody asked for, an event that is not
/// JSON-RPC, one event of 64 KiB, and a log notification, held open.
async fn standalone(headers: HeaderMap) -> Response {
    if headers.get("x-hostile-get").is_none_or(|v| v != "flood") {
        return status(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "no standalone stream");
    }
    let count = headers.get("x-hostile-count").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(5u32);
    sse(move |tx| async move {
        for n in 0..count {
            tx.event(&json!({ "jsonrpc": "2.0", "id": format!("srv-get-{n}"), "method": "roots/list" })).await?;
        }
        tx.event(&text_result(&json!(424242), "nobody asked")).await?;
        tx.raw("data: not JSON-RPC\n\n").await?;
        tx.event(&log_notification(&"x".repeat(64 * 1024))).await?;
        tx.event(&log_notification("end of the flood")).await?;
        tx.closed().await;
        Ok(())
    })
}

async fn end_session() -> Response {
    status(StatusCode::OK, "text/plain", "")
}

async fn mcp(State(state): State<Arc<Hostile>>, body: Bytes) -> Response {
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return status(StatusCode::BAD_REQUEST, "text/plain", "not JSON");
    };
    let method = message["method"].as_str().unwrap_or_default();
    let id = message.get("id").cloned();
    match (method, id) {
        ("notifications/cancelled", None) => {
            state.lock_cancelled().push(message["params"]["requestId"].to_string());
            accepted()
        }
        (_, None) => accepted(),
        // A response to one of our requests.
        ("", Some(id)) => {
            state.answers.lock().unwrap_or_else(PoisonError::into_inner).push(id.to_string());
            accepted()
        }
        ("initialize", Some(id)) => {
            let version = message["params"]["protocolVersion"].as_str().unwrap_or("2025-06-18").to_owned();
            let result = json!({
                "protocolVersion": version,
                "capabilities": { "tools": {} },
                "serverInfo": { "name": "hostile-http", "version": "1.0.0" },
            });
            let mut response = json_response(&reply(&id, result));
            let n = state.sessions.fetch_add(1, Ordering::Relaxed);
            if let Ok(value) = HeaderValue::from_str(&format!("hostile-{n}")) {
                response.headers_mut().insert("mcp-session-id", value);
            }
            response
        }
        ("ping", Some(id)) => json_response(&reply(&id, json!({}))),
        ("tools/list", Some(id)) => json_response(&reply(&id, json!({ "tools": tools() }))),
        ("tools/call", Some(id)) => {
            state.calls.fetch_add(1, Ordering::Relaxed);
            call(&message, id).await
        }
        (_, Some(id)) => json_response(
            &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}}),
        ),
    }
}

impl Hostile {
    fn lock_cancelled(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.cancelled.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

const TOOLS: [&str; 19] = [
    "echo",
    "echo_json",
    "garbage",
    "garbage_sse",
    "huge_json",
    "huge_event",
    "wrong_id",
    "wrong_id_sse",
    "never_answer",
    "progress_forever",
    "flood_server_requests",
    "reset_mid_sse",
    "stall_mid_sse",
    "status_500",
    "status_500_jsonrpc",
    "status_404",
    "redirect",
    "slow_headers",
    "reset_before_headers",
];

fn tools() -> Vec<Value> {
    TOOLS
        .iter()
        .map(|name| json!({ "name": name, "description": "hostile", "inputSchema": { "type": "object" } }))
        .collect()
}

fn reply(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

fn text_result(id: &Value, text: &str) -> Value {
    reply(id, json!({ "content": [{ "type": "text", "text": text }] }))
}

async fn call(message: &Value, id: Value) -> Response {
    let params = &message["params"];
    let args = &params["arguments"];
    let size = args["bytes"].as_u64().unwrap_or(64 * 1024) as usize;
    let token = params["_meta"]["progressToken"].clone();
    match params["name"].as_str().unwrap_or_default() {
        "echo" => {
            let answer = text_result(&id, args["text"].as_str().unwrap_or_default());
            sse(move |tx| async move { tx.event(&answer).await })
        }
        "echo_json" => json_response(&text_result(&id, args["text"].as_str().unwrap_or_default())),
        "garbage" => status(StatusCode::OK, "application/json", "this is not JSON-RPC {{{"),
        "garbage_sse" => sse(move |tx| async move {
            tx.raw("data: this is not JSON-RPC\n\n").await?;
            tx.event(&text_result(&id, "after the garbage")).await
        }),
        "huge_json" => json_response(&text_result(&id, &"x".repeat(size))),
        "huge_event" => sse(move |tx| async move { tx.event(&text_result(&id, &"x".repeat(size))).await }),
        "wrong_id" => json_response(&text_result(&json!("not-yours"), "wrong")),
        "wrong_id_sse" => sse(move |tx| async move {
            tx.event(&text_result(&json!("not-yours"), "wrong")).await?;
            tx.event(&text_result(&id, "right")).await
        }),
        "never_answer" => sse(move |tx| async move {
            loop {
                tx.raw(": keep-alive\n\n").await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }),
        "progress_forever" => {
            let every = Duration::from_millis(args["every_ms"].as_u64().unwrap_or(200));
            sse(move |tx| async move {
                for step in 1.. {
                    let params = json!({ "progressToken": token, "progress": step });
                    tx.event(&json!({ "jsonrpc": "2.0", "method": "notifications/progress", "params": params }))
                        .await?;
                    tokio::time::sleep(every).await;
                }
                Ok(())
            })
        }
        "flood_server_requests" => {
            let first = args["first"].as_u64().unwrap_or(0);
            let count = args["count"].as_u64().unwrap_or(10);
            sse(move |tx| async move {
                for n in first..first + count {
                    tx.event(&json!({ "jsonrpc": "2.0", "id": format!("srv-{n}"), "method": "roots/list" })).await?;
                }
                tx.event(&text_result(&id, "flooded")).await
            })
        }
        "reset_mid_sse" => sse(move |tx| async move {
            tx.event(&log_notification("about to break")).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.break_off().await
        }),
        "stall_mid_sse" => sse(move |tx| async move {
            tx.event(&log_notification("about to stall")).await?;
            tx.closed().await;
            Ok(())
        }),
        "status_500" => status(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "boom"),
        "status_500_jsonrpc" => {
            let body =
                json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32603, "message": "upstream broke" } });
            status(StatusCode::INTERNAL_SERVER_ERROR, "application/json", &body.to_string())
        }
        "status_404" => status(StatusCode::NOT_FOUND, "text/plain", "no such session"),
        "redirect" => {
            let mut response = status(StatusCode::TEMPORARY_REDIRECT, "text/plain", "");
            response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("http://192.0.2.1/mcp"));
            response
        }
        "slow_headers" => std::future::pending().await,
        _ => json_response(
            &json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32602, "message": "Unknown tool" } }),
        ),
    }
}

fn log_notification(data: &str) -> Value {
    json!({ "jsonrpc": "2.0", "method": "notifications/message", "params": { "level": "info", "data": data } })
}

fn accepted() -> Response {
    status(StatusCode::ACCEPTED, "text/plain", "")
}

fn status(code: StatusCode, content_type: &'static str, body: &str) -> Response {
    let mut response = Response::new(Body::from(body.to_owned()));
    *response.status_mut() = code;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json_response(value: &Value) -> Response {
    status(StatusCode::OK, "application/json", &value.to_string())
}

/// Writes one SSE answer from a script running in its own task.
struct Script(mpsc::Sender<io::Result<Bytes>>);

impl Script {
    async fn raw(&self, text: &str) -> io::Result<()> {
        self.0.send(Ok(Bytes::from(text.to_owned()))).await.map_err(|_| io::ErrorKind::BrokenPipe.into())
    }

    async fn event(&self, message: &Value) -> io::Result<()> {
        self.raw(&format!("event: message\ndata: {message}\n\n")).await
    }

    /// Fails the body: the server breaks the connection off mid-answer.
    async fn break_off(&self) -> io::Result<()> {
        let _ = self.0.send(Err(io::ErrorKind::ConnectionReset.into())).await;
        Ok(())
    }

    /// Waits until the reader is gone.
    async fn closed(&self) {
        self.0.closed().await;
    }
}

/// A `200 text/event-stream` answer written by `script`.
fn sse<F, Fut>(script: F) -> Response
where
    F: FnOnce(Script) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let _ = script(Script(tx)).await;
    });
    let body = Body::from_stream(ReaderStream::new(ChannelReader { rx, chunk: Bytes::new() }));
    let mut response = Response::new(body);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}

/// The script's chunks as an `AsyncRead`, errors included.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
}

impl AsyncRead for ChannelReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        while self.chunk.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.chunk = chunk,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.chunk.len().min(buf.remaining());
        buf.put_slice(&self.chunk.split_to(n));
        Poll::Ready(Ok(()))
    }
}
