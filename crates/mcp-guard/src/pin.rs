//! `mcp-guard pin`: asks the upstream for its tools and writes the pin file.
//!
//! The conversation goes through the gateway's own [`Upstream`]
//! implementations, so a stdio server is spawned, and an HTTP server reached
//! with its credentials, exactly as when the gateway serves clients:
//! `initialize`, `notifications/initialized`, `tools/list` page by page,
//! then `DELETE` of the session. Answers are read whether JSON or an SSE
//! stream. Every step is bounded: 30 s per request, 16 MiB per answer, 100
//! pages and 10,000 tools.

use std::{
    collections::HashSet,
    io::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
pub use mcp_guard_layers::policy::pins::{DefinitionHash, PinFile};
use mcp_guard_layers::{
    sse::SseParser,
    transport::{self, MCP_PROTOCOL_VERSION, MCP_SESSION_ID},
};
use serde_json::{Map, Value, json};

use crate::{
    body::BoxBody,
    config::UpstreamConfig,
    upstream::{Upstream, embedded::EmbeddedUpstream, http::HttpUpstream, stdio::StdioUpstream},
};

/// The protocol revision `pin` asks for in `initialize`.
pub const PROTOCOL_VERSION: &str = "2025-06-18";
/// Time allowed for one request, its answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// Most `tools/list` pages followed.
pub const MAX_PAGES: usize = 100;
/// Most tools accepted.
pub const MAX_TOOLS: usize = 10_000;

/// A `Tool` object from a `tools/list` result.
pub type Tool = Map<String, Value>;

/// Why one request to the upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// A non-2xx answer, with its JSON-RPC error message, else the reason phrase.
    #[error("HTTP {code}: {1}", code = .0.as_u16())]
    Status(StatusCode, String),
    /// A JSON-RPC error response: `error.code` and `error.message`.
    #[error("JSON-RPC error {0}: {1}")]
    JsonRpc(i64, String),
    /// No complete answer within [`REQUEST_TIMEOUT`].
    #[error("no answer within {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout,
    /// The answer exceeded [`MAX_ANSWER_BYTES`].
    #[error("answer larger than {} MiB", MAX_ANSWER_BYTES / 1024 / 1024)]
    TooLarge,
    /// An answer that is not what MCP says it is.
    #[error("{0}")]
    Invalid(String),
}

/// Why `pin` failed.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The upstream could not be reached or did not complete `initialize`.
    #[error("cannot reach or initialize the upstream: {0}")]
    Initialize(ExchangeError),
    /// A `tools/list` request failed.
    #[error("tools/list failed: {0}")]
    ToolsList(ExchangeError),
    /// The tool list is malformed or over the limits.
    #[error("tools/list: {0}")]
    Tools(String),
    /// The pin file could not be written.
    #[error("cannot write {}: {error}", path.display())]
    Write {
        /// The destination.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

impl PinError {
    /// The process exit status: 2 when the upstream cannot be reached or
    /// initialized, 1 for any other failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            PinError::Initialize(_) => 2,
            _ => 1,
        }
    }
}

/// Builds the configured upstream as the gateway does, fetches its tools,
/// and shuts the upstream down (ending any child process).
pub async fn fetch_from(config: &UpstreamConfig) -> Result<Vec<Tool>, PinError> {
    match config {
        UpstreamConfig::Demo => fetch_then_shutdown(EmbeddedUpstream::demo()).await,
        UpstreamConfig::Http(http) => fetch_then_shutdown(HttpUpstream::new(http)).await,
        UpstreamConfig::Stdio(stdio) => fetch_then_shutdown(StdioUpstream::new(stdio.clone())).await,
    }
}

async fn fetch_then_shutdown<U: Upstream>(upstream: U) -> Result<Vec<Tool>, PinError> {
    let result = fetch_tools(&upstream).await;
    upstream.shutdown().await;
    result
}

/// One MCP session: its id and the negotiated protocol version.
#[derive(Debug, Default)]
struct Session {
    id: Option<HeaderValue>,
    version: Option<HeaderValue>,
}

