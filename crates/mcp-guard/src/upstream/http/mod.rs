//! A Streamable HTTP upstream, reverse-proxied with a pooled hyper client.
//!
//! Requests and responses stream in both directions: an SSE response is
//! passed on event by event as the upstream writes it, so a progress
//! notification reaches the client before the result. Hop-by-hop headers
//! (RFC 9110 §7.6.1) are dropped both ways; `Host` is the upstream's.
//! Unreachable gives 502, no response headers within the timeout 504.
//!
//! The upstream is no more trusted than a client (`[upstream]` limits):
//!
//! - a session may have at most `max_pending_per_session` requests waiting
//!   on the upstream (429 `too_many_pending_requests`, upstream untouched);
//! - a JSON answer must answer exactly the POST's requests, within the
//!   size caps (`answer.rs`; else 502 `upstream_invalid_response` or
//!   `upstream_response_too_large`);
//! - an SSE answer is checked event by event (`guard.rs`): size caps,
//!   JSON-RPC validity, responses only for ids it waits for, server
//!   requests capped per session, and a JSON-RPC error event for a request
//!   the upstream does not answer in time, with `notifications/cancelled`
//!   sent to the upstream;
//! - a 4xx passes (a 404 tells the client to initialize again); a 5xx
//!   passes only with a JSON-RPC error body, else it is 502 `upstream_error`;
//!   a 3xx, a 2xx to requests that is neither JSON nor SSE, or a 2xx to a
//!   GET that is not SSE, is 502 `upstream_invalid_response`.
//!
//! Each misbehaviour counts in `mcp_guard_upstream_violations_total` and is
//! contained to its session (`pending.rs` keeps the per-session state).

mod answer;
#[doc(hidden)]
pub mod bench;
mod guard;
mod pending;

use std::{sync::Arc, time::Duration};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use mcp_guard_layers::{
    Rejection,
    jsonrpc::{self, Inspection, MessageKind, RequestId},
    transport::{self, LAST_EVENT_ID, MCP_METHOD, MCP_PROTOCOL_VERSION, MCP_SESSION_ID},
};
use tokio::time::Instant;

use self::{
    answer::ReadError,
    guard::{Answering, Guard, Waiting},
    pending::{SessionState, Sessions},
};
use super::{Upstream, violation::Violation};
use crate::{body::BoxBody, config::HttpUpstreamConfig, config::UpstreamLimits, sse};

/// How long a `notifications/cancelled` the gateway sends may take.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// The reverse proxy to one upstream MCP endpoint.
#[derive(Clone, Debug)]
pub struct HttpUpstream {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client<HttpConnector, BoxBody>,
    url: Uri,
    /// The gateway's own credentials for the upstream.
    headers: Vec<(HeaderName, HeaderValue)>,
    limits: UpstreamLimits,
    sessions: Sessions,
}

