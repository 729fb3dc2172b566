//! A stdio MCP server behind the gateway: one child process per session.
//!
//! The gateway is the Streamable HTTP server here. `initialize` without a
//! session starts a child and issues a session id; every request after it
//! names the session. Requests are answered over an SSE stream that carries
//! the child's progress notifications and its own requests (sampling,
//! elicitation, roots) before the response; the client's answers to those
//! come back as POSTs and go to the child's stdin. DELETE, an idle timeout,
//! the child's exit, or shutdown end a session; its id is then unknown (404).
//!
//! The child is as untrusted as the client: whatever it does (garbage,
//! floods, silence, answers to nobody, questions nobody answers) is bounded
//! by `[upstream]` limits, stays within its own session, and is counted in
//! `mcp_guard_upstream_violations_total{upstream="stdio"}`. Nothing that
//! serves every session (the reaper, `end`) ever waits on one session's
//! channels.

mod child;
mod inbound;
mod lines;
mod server_requests;
mod session;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use mcp_guard_layers::{
    Rejection, body_limit,
    jsonrpc::{self, Inspection, MessageKind, RequestId},
    rejection::code,
    transport::MCP_SESSION_ID,
};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::task::TaskTracker;

use self::session::{PostStream, Refused, Session, error_response};
use super::{Upstream, violation::Violation};
use crate::{
    body::BoxBody,
    config::StdioConfig,
    session_id::new_session_id,
    sse::{self, SseBody},
};

/// The `upstream` label of this transport's logs and metrics.
const KIND: &str = "stdio";

/// Messages buffered per HTTP stream before the child waits for the client.
const STREAM_BUFFER: usize = 64;
/// Messages buffered for a child's stdin.
const STDIN_BUFFER: usize = 64;
const KEEP_ALIVE: Duration = Duration::from_secs(15);
const REAPER_TICK: Duration = Duration::from_secs(1);
/// How long an error the gateway owes a client may wait for room on a
/// stream the client is not reading.
const LATE_ANSWER: Duration = Duration::from_secs(30);

/// The stdio upstream.
#[derive(Debug)]
pub struct StdioUpstream {
    shared: Arc<Shared>,
}