/// Initializes a session, lists every tool (following `nextCursor`), and
/// deletes the session. The caller shuts the upstream down.
pub async fn fetch_tools<U: Upstream>(upstream: &U) -> Result<Vec<Tool>, PinError> {
    let mut session = Session::default();
    let result = match initialize(upstream, &mut session).await {
        Ok(true) => list_tools(upstream, &session).await,
        // No `tools` capability: the server offers no tools.
        Ok(false) => Ok(Vec::new()),
        Err(error) => Err(PinError::Initialize(error)),
    };
    if session.id.is_some() {
        // Best effort: the session ends with the upstream's shutdown anyway.
        if let Ok(req) = request(Method::DELETE, &session, BoxBody::empty()) {
            let _ = tokio::time::timeout(Duration::from_secs(5), upstream.handle(req)).await;
        }
    }
    result
}

/// `initialize` then `notifications/initialized`; true when the server has
/// the `tools` capability.
async fn initialize<U: Upstream>(upstream: &U, session: &mut Session) -> Result<bool, ExchangeError> {
    let params = json!({
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "mcp-guard-pin", "version": env!("CARGO_PKG_VERSION")},
    });
    let (id, result) = call(upstream, session, 1, "initialize", params).await?;
    session.id = id;
    let version = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| ExchangeError::Invalid("the initialize result has no protocolVersion".into()))?;
    session.version = Some(
        HeaderValue::from_str(version)
            .map_err(|_| ExchangeError::Invalid(format!("protocolVersion {version:?} cannot be sent in a header")))?,
    );
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    send(upstream, session, &note, None).await?;
    Ok(result.get("capabilities").and_then(|c| c.get("tools")).is_some())
}

async fn list_tools<U: Upstream>(upstream: &U, session: &Session) -> Result<Vec<Tool>, PinError> {
    let mut tools: Vec<Tool> = Vec::new();
    let mut names = HashSet::new();
    let mut cursor: Option<String> = None;
    for page in 0..MAX_PAGES {
        let params = match &cursor {
            Some(cursor) => json!({ "cursor": cursor }),
            None => json!({}),
        };
        let id = 2 + page as u64;
        let (_, mut result) = call(upstream, session, id, "tools/list", params).await.map_err(PinError::ToolsList)?;
        let Some(Value::Array(listed)) = result.remove("tools") else {
            return Err(PinError::Tools("a result without a `tools` array".into()));
        };
        for tool in listed {
            let Value::Object(tool) = tool else { return Err(PinError::Tools("a tool that is not an object".into())) };
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                return Err(PinError::Tools("a tool without a string `name`".into()));
            };
            if !names.insert(name.to_owned()) {
                return Err(PinError::Tools(format!("the tool `{name}` is listed twice")));
            }
            tools.push(tool);
            if tools.len() > MAX_TOOLS {
                return Err(PinError::Tools(format!("more than {MAX_TOOLS} tools")));
            }
        }
        cursor = match result.remove("nextCursor") {
            None | Some(Value::Null) => return Ok(tools),
            Some(Value::String(next)) => Some(next),
            Some(_) => return Err(PinError::Tools("`nextCursor` is not a string".into())),
        };
    }
    Err(PinError::Tools(format!("more than {MAX_PAGES} pages")))
}

/// Sends one request; returns the session id header and the `result`.
async fn call<U: Upstream>(
    upstream: &U,
    session: &Session,
    id: u64,
    method: &str,
    params: Value,
) -> Result<(Option<HeaderValue>, Map<String, Value>), ExchangeError> {
    let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let (session_id, answer) = send(upstream, session, &message, Some(id)).await?;
    let mut answer = answer.ok_or_else(|| ExchangeError::Invalid(format!("no answer to {method}")))?;
    if let Some(error) = answer.get("error") {
        let code = error.get("code").and_then(Value::as_i64).unwrap_or_default();
        let message = error.get("message").and_then(Value::as_str).unwrap_or_default();
        return Err(ExchangeError::JsonRpc(code, message.to_owned()));
    }
    match answer.remove("result") {
        Some(Value::Object(result)) => Ok((session_id, result)),
        _ => Err(ExchangeError::Invalid(format!("the answer to {method} has no result object"))),
    }
}