impl HttpUpstream {
    /// A proxy to `config.url` with a connection pool.
    pub fn new(config: &HttpUpstreamConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).build(connector);
        let headers = config
            .headers
            .iter()
            .filter_map(|(name, value)| {
                let mut value = HeaderValue::from_str(value.expose()).ok()?;
                value.set_sensitive(true);
                Some((name.clone(), value))
            })
            .collect();
        // Every kind exists from the start at 0, so a rate or an alert on it
        // has a series before the first violation.
        for violation in Violation::ALL {
            metrics::counter!("mcp_guard_upstream_violations_total", "upstream" => pending::KIND, "kind" => violation.kind())
                .increment(0);
        }
        let limits = config.limits.clone();
        let sessions = Sessions::new(limits.max_server_requests_per_session, limits.server_request_timeout);
        HttpUpstream { inner: Arc::new(Inner { client, url: config.url.clone(), headers, limits, sessions }) }
    }

    async fn post(&self, req: Request<BoxBody>) -> Result<Response<BoxBody>, Rejection> {
        let limits = &self.inner.limits;
        let (mut parts, body) = req.into_parts();
        let (inspection, body) = match parts.extensions.remove::<Inspection>() {
            Some(inspection) => (inspection, body),
            None => {
                // Used without the pipeline (`mcp-guard pin`): classify here.
                let bytes = answer::read_request(body, limits.max_message_size).await?;
                (jsonrpc::inspect(&bytes, jsonrpc::Limits::default())?, BoxBody::from(bytes))
            }
        };
        let session = self.session(&parts.headers);
        let sent = Instant::now();
        let batch = inspection.batch;
        let timeouts = (limits.request_timeout, limits.max_request_duration);
        let mut waiting = Vec::new();
        for message in inspection.messages {
            match (message.kind, message.id) {
                (MessageKind::Request, Some(id)) => {
                    let cancellable = message.method.as_deref() != Some("initialize");
                    waiting.push(Waiting::new(id, message.progress_token, cancellable, sent, timeouts));
                }
                // The client answered a server-to-client request.
                (MessageKind::Response, Some(id)) => session.answered(std::iter::once(&id)),
                _ => {}
            }
        }
        if waiting.is_empty() {
            let response = self.send(parts, body, &session, sent).await?;
            return self.whole_or_stream(response, &session, sent, false, limits.max_response_size).await;
        }
        let Some(permit) = session.reserve(waiting.len(), limits.max_pending_per_session) else {
            session.record(Violation::TooManyPending, "a request over upstream.max_pending_per_session");
            return Err(Rejection::TooManyPendingRequests);
        };
        let cancel = Canceller::new(&self.inner, &parts.headers);
        let response = match self.send(parts, body, &session, sent).await {
            Err(Rejection::UpstreamTimeout) => {
                session.record(Violation::RequestTimeout, "no answer headers within upstream.timeout");
                waiting.iter().filter(|w| w.cancellable).for_each(|w| cancel.cancel(&w.id));
                return Err(Rejection::UpstreamTimeout);
            }
            other => other?,
        };
        let (parts, body) = response.into_parts();
        if !parts.status.is_success() {
            return self.whole(parts, body, &session, sent).await;
        }
        if transport::is_event_stream(&parts.headers) {
            let answering = Answering::Post {
                waiting,
                permit,
                max_response: limits.max_response_size,
                request_timeout: limits.request_timeout,
                cancel: Some(cancel),
            };
            return Ok(stream(parts, Guard::new(body, answering, limits.max_message_size)));
        }
        if !is_json(&parts.headers) {
            session.record(Violation::InvalidMessage, "an answer to requests that is neither JSON nor SSE");
            return Err(Rejection::UpstreamInvalidResponse);
        }
        // One message, or (a batch) several each within the message cap.
        let cap = if batch { limits.max_response_size } else { limits.max_message_size };
        let bytes = match answer::read(body, cap, sent + limits.request_timeout).await {
            Ok(bytes) => bytes,
            Err(e) => {
                if matches!(e, ReadError::Timeout) {
                    waiting.iter().filter(|w| w.cancellable).for_each(|w| cancel.cancel(&w.id));
                }
                return Err(read_failed(&session, e, batch));
            }
        };
        if let Err(violation) = answer::check_json(&bytes, &waiting, batch, limits.max_message_size) {
            session.record(violation, "a JSON answer that does not answer the POST's requests");
            return Err(match violation {
                Violation::MessageTooLarge => Rejection::UpstreamResponseTooLarge,
                _ => Rejection::UpstreamInvalidResponse,
            });
        }
        drop(permit);
        Ok(Response::from_parts(parts, BoxBody::from(bytes)))
    }

    async fn get(&self, req: Request<BoxBody>) -> Result<Response<BoxBody>, Rejection> {
        let (parts, body) = req.into_parts();
        let session = self.session(&parts.headers);
        let resumed = parts.headers.contains_key(&LAST_EVENT_ID);
        let sent = Instant::now();
        let response = self.send(parts, body, &session, sent).await?;
        if response.status().is_success() && !transport::is_event_stream(response.headers()) {
            session.record(Violation::InvalidMessage, "a GET answered with something other than SSE");
            return Err(Rejection::UpstreamInvalidResponse);
        }
        // A GET stream lives as long as the session: no total cap.
        self.whole_or_stream(response, &session, sent, resumed, usize::MAX).await
    }

    async fn delete(&self, req: Request<BoxBody>) -> Result<Response<BoxBody>, Rejection> {
        let (parts, body) = req.into_parts();
        let session_id = parts.headers.get(&MCP_SESSION_ID).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let session = self.session(&parts.headers);
        let sent = Instant::now();
        let (parts, body) = self.send(parts, body, &session, sent).await?.into_parts();
        if let (true, Some(id)) = (parts.status.is_success(), session_id) {
            self.inner.sessions.remove(&id);
        }
        self.whole(parts, body, &session, sent).await
    }

    fn session(&self, headers: &HeaderMap) -> Arc<SessionState> {
        self.inner.sessions.get(headers.get(&MCP_SESSION_ID).and_then(|v| v.to_str().ok()))
    }

    /// Sends the request upstream and waits for the answer's headers.
    async fn send(
        &self,
        mut parts: http::request::Parts,
        body: BoxBody,
        session: &SessionState,
        sent: Instant,
    ) -> Result<Response<Incoming>, Rejection> {
        // Always exactly the configured URL: the client's path was matched
        // by the router and its query string is not passed on.
        parts.uri = self.inner.url.clone();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::HOST);
        // The gateway reads every answer, so it asks for it uncompressed.
        parts.headers.remove(header::ACCEPT_ENCODING);
        for (name, value) in &self.inner.headers {
            parts.headers.insert(name, value.clone());
        }
        parts.version = http::Version::HTTP_11;
        let request = Request::from_parts(parts, body);
        let deadline = sent + self.inner.limits.request_timeout;
        let response = match tokio::time::timeout_at(deadline, self.inner.client.request(request)).await {
            Err(_) => return Err(Rejection::UpstreamTimeout),
            Ok(Err(e)) if e.is_connect() => {
                tracing::warn!(target: "mcp_guard::upstream", error = %e, "upstream_unreachable");
                return Err(Rejection::UpstreamUnavailable);
            }
            Ok(Err(e)) => {
                session.record(Violation::UpstreamFailure, &format!("no answer: {e}"));
                return Err(Rejection::UpstreamError);
            }
            Ok(Ok(response)) => response,
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body))
    }

    /// An answer where no response is due (a GET, a POST of notifications):
    /// a 2xx SSE stream is checked as it streams, anything else read whole.
    async fn whole_or_stream(
        &self,
        response: Response<Incoming>,
        session: &Arc<SessionState>,
        sent: Instant,
        resumed: bool,
        max_response: usize,
    ) -> Result<Response<BoxBody>, Rejection> {
        let (parts, body) = response.into_parts();
        if parts.status.is_success() && transport::is_event_stream(&parts.headers) {
            let answering = Answering::Stream { session: Arc::clone(session), resumed, max_response };
            return Ok(stream(parts, Guard::new(body, answering, self.inner.limits.max_message_size)));
        }
        self.whole(parts, body, session, sent).await
    }

    /// An answer read whole (error statuses, 202, DELETE's answer).
    async fn whole(
        &self,
        parts: http::response::Parts,
        body: Incoming,
        session: &SessionState,
        sent: Instant,
    ) -> Result<Response<BoxBody>, Rejection> {
        let status = parts.status;
        if status.is_redirection() || status.is_informational() {
            // Following it would take the client past the gateway.
            session.record(Violation::InvalidMessage, "a redirect");
            return Err(Rejection::UpstreamInvalidResponse);
        }
        let limits = &self.inner.limits;
        let bytes = match answer::read(body, limits.max_message_size, sent + limits.request_timeout).await {
            Ok(bytes) => bytes,
            Err(e) if status.is_server_error() => {
                session.record(Violation::UpstreamFailure, &format!("status {status}, body unread: {e:?}"));
                return Err(Rejection::UpstreamError);
            }
            Err(e) => return Err(read_failed(session, e, false)),
        };
        if status.is_server_error() {
            session.record(Violation::UpstreamFailure, &format!("status {status}"));
            if !answer::is_jsonrpc_error(&bytes) {
                return Err(Rejection::UpstreamError);
            }
        }
        Ok(Response::from_parts(parts, BoxBody::from(bytes)))
    }
}