/// State shared with the per-session tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    config: StdioConfig,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Sessions counted against the cap, including ones still spawning.
    reserved: AtomicUsize,
    tracker: TaskTracker,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Shared {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lookup(&self, id: Option<&HeaderValue>) -> Result<Arc<Session>, Rejection> {
        let id = id.ok_or(Rejection::SessionRequired)?.to_str().map_err(|_| Rejection::SessionNotFound)?;
        self.sessions().get(id).filter(|s| !s.ended.is_cancelled()).cloned().ok_or(Rejection::SessionNotFound)
    }

    /// Ends a session once: forgets its id, frees its slot, stops its child,
    /// and answers every request still waiting with a JSON-RPC error.
    pub(crate) fn end(&self, session: &Session, why: &str) {
        let removed = {
            let mut sessions = self.sessions();
            match sessions.get(&session.id) {
                Some(s) if std::ptr::eq(Arc::as_ptr(s), session) => sessions.remove(&session.id).is_some(),
                _ => false,
            }
        };
        if !removed {
            return;
        }
        self.reserved.fetch_sub(1, Ordering::AcqRel);
        session.ended.cancel();
        for (id, stream) in session.drain() {
            let error =
                error_response(&id, code::INTERNAL_ERROR, "The upstream MCP server session ended", "upstream_exited");
            self.answer(stream, error);
        }
        tracing::info!(target: "mcp_guard::upstream::stdio", session = session.short_id(), reason = why, "session_ended");
    }

    fn reserve(&self) -> Result<(), Rejection> {
        let max = self.config.max_sessions;
        self.reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map(drop)
            .map_err(|_| Rejection::TooManySessions)
    }

    async fn create_session(self: &Arc<Self>) -> Result<Arc<Session>, Rejection> {
        if self.shutdown.is_cancelled() {
            return Err(Rejection::ShuttingDown);
        }
        self.reserve()?;
        let child = match child::spawn(&self.config) {
            Ok(child) => child,
            Err(e) => {
                self.reserved.fetch_sub(1, Ordering::AcqRel);
                tracing::error!(target: "mcp_guard::upstream::stdio", program = %self.config.argv[0], error = %e, "upstream_spawn_failed");
                return Err(Rejection::UpstreamUnavailable);
            }
        };
        let pid = child.id();
        let (to_child, from_gateway) = mpsc::channel(STDIN_BUFFER);
        let session = Arc::new(Session::new(new_session_id(), to_child, self.config.limits.clone()));
        self.sessions().insert(session.id.clone(), Arc::clone(&session));
        child::run(self, &session, child, from_gateway);
        tracing::info!(target: "mcp_guard::upstream::stdio", session = session.short_id(), pid, "session_started");
        Ok(session)
    }

    async fn post(self: &Arc<Self>, mut req: Request<BoxBody>) -> Result<Response<BoxBody>, Rejection> {
        let header = req.headers().get(&MCP_SESSION_ID).cloned();
        // The pipeline's inspection layer has read and classified the body;
        // parse here only when used without it.
        let inspected = req.extensions_mut().remove::<Inspection>();
        let body = read_body(req.into_body(), self.config.limits.max_message_size).await?;
        let inspection = match inspected {
            Some(inspection) => inspection,
            None => jsonrpc::inspect(&body, jsonrpc::Limits::default())?,
        };
        let (session, created) = match (header.is_some(), inspection.initialize().is_some()) {
            (true, true) => return Err(Rejection::InitializeInSession),
            (false, true) => (self.create_session().await?, true),
            (_, false) => (self.lookup(header.as_ref())?, false),
        };
        session.touch();
        let result = self.forward(&session, &body, &inspection).await;
        if created && result.is_err() {
            self.end(&session, "initialize could not be forwarded");
        }
        let mut response = result?;
        if created {
            // Hex only: always a valid header value.
            if let Ok(value) = HeaderValue::from_str(&session.id) {
                response.headers_mut().insert(&MCP_SESSION_ID, value);
            }
        }
        Ok(response)
    }

    /// Writes the body's messages to the child. Requests are answered on a
    /// new SSE stream; a body of only notifications and responses gets 202.
    /// A client's response goes on only to a request the child still waits
    /// on (see `server_requests.rs`); any other is dropped.
    async fn forward(
        &self,
        session: &Session,
        body: &Bytes,
        inspection: &Inspection,
    ) -> Result<Response<BoxBody>, Rejection> {
        let requests: Vec<(RequestId, Option<Box<str>>)> = inspection
            .messages
            .iter()
            .filter(|m| m.kind == MessageKind::Request)
            .filter_map(|m| Some((m.id.clone()?, m.progress_token.clone())))
            .collect();
        let stream = if requests.is_empty() {
            None
        } else {
            let (tx, rx) = mpsc::channel(STREAM_BUFFER);
            match session.register(&requests, &PostStream::new(tx)) {
                Ok(()) => {}
                Err(Refused::Duplicate(_)) => return Err(Rejection::DuplicateRequestId),
                Err(Refused::TooMany) => {
                    session.violation(Violation::TooManyPending, "over upstream.max_pending_per_session");
                    return Err(Rejection::TooManyPendingRequests);
                }
            }
            // Only the pending entries hold the sender now: the stream ends
            // when the last of them is answered.
            Some(rx)
        };
        for message in &inspection.messages {
            if message.kind == MessageKind::Response
                && !message.id.as_ref().is_some_and(|id| session.server_requests.answered(id))
            {
                tracing::debug!(target: "mcp_guard::upstream::stdio", session = session.short_id(), "client_response_unmatched");
                continue;
            }
            let line = one_line(&body[message.span.clone()]);
            // A child that stopped reading its stdin fails the POST after the
            // request timeout instead of holding it open for ever.
            let failure =
                match tokio::time::timeout(self.config.limits.request_timeout, session.send_to_child(line)).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(())) => Rejection::SessionNotFound,
                    Err(_) => {
                        session.violation(Violation::RequestTimeout, "stdin not read within upstream.timeout");
                        Rejection::UpstreamTimeout
                    }
                };
            let ids: Vec<RequestId> = requests.into_iter().map(|(id, _)| id).collect();
            session.unregister(&ids);
            return Err(failure);
        }
        Ok(match stream {
            Some(rx) => sse::response(SseBody::new(rx, KEEP_ALIVE)),
            None => empty(StatusCode::ACCEPTED),
        })
    }

    fn get(&self, req: &Request<BoxBody>) -> Result<Response<BoxBody>, Rejection> {
        let session = self.lookup(req.headers().get(&MCP_SESSION_ID))?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let backlog = session.open_standalone(tx.clone()).ok_or(Rejection::StreamConflict)?;
        for message in backlog {
            // The channel is new and the backlog no longer than its buffer.
            let _ = tx.try_send(message);
        }
        session.touch();
        Ok(sse::response(SseBody::new(rx, KEEP_ALIVE)))
    }

    fn delete(&self, req: &Request<BoxBody>) -> Result<Response<BoxBody>, Rejection> {
        let session = self.lookup(req.headers().get(&MCP_SESSION_ID))?;
        self.end(&session, "deleted by client");
        Ok(empty(StatusCode::OK))
    }

    /// Times out overdue requests and ends idle sessions, once a tick.
    async fn reap(self: Arc<Self>) {
        let mut tick = tokio::time::interval(REAPER_TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.shutdown.cancelled() => return,
            }
            let now = Instant::now();
            let sessions: Vec<Arc<Session>> = self.sessions().values().cloned().collect();
            for session in sessions {
                self.expire(&session, now);
                if session.is_idle(now, self.config.idle_timeout) {
                    self.end(&session, "idle timeout");
                }
            }
        }
    }

    /// Answers the requests of `session` that outlived their timeouts: the
    /// client's with an error to the client (and `notifications/cancelled`
    /// to the child), the child's with an error to the child. Never waits.
    fn expire(&self, session: &Session, now: Instant) {
        for (id, stream) in session.expire(now) {
            session.violation(Violation::RequestTimeout, "no response within upstream.timeout");
            let error = error_response(
                &id,
                code::INTERNAL_ERROR,
                "The upstream MCP server did not answer in time",
                "upstream_timeout",
            );
            self.answer(stream, error);
            let cancel = format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{},"reason":"timed out in mcp-guard"}}}}"#,
                id.as_json()
            );
            // Best effort: a child that stopped reading gains nothing from it.
            session.try_send_to_child(Bytes::from(cancel));
        }
        for id in session.server_requests.expire(now) {
            session
                .violation(Violation::ServerRequestTimeout, "no client answer within upstream.server_request_timeout");
            session.answer_child(&id, "The client did not answer in time", "client_timeout");
        }
    }

    /// Sends an error the gateway owes a client on that request's stream.
    /// A full stream (a client not reading) gets it from a task of its own,
    /// bounded, so the caller never waits on one client.
    fn answer(&self, stream: mpsc::Sender<Bytes>, error: Bytes) {
        let Err(TrySendError::Full(error)) = stream.try_send(error) else { return };
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                // An Err means the client went away meanwhile.
                _ = stream.send(error) => {}
                () = tokio::time::sleep(LATE_ANSWER) => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}