/// POSTs `message`; for a request (`id`), finds the response with that id.
async fn send<U: Upstream>(
    upstream: &U,
    session: &Session,
    message: &Value,
    id: Option<u64>,
) -> Result<(Option<HeaderValue>, Option<Map<String, Value>>), ExchangeError> {
    let req = request(Method::POST, session, BoxBody::from(message.to_string()))?;
    let exchange = async {
        let response = upstream.handle(req).await;
        let session_id = response.headers().get(&MCP_SESSION_ID).cloned();
        let answer = match id {
            Some(id) => Some(read_response(response, id).await?),
            None if response.status().is_success() => None,
            None => return Err(status_error(response).await),
        };
        Ok((session_id, answer))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.map_err(|_| ExchangeError::Timeout)?
}

fn request(method: Method, session: &Session, body: BoxBody) -> Result<Request<BoxBody>, ExchangeError> {
    let mut builder = Request::builder()
        .method(method)
        // As a client of a local gateway would: the demo checks `Host`; an
        // HTTP upstream gets its own URL and `Host`.
        .uri("http://localhost/mcp")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream");
    if let Some(id) = &session.id {
        builder = builder.header(&MCP_SESSION_ID, id);
    }
    if let Some(version) = &session.version {
        builder = builder.header(&MCP_PROTOCOL_VERSION, version);
    }
    builder.body(body).map_err(|e| ExchangeError::Invalid(e.to_string()))
}

/// Reads a JSON or SSE answer until the JSON-RPC response to `id`.
async fn read_response(response: Response<BoxBody>, id: u64) -> Result<Map<String, Value>, ExchangeError> {
    if !response.status().is_success() {
        return Err(status_error(response).await);
    }
    let wanted = Value::from(id);
    let is_response = |message: &Map<String, Value>| {
        message.get("id") == Some(&wanted) && (message.contains_key("result") || message.contains_key("error"))
    };
    let no_answer = || ExchangeError::Invalid(format!("the answer holds no response to request {id}"));
    if !transport::is_event_stream(response.headers()) {
        let body = read_limited(response.into_body(), MAX_ANSWER_BYTES).await?;
        let messages = match serde_json::from_slice(&body) {
            Ok(Value::Array(batch)) => batch,
            Ok(one) => vec![one],
            Err(e) => return Err(ExchangeError::Invalid(format!("the answer is not JSON: {e}"))),
        };
        return messages
            .into_iter()
            .filter_map(|m| match m {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .find(is_response)
            .ok_or_else(no_answer);
    }
    let mut body = response.into_body();
    let mut parser = SseParser::new(MAX_ANSWER_BYTES);
    let (mut events, mut read) = (Vec::new(), 0usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ExchangeError::Invalid(format!("the event stream broke: {e}")))?;
        let Ok(chunk) = frame.into_data() else { continue };
        read += chunk.len();
        if read > MAX_ANSWER_BYTES {
            return Err(ExchangeError::TooLarge);
        }
        parser.feed(&chunk, &mut events).map_err(|_| ExchangeError::TooLarge)?;
        for event in events.drain(..) {
            if event.event.as_deref().is_some_and(|e| e != "message") {
                continue;
            }
            // Other messages (notifications, the server's own requests) are skipped.
            if let Ok(Value::Object(message)) = serde_json::from_str::<Value>(&event.data)
                && is_response(&message)
            {
                return Ok(message);
            }
        }
    }
    Err(no_answer())
}

async fn status_error(response: Response<BoxBody>) -> ExchangeError {
    let status = response.status();
    let body = read_limited(response.into_body(), 64 * 1024).await.unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("error")?.get("message")?.as_str().map(str::to_owned));
    let detail = message.unwrap_or_else(|| status.canonical_reason().unwrap_or("no reason").to_owned());
    ExchangeError::Status(status, detail)
}

async fn read_limited(body: BoxBody, max: usize) -> Result<bytes::Bytes, ExchangeError> {
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if mcp_guard_layers::body_limit::is_limit_error(&*e) => Err(ExchangeError::TooLarge),
        Err(e) => Err(ExchangeError::Invalid(format!("the answer could not be read: {e}"))),
    }
}