/// The rejection for a whole answer that could not be read, counted.
fn read_failed(session: &SessionState, error: ReadError, batch: bool) -> Rejection {
    match error {
        ReadError::TooLarge => {
            let violation = if batch { Violation::ResponseTooLarge } else { Violation::MessageTooLarge };
            session.record(violation, "an answer over the upstream size cap");
            Rejection::UpstreamResponseTooLarge
        }
        ReadError::Timeout => {
            session.record(Violation::RequestTimeout, "the answer was not complete within upstream.timeout");
            Rejection::UpstreamTimeout
        }
        ReadError::Failed(e) => {
            session.record(Violation::UpstreamFailure, &format!("answer broken off: {e}"));
            Rejection::UpstreamError
        }
    }
}

fn stream(mut parts: http::response::Parts, body: Guard<Incoming>) -> Response<BoxBody> {
    sse::set_stream_headers(&mut parts.headers);
    // The guard may rewrite events: whatever length was declared no longer holds.
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, BoxBody::new(body))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Sends the upstream `notifications/cancelled` for a request the gateway
/// stopped waiting for, in the request's session, so a well-behaved
/// server stops working on it. Best effort, in the background.
#[derive(Debug)]
pub(super) struct Canceller {
    upstream: Arc<Inner>,
    /// The request's session, protocol version and method headers.
    headers: [Option<HeaderValue>; 3],
}

