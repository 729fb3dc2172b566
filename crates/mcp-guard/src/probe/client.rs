//! The probe's HTTP client: every request counted against the budget,
//! spaced by the delay, bounded by the timeout, and only ever to the target's
//! origin (or a metadata URL the caller approved).
//!
//! reqwest over HTTP/1.1 only: a `Host` header set here is sent as is (on
//! HTTP/2 it would not replace `:authority`), so a foreign `Host` reaches the
//! server. Redirects are never followed and requests never retried, so one
//! call is at most one request the server sees.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use mcp_guard_layers::{sse::SseParser, transport};
use reqwest::Url;
use serde_json::Value;

use super::{ProbeError, ProbeOptions, Progress, ProgressFn, Target, tls_verify};

/// Most of an answer's body kept (for parsing and the stack-trace scan).
const MAX_KEPT: usize = 1024 * 1024;
/// Most of an answer's body read; the rest is left unread.
const MAX_READ: usize = 8 * 1024 * 1024;
/// Size of each chunk of a streamed request body.
const CHUNK: usize = 64 * 1024;
/// Pause between chunks of a streamed request body (see [`paced`]).
const PACE: Duration = Duration::from_millis(1);

/// A request body.
#[derive(Clone, Debug)]
pub(crate) enum Body {
    /// No body.
    Empty,
    /// Sent with `Content-Length`.
    Full(Bytes),
    /// Sent with `Transfer-Encoding: chunked`, in 64 KiB chunks.
    Chunked(Bytes),
}

/// One request to send.
#[derive(Clone, Debug)]
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Body,
    /// How evidence names it, e.g. `POST ping`.
    pub(crate) label: String,
    /// In an event stream, stop reading once this many JSON-RPC responses
    /// came (0: read to the end). Streams may stay open after the answer.
    pub(crate) responses: usize,
}

impl Req {
    /// A request to `url` with no headers.
    pub(crate) fn new(method: Method, url: Url, body: Body, label: impl Into<String>) -> Self {
        Req { method, url, headers: HeaderMap::new(), body, label: label.into(), responses: 1 }
    }

    /// Adds (or replaces) a header. Values the probe builds are always valid;
    /// one that is not is left out rather than aborting the probe.
    pub(crate) fn header(mut self, name: impl TryInto<HeaderName>, value: &str) -> Self {
        if let (Ok(name), Ok(value)) = (name.try_into(), HeaderValue::from_str(value)) {
            self.headers.insert(name, value);
        }
        self
    }

    /// Adds (or replaces) a header with a raw value.
    pub(crate) fn header_value(mut self, name: &HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name.clone(), value);
        self
    }
}

/// An answer: status, headers, the start of the body, and the JSON-RPC
/// messages in it (from JSON or an event stream).
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) messages: Vec<Value>,
}

impl Answer {
    /// A successful MCP answer: 2xx carrying a JSON-RPC `result`.
    pub(crate) fn is_success(&self) -> bool {
        self.status.is_success() && self.result().is_some()
    }

    /// The first JSON-RPC `result` in the answer.
    pub(crate) fn result(&self) -> Option<&Value> {
        self.messages.iter().find_map(|m| m.get("result"))
    }

    /// A header as text (empty when not visible ASCII).
    pub(crate) fn header(&self, name: impl http::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap_or_default())
    }

    /// `200 with an MCP result`, `400`, `401 (…)`: how evidence describes it.
    pub(crate) fn describe(&self) -> String {
        let code = self.status.as_u16();
        if self.is_success() {
            return format!("{code} with an MCP result");
        }
        match self.messages.iter().find_map(|m| m.get("error")?.get("message")?.as_str()) {
            Some(message) => format!("{code} ({})", shorten(message, 80)),
            None => code.to_string(),
        }
    }
}

/// What came of a request.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// A complete answer (or as much of it as the probe reads).
    Answer(Answer),
    /// No complete answer within the timeout; the status if headers came.
    Timeout(Option<StatusCode>),
    /// The connection could not be made (`connect`) or broke before an answer.
    Failed { connect: bool, error: String },
}

impl Outcome {
    /// The answer, if one came.
    pub(crate) fn answer(&self) -> Option<&Answer> {
        match self {
            Outcome::Answer(answer) => Some(answer),
            _ => None,
        }
    }