/// What changed between two pin files, by tool name (each list sorted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PinDiff {
    /// In the new file only.
    pub added: Vec<String>,
    /// In the old file only.
    pub removed: Vec<String>,
    /// In both, with different hashes.
    pub changed: Vec<String>,
}

impl PinDiff {
    /// Compares `old` with `new`.
    pub fn between(old: &PinFile, new: &PinFile) -> PinDiff {
        let mut diff = PinDiff::default();
        for (name, pin) in &new.tools {
            match old.tools.get(name) {
                None => diff.added.push(name.clone()),
                Some(before) if before.sha256 != pin.sha256 => diff.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        diff.removed = old.tools.keys().filter(|name| !new.tools.contains_key(*name)).cloned().collect();
        diff
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Writes `text` to `path` atomically: a temporary file in the same
/// directory, flushed to disk, then renamed over `path`. An existing file's
/// permissions are kept.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), PinError> {
    let write_error = |error| PinError::Write { path: path.to_owned(), error };
    let name = path
        .file_name()
        .ok_or_else(|| write_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name")))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    let temp = dir.join(format!(".{}.{}-{nanos}.tmp", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temp)?;
        if let Ok(existing) = std::fs::metadata(path) {
            file.set_permissions(existing.permissions())?;
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(write_error)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn answer(status: u16, content_type: &str, body: &'static str) -> Response<BoxBody> {
        let builder = Response::builder().status(status).header(header::CONTENT_TYPE, content_type);
        builder.body(BoxBody::from(body)).unwrap()
    }

    #[tokio::test]
    async fn responses_are_found_in_json_and_sse_answers() {
        let batch = r#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":7,"result":{"x":1}}]"#;
        let found = read_response(answer(200, "application/json", batch), 7).await.unwrap();
        assert_eq!(found["result"]["x"], 1);
        let sse = ": keep-alive\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
                   event: other\ndata: {\"id\":3,\"result\":1}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n\n";
        let found = read_response(answer(200, "text/event-stream", sse), 3).await.unwrap();
        assert_eq!(found["result"], json!({}));
        let err = read_response(answer(200, "text/event-stream", ": nothing\n\n"), 3).await.unwrap_err();
        assert!(matches!(err, ExchangeError::Invalid(_)), "{err}");
        let refused = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Bad Gateway: down"}}"#;
        let err = read_response(answer(502, "application/json", refused), 1).await.unwrap_err();
        assert_eq!(err.to_string(), "HTTP 502: Bad Gateway: down");
    }

    fn pins(tools: &[(&str, &str)]) -> PinFile {
        let tools: Vec<Tool> =
            tools.iter().filter_map(|(n, d)| json!({"name": n, "description": d}).as_object().cloned()).collect();
        PinFile::from_tools(tools.iter())
    }

    #[test]
    fn diff_names_added_removed_and_changed_tools() {
        let old = pins(&[("a", "A"), ("b", "B"), ("c", "C")]);
        let new = pins(&[("a", "A"), ("b", "B2"), ("d", "D")]);
        let diff = PinDiff::between(&old, &new);
        assert_eq!(diff.added, ["d"]);
        assert_eq!(diff.removed, ["c"]);
        assert_eq!(diff.changed, ["b"]);
        assert!(PinDiff::between(&new, &new).is_empty());
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("mcp-guard-pin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let path = dir.join("pins.json");
        assert!(write_atomic(&path, "one").is_ok());
        assert!(write_atomic(&path, "two").is_ok());
        assert_eq!(std::fs::read_to_string(&path).ok().as_deref(), Some("two"));
        assert_eq!(std::fs::read_dir(&dir).map(Iterator::count).ok(), Some(1));
        assert!(matches!(write_atomic(&dir.join("no/such/dir.json"), "x"), Err(PinError::Write { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