impl StdioUpstream {
    /// A stdio upstream; starts its reaper task.
    pub fn new(config: StdioConfig) -> Self {
        let shared = Arc::new(Shared {
            config,
            sessions: Mutex::new(HashMap::new()),
            reserved: AtomicUsize::new(0),
            tracker: TaskTracker::new(),
            shutdown: tokio_util::sync::CancellationToken::new(),
        });
        shared.tracker.spawn(Arc::clone(&shared).reap());
        StdioUpstream { shared }
    }
}

impl Upstream for StdioUpstream {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn handle(&self, req: Request<BoxBody>) -> Response<BoxBody> {
        let result = match *req.method() {
            Method::POST => self.shared.post(req).await,
            Method::GET => self.shared.get(&req),
            Method::DELETE => self.shared.delete(&req),
            _ => Err(Rejection::MethodNotAllowed),
        };
        result.unwrap_or_else(Rejection::into_response)
    }

    fn session_count(&self) -> Option<usize> {
        Some(self.shared.sessions().len())
    }

    async fn ready(&self) -> Result<(), String> {
        if self.shared.shutdown.is_cancelled() {
            return Err("shutting down".into());
        }
        let open = self.shared.reserved.load(Ordering::Acquire);
        if open >= self.shared.config.max_sessions {
            return Err(format!("session cap reached ({open} of {})", self.shared.config.max_sessions));
        }
        child::spawnable(&self.shared.config.argv[0])
    }

    async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        let sessions: Vec<Arc<Session>> = self.shared.sessions().values().cloned().collect();
        for session in &sessions {
            self.shared.end(session, "gateway shutting down");
        }
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
        tracing::info!(target: "mcp_guard::upstream::stdio", sessions = sessions.len(), "stdio_upstream_stopped");
    }
}

/// A message as one stdin line: a JSON text has CR/LF only as whitespace.
fn one_line(json: &[u8]) -> Bytes {
    if json.iter().any(|&b| b == b'\n' || b == b'\r') {
        json.iter().map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }).collect::<Vec<u8>>().into()
    } else {
        Bytes::copy_from_slice(json)
    }
}

async fn read_body(body: BoxBody, max: usize) -> Result<Bytes, Rejection> {
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if body_limit::is_limit_error(&*e) => Err(Rejection::RequestTooLarge),
        Err(_) => Err(Rejection::InvalidMessage),
    }
}

fn empty(status: StatusCode) -> Response<BoxBody> {
    let mut response = Response::new(BoxBody::empty());
    *response.status_mut() = status;
    response
}