    /// True for a successful MCP answer.
    pub(crate) fn is_success(&self) -> bool {
        self.answer().is_some_and(Answer::is_success)
    }

    /// The HTTP status, if an answer came.
    pub(crate) fn status(&self) -> Option<u16> {
        self.answer().map(|a| a.status.as_u16())
    }

    /// How evidence describes it.
    pub(crate) fn describe(&self, timeout: Duration) -> String {
        match self {
            Outcome::Answer(answer) => answer.describe(),
            Outcome::Timeout(None) => format!("no answer within {}s", timeout.as_secs_f32()),
            Outcome::Timeout(Some(status)) => {
                format!("{} but no complete answer within {}s", status.as_u16(), timeout.as_secs_f32())
            }
            Outcome::Failed { connect: true, error } => format!("connection failed ({error})"),
            Outcome::Failed { connect: false, error } => format!("connection dropped ({error})"),
        }
    }
}

/// The request budget is spent: the probe sends nothing more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Exhausted;

/// A response the probe saw, for the checks that read headers afterwards.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) label: String,
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
}

/// The budgeted client.
pub(crate) struct Client {
    http: reqwest::Client,
    target: Target,
    approved: Vec<Url>,
    budget: usize,
    sent: usize,
    delay: Duration,
    pub(crate) timeout: Duration,
    /// Every answer's status and headers, in order.
    pub(crate) seen: Vec<Seen>,
    /// Stack traces found in bodies: `label -> status: line`.
    pub(crate) traces: Vec<String>,
    progress: Option<ProgressFn>,
    stage: &'static str,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("target", &self.target.url.as_str()).field("sent", &self.sent).finish()
    }
}

impl Client {
    pub(crate) fn new(options: &ProbeOptions, target: &Target) -> Result<Self, ProbeError> {
        let mut builder = reqwest::Client::builder()
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .no_proxy()
            .connect_timeout(options.timeout)
            .user_agent(concat!("mcp-guard-probe/", env!("CARGO_PKG_VERSION")));
        if options.insecure {
            builder = builder.tls_backend_preconfigured(tls_verify::accept_any_config()?);
        }
        let http = builder.build().map_err(|e| ProbeError::Setup(format!("building the HTTP client: {e}")))?;
        Ok(Client {
            http,
            target: target.clone(),
            approved: Vec::new(),
            budget: options.max_requests,
            sent: 0,
            delay: options.delay,
            timeout: options.timeout,
            seen: Vec::new(),
            traces: Vec::new(),
            progress: options.progress.clone(),
            stage: "",
        })
    }

    /// Requests sent so far (raw TLS handshakes included).
    pub(crate) fn sent(&self) -> usize {
        self.sent
    }

    /// Requests left in the budget.
    pub(crate) fn remaining(&self) -> usize {
        self.budget.saturating_sub(self.sent)
    }

    /// The family now running, for the progress indicator.
    pub(crate) fn stage(&mut self, stage: &'static str) {
        self.stage = stage;
        self.tick();
    }

    /// Lets `url` (a metadata document's) be fetched although it is not the target's origin.
    pub(crate) fn approve(&mut self, url: Url) {
        self.approved.push(url);
    }

    /// Counts one request against the budget, after the delay. For requests
    /// the client does not send itself (raw TLS handshakes).
    pub(crate) async fn take(&mut self) -> Result<(), Exhausted> {
        if self.sent >= self.budget {
            return Err(Exhausted);
        }
        if self.sent > 0 && !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.sent += 1;
        self.tick();
        Ok(())
    }

    fn tick(&self) {
        if let Some(progress) = &self.progress {
            progress(Progress { stage: self.stage, requests: self.sent, budget: self.budget });
        }
    }