impl Canceller {
    fn new(upstream: &Arc<Inner>, headers: &HeaderMap) -> Self {
        let copy = |name: &HeaderName| headers.get(name).cloned();
        let headers = [copy(&MCP_SESSION_ID), copy(&MCP_PROTOCOL_VERSION), copy(&MCP_METHOD)];
        Canceller { upstream: Arc::clone(upstream), headers }
    }

    pub(super) fn cancel(&self, id: &RequestId) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let body = format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{},"reason":"timed out in mcp-guard"}}}}"#,
            id.as_json()
        );
        let mut request = Request::new(BoxBody::from(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.upstream.url.clone();
        let headers = request.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        let [session, version, method] = &self.headers;
        for (name, value) in [(&MCP_SESSION_ID, session), (&MCP_PROTOCOL_VERSION, version)] {
            if let Some(value) = value {
                headers.insert(name, value.clone());
            }
        }
        if method.is_some() {
            headers.insert(&MCP_METHOD, HeaderValue::from_static("notifications/cancelled"));
        }
        for (name, value) in &self.upstream.headers {
            headers.insert(name, value.clone());
        }
        let client = self.upstream.client.clone();
        runtime.spawn(async move {
            let _ = tokio::time::timeout(CANCEL_TIMEOUT, async move {
                if let Ok(response) = client.request(request).await {
                    // Read (a little of) the answer so the connection can be reused.
                    let _ = http_body_util::Limited::new(response.into_body(), 64 * 1024).collect().await;
                }
            })
            .await;
        });
    }
}

impl Upstream for HttpUpstream {
    fn kind(&self) -> &'static str {
        "http"
    }

    async fn handle(&self, req: Request<BoxBody>) -> Response<BoxBody> {
        let result = match *req.method() {
            Method::POST => self.post(req).await,
            Method::GET => self.get(req).await,
            Method::DELETE => self.delete(req).await,
            _ => Err(Rejection::MethodNotAllowed),
        };
        result.unwrap_or_else(Rejection::into_response)
    }

    async fn ready(&self) -> Result<(), String> {
        // Reachability, not health: a TCP connect within the connect timeout.
        let url = &self.inner.url;
        let authority = url.authority().map(|a| a.as_str()).unwrap_or_default();
        let port = url.port_u16().unwrap_or(80);
        let host = url.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect((host, port))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("upstream {authority} unreachable: {e}")),
            Err(_) => Err(format!("upstream {authority} did not accept a connection within 2s")),
        }
    }

    async fn shutdown(&self) {}
}

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers, including any a `Connection` header names.
/// `Transfer-Encoding` goes too: hyper frames the body for its own hop.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("mcp-session-id", "abc"),
            ("last-event-id", "7"),
            ("content-type", "application/json"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "last-event-id", "mcp-session-id"]);
    }
}