    /// Sends `req` and reads the answer within the timeout.
    pub(crate) async fn send(&mut self, req: Req) -> Result<Outcome, Exhausted> {
        if !self.target.same_origin(&req.url) && !self.approved.contains(&req.url) {
            // Never reached: checks only build URLs on the target or approved ones.
            return Ok(Outcome::Failed { connect: true, error: "not contacted: another origin".into() });
        }
        self.take().await?;
        let mut headers = req.headers.clone();
        let body = match req.body.clone() {
            Body::Empty => reqwest::Body::from(Bytes::new()),
            Body::Full(bytes) if bytes.len() <= CHUNK => reqwest::Body::from(bytes),
            Body::Full(bytes) => {
                // A set Content-Length is what hyper sends, streamed body or not.
                headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                paced(bytes)
            }
            Body::Chunked(bytes) => paced(bytes),
        };
        let request = self.http.request(req.method.clone(), req.url.clone()).headers(headers).body(body);
        let mut status = None;
        let exchange = async {
            let response = request.send().await?;
            status = Some(response.status());
            Ok::<_, reqwest::Error>(read(response, req.responses).await)
        };
        let outcome = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Outcome::Timeout(status),
            Ok(Err(e)) if e.is_timeout() => Outcome::Timeout(status),
            Ok(Err(e)) => Outcome::Failed { connect: e.is_connect(), error: root_cause(&e) },
            Ok(Ok(answer)) => Outcome::Answer(answer),
        };
        if let Outcome::Answer(answer) = &outcome {
            if let Some(line) = super::trace::stack_trace(&answer.body) {
                self.traces.push(format!("{} -> {}: {line}", req.label, answer.status.as_u16()));
            }
            let (label, method, url) = (req.label, req.method, req.url);
            self.seen.push(Seen { label, method, url, status: answer.status, headers: answer.headers.clone() });
        }
        Ok(outcome)
    }
}

/// A large body as a stream of 64 KiB chunks, a millisecond apart.
///
/// A server that refuses a large body often answers 413 and closes the
/// connection while the client is still sending. A client writing flat out
/// meets the reset on its next write before it ever reads the 413 already
/// waiting (and reports a dropped connection); the pause lets the runtime
/// see the answer first, as the server meant it to be seen.
fn paced(bytes: Bytes) -> reqwest::Body {
    let stream = futures_util::stream::unfold(0usize, move |at| {
        let bytes = bytes.clone();
        async move {
            if at >= bytes.len() {
                return None;
            }
            if at > 0 {
                tokio::time::sleep(PACE).await;
            }
            let end = (at + CHUNK).min(bytes.len());
            Some((Ok::<_, std::io::Error>(bytes.slice(at..end)), end))
        }
    });
    reqwest::Body::wrap_stream(stream)
}

/// Reads the body: to its end, or until `responses` JSON-RPC responses
/// arrived in an event stream, keeping at most [`MAX_KEPT`] bytes. A body
/// that breaks off ends there: the status and headers already came.
async fn read(mut response: reqwest::Response, responses: usize) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let sse = transport::is_event_stream(&headers);
    let mut kept = BytesMut::new();
    let (mut parser, mut events, mut messages) = (SseParser::new(MAX_KEPT), Vec::new(), Vec::new());
    let mut read = 0usize;
    while let Ok(Some(chunk)) = response.chunk().await {
        read += chunk.len();
        let room = MAX_KEPT.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if sse {
            // An oversized event is dropped by the parser; the rest still parse.
            let _ = parser.feed(&chunk, &mut events);
            for event in events.drain(..) {
                // The empty `data:` event some servers open streams with carries nothing.
                if let Ok(message) = serde_json::from_str::<Value>(&event.data) {
                    messages.push(message);
                }
            }
            if responses > 0 && messages.iter().filter(|m| is_response(m)).count() >= responses {
                break;
            }
        }
        if read >= MAX_READ {
            break;
        }
    }
    if !sse {
        match serde_json::from_slice::<Value>(&kept) {
            Ok(Value::Array(batch)) => messages = batch,
            Ok(one @ Value::Object(_)) => messages = vec![one],
            _ => {}
        }
    }
    Answer { status, headers, body: kept.freeze(), messages }
}

/// A JSON-RPC response: an `id` and a `result` or `error`.
pub(crate) fn is_response(message: &Value) -> bool {
    message.get("id").is_some() && (message.get("result").is_some() || message.get("error").is_some())
}

/// The innermost error message: the part that says what happened
/// (`connection reset by peer`), without the URL reqwest prefixes.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    shorten(&cause.to_string(), 120)
}

/// At most `max` characters of `text`, with `…` when cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_cuts_on_characters() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("ééééé", 2), "éé…");
    }
}
