//! The body of an SSE answer from the HTTP upstream, checked event by event.
//!
//! [`Guard`] sits between the upstream's stream and everything after it
//! (the policy layer's list filter, the client). Each event is parsed once:
//!
//! - one event over `max_message_size` is dropped (the parser skips it);
//! - data that is not a JSON-RPC message is dropped, and so is a response
//!   to an id no request of this stream waits for;
//! - a server-to-client request passes while the session has fewer than
//!   `max_server_requests_per_session` unanswered, else it is dropped;
//! - a POST's answer is capped at `max_response_size` bytes in all;
//! - a request not answered within `request_timeout` (restarted by each of
//!   its progress notifications, up to `max_request_duration`) gets a
//!   JSON-RPC error event, and the upstream a `notifications/cancelled`.
//!
//! Whenever the stream stops early (a cap, a reset, a stream that ends
//! without the answers) every request still waiting gets an error event:
//! a client is never left waiting on a stream that silently ended. The one
//! exception is a stream that carried event ids and ended cleanly: the
//! client can resume it (`Last-Event-ID`), as a 2025-11-25 server that
//! closes streams to make clients poll expects.
//!
//! A chunk that holds whole events, all kept, is passed on as the same
//! bytes (no copy, `id:`/`event:`/`retry:` untouched). Otherwise the kept
//! events are written anew with their `event`, `id` and `retry` fields, and
//! the last event id is repeated on its own when a dropped event carried
//! it, so `Last-Event-ID` resumption still starts where the client stopped.
//! Keep-alive comments pass in whole chunks. Once every request of a POST
//! is answered the stream ends; the server should end it anyway.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use mcp_guard_layers::{
    jsonrpc::{MessageKind, RequestId, classify_message},
    rejection::code,
    sse::{SseEvent, SseParser, StreamStart},
};
use tokio::time::{Instant, Sleep};

use super::{
    Canceller,
    pending::{Permit, SessionState},
};
use crate::upstream::violation::Violation;
use std::sync::Arc;

/// Frames read in one poll without anything to pass on before yielding, so
/// a flood of dropped events cannot hold the task.
const MAX_IDLE_FRAMES: usize = 32;

/// How long, and how many bytes, the end of an answered stream is awaited.
const DRAIN_GRACE: Duration = Duration::from_secs(1);
const DRAIN_LIMIT: usize = 64 * 1024;

/// A request of the POST, waiting for its response on this stream.
#[derive(Debug)]
pub(super) struct Waiting {
    pub(super) id: RequestId,
    /// `params._meta.progressToken`, as JSON text.
    pub(super) progress_token: Option<Box<str>>,
    /// `initialize` must not be cancelled.
    pub(super) cancellable: bool,
    deadline: Instant,
    hard_deadline: Instant,
}

impl Waiting {
    /// A request sent at `sent`: it may wait `timeout` from then (restarted
    /// by progress), and `max_duration` in all.
    pub(super) fn new(
        id: RequestId,
        progress_token: Option<Box<str>>,
        cancellable: bool,
        sent: Instant,
        (timeout, max_duration): (Duration, Duration),
    ) -> Self {
        let hard_deadline = sent + max_duration;
        Waiting { id, progress_token, cancellable, deadline: (sent + timeout).min(hard_deadline), hard_deadline }
    }
}

impl std::borrow::Borrow<RequestId> for Waiting {
    fn borrow(&self) -> &RequestId {
        &self.id
    }
}

/// What the stream answers.
#[derive(Debug)]
pub(super) enum Answering {
    /// A POST: its requests, the session slots they hold, and the caps.
    Post {
        waiting: Vec<Waiting>,
        permit: Permit,
        max_response: usize,
        request_timeout: Duration,
        cancel: Option<Canceller>,
    },
    /// A GET (the session's standalone stream) or a POST of only
    /// notifications; `resumed` when it replays an earlier stream
    /// (`Last-Event-ID`), whose responses the gateway cannot check.
    Stream { session: Arc<SessionState>, resumed: bool, max_response: usize },
}

/// Why events were dropped, for the error sent to requests left waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dropped {
    TooLarge,
    Invalid,
}

/// An upstream SSE body, checked. Its own errors end it cleanly.
pub(super) struct Guard<B> {
    inner: Option<B>,
    state: Box<State>,
}

struct State {
    parser: SseParser,
    events: Vec<SseEvent>,
    keep: Vec<bool>,
    start: StreamStart,
    session: Arc<SessionState>,
    permit: Option<Permit>,
    waiting: Vec<Waiting>,
    /// A POST with requests: the stream ends once they are all answered.
    answers_requests: bool,
    request_timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    received: usize,
    max_response: usize,
    responses_pass: bool,
    dropped: Option<Dropped>,
    cancel: Option<Canceller>,
    /// Sent before the stream ends or the next frame.
    tail: Option<Bytes>,
    /// Every request is answered: end at the next poll.
    closing: bool,
}

impl<B> fmt::Debug for Guard<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard").field("waiting", &self.state.waiting.len()).finish_non_exhaustive()
    }
}

impl<B> Guard<B> {
    pub(super) fn new(inner: B, answering: Answering, max_message_size: usize) -> Self {
        let mut state = State {
            parser: SseParser::new(max_message_size),
            events: Vec::new(),
            keep: Vec::new(),
            start: StreamStart::default(),
            session: Arc::clone(match &answering {
                Answering::Post { permit, .. } => permit.session(),
                Answering::Stream { session, .. } => session,
            }),
            permit: None,
            waiting: Vec::new(),
            answers_requests: false,
            request_timeout: Duration::ZERO,
            timer: None,
            received: 0,
            max_response: usize::MAX,
            responses_pass: false,
            dropped: None,
            cancel: None,
            tail: None,
            closing: false,
        };
        match answering {
            Answering::Post { waiting, permit, max_response, request_timeout, cancel } => {
                state.answers_requests = !waiting.is_empty();
                state.timer = waiting.iter().map(|w| w.deadline).min().map(|at| Box::pin(tokio::time::sleep_until(at)));
                state.waiting = waiting;
                state.permit = Some(permit);
                state.max_response = max_response;
                state.request_timeout = request_timeout;
                state.cancel = cancel;
            }
            Answering::Stream { resumed, max_response, .. } => {
                state.responses_pass = resumed;
                state.max_response = max_response;
            }
        }
        Guard { inner: Some(inner), state: Box::new(state) }
    }
}

impl<B> Body for Guard<B>
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: fmt::Display,
{
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let state = &mut *this.state;
        for _ in 0..MAX_IDLE_FRAMES {
            if let Some(tail) = state.tail.take() {
                return Poll::Ready(Some(Ok(Frame::data(tail))));
            }
            let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
            if state.closing {
                // The client's answer ends here. The upstream's end, if not
                // already here, is awaited apart so its connection goes back
                // to the pool instead of being closed.
                if !matches!(Pin::new(&mut *inner).poll_frame(cx), Poll::Ready(None))
                    && let (Some(inner), Ok(runtime)) = (this.inner.take(), tokio::runtime::Handle::try_current())
                {
                    runtime.spawn(drain(inner));
                }
                this.inner = None;
                return Poll::Ready(None);
            }
            if let Some(errors) = state.poll_timer(cx) {
                if state.all_answered() {
                    this.inner = None;
                }
                return Poll::Ready(Some(Ok(Frame::data(errors))));
            }
            let frame = match Pin::new(inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(end) => {
                    let error = end.and_then(Result::err).map(|e| e.to_string());
                    this.inner = None;
                    state.tail = state.upstream_ended(error.as_deref());
                    continue;
                }
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
            };
            let (out, stop) = state.on_data(data);
            if stop {
                this.inner = None;
            } else if state.all_answered() {
                state.closing = true;
            }
            if let Some(out) = out {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_none() && self.state.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Reads what an upstream sends after its last answer, briefly and
/// boundedly, so its connection can be reused.
async fn drain<B: Body<Data = Bytes> + Unpin>(mut body: B) {
    let mut read = 0usize;
    let _ = tokio::time::timeout(DRAIN_GRACE, async {
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, Bytes::len);
            if read > DRAIN_LIMIT {
                return;
            }
        }
    })
    .await;
}

impl State {
    fn all_answered(&self) -> bool {
        self.answers_requests && self.waiting.is_empty()
    }

    /// The bytes to pass on for one chunk, and whether to stop reading.
    fn on_data(&mut self, data: Bytes) -> (Option<Bytes>, bool) {
        self.received = self.received.saturating_add(data.len());
        if self.received > self.max_response {
            self.session.record(Violation::ResponseTooLarge, "an SSE answer exceeded upstream.max_response_size");
            self.dropped = Some(Dropped::TooLarge);
            return (self.fail_waiting(Dropped::TooLarge.reason(), Dropped::TooLarge.message()), true);
        }
        let aligned = self.parser.at_event_boundary();
        let upstream_start = self.start.read(&data);
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let mut clean = true;
        if self.parser.feed(&data, &mut events).is_err() {
            self.session.record(Violation::MessageTooLarge, "an SSE event exceeded upstream.max_message_size");
            self.dropped = Some(Dropped::TooLarge);
            clean = false;
        }
        self.keep.clear();
        for event in &events {
            let keep = self.check(event);
            self.keep.push(keep);
            clean &= keep;
        }
        let out = if clean && aligned && self.parser.at_event_boundary() {
            (!data.is_empty()).then(|| self.start.pass_through(data, upstream_start))
        } else {
            let out = self.reencode(&events);
            if out.is_some() {
                self.start.sent();
            }
            out
        };
        self.events = events;
        (out, false)
    }

    /// The kept events written anew, and the id of a dropped event when it
    /// is the last id (the client must resume after it, not before).
    fn reencode(&self, events: &[SseEvent]) -> Option<Bytes> {
        let mut out = BytesMut::new();
        for (event, keep) in events.iter().zip(&self.keep) {
            if *keep {
                event.encode_with_data(event.data.as_bytes(), &mut out);
            }
        }
        let last_with_id = events.iter().zip(&self.keep).rev().find(|(event, _)| event.id.is_some());
        if let Some((SseEvent { id: Some(id), .. }, false)) = last_with_id {
            // An id-only block: sets the client's last event id, dispatches nothing.
            out.extend_from_slice(b"id: ");
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(b"\n\n");
        }
        (!out.is_empty()).then(|| out.freeze())
    }

    /// Whether an event is passed on; counts and handles what it carries.
    fn check(&mut self, event: &SseEvent) -> bool {
        if event.data.trim().is_empty() {
            // A priming event (an id, empty data) for resumption.
            return true;
        }
        let info = match classify_message(&event.data) {
            Ok(info) => info,
            Err(_) => {
                self.session.record(Violation::InvalidMessage, "an SSE event that is not a JSON-RPC message");
                self.dropped = Some(Dropped::Invalid);
                return false;
            }
        };
        match (info.kind, info.id) {
            (MessageKind::Response, Some(id)) => self.response(&id),
            (MessageKind::Request, Some(id)) => match self.session.server_request(id) {
                Ok(()) => true,
                Err(violation) => {
                    self.session.record(violation, "a server-to-client request over the session's cap");
                    false
                }
            },
            (MessageKind::Notification, _) => {
                if info.method.as_deref() == Some("notifications/progress")
                    && let Some(token) = &info.progress_token
                {
                    self.progress(token);
                }
                true
            }
            _ => false,
        }
    }

    fn response(&mut self, id: &RequestId) -> bool {
        if let Some(at) = self.waiting.iter().position(|w| w.id == *id) {
            self.waiting.swap_remove(at);
            if let Some(permit) = &mut self.permit {
                permit.release_one();
            }
            self.rearm();
            true
        } else if self.responses_pass {
            true
        } else {
            self.session.record(Violation::UnsolicitedResponse, "a response to an id this stream does not wait for");
            self.dropped.get_or_insert(Dropped::Invalid);
            false
        }
    }

    /// Progress for a waiting request restarts its clock, within its hard limit.
    fn progress(&mut self, token: &str) {
        let now = Instant::now();
        let mut restarted = false;
        for w in &mut self.waiting {
            if w.progress_token.as_deref() == Some(token) {
                w.deadline = (now + self.request_timeout).min(w.hard_deadline);
                restarted = true;
            }
        }
        if restarted {
            self.rearm();
        }
    }

    /// Points the timer at the earliest deadline still waiting.
    fn rearm(&mut self) {
        if let (Some(timer), Some(at)) = (self.timer.as_mut(), self.waiting.iter().map(|w| w.deadline).min()) {
            timer.as_mut().reset(at);
        }
    }

    /// Error events for the requests whose time is up, if any.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Option<Bytes> {
        let mut out = BytesMut::new();
        while !self.waiting.is_empty() {
            let Some(timer) = self.timer.as_mut() else { break };
            if timer.as_mut().poll(cx).is_pending() {
                break;
            }
            let now = Instant::now();
            let mut at = 0;
            while at < self.waiting.len() {
                if self.waiting[at].deadline > now {
                    at += 1;
                    continue;
                }
                let overdue = self.waiting.swap_remove(at);
                if let Some(permit) = &mut self.permit {
                    permit.release_one();
                }
                self.session.record(Violation::RequestTimeout, "a request was not answered within upstream.timeout");
                if let (true, Some(cancel)) = (overdue.cancellable, &self.cancel) {
                    cancel.cancel(&overdue.id);
                }
                out.extend_from_slice(&error_event(
                    &overdue.id,
                    "upstream_timeout",
                    "The upstream MCP server did not answer in time",
                ));
            }
            // Polled again at the loop's top: a reset timer must be polled to wake.
            self.rearm();
        }
        (!out.is_empty()).then(|| out.freeze())
    }

    /// The upstream's stream ended, cleanly or with `error`.
    fn upstream_ended(&mut self, error: Option<&str>) -> Option<Bytes> {
        if let Some(error) = error {
            self.session.record(Violation::UpstreamFailure, error);
        }
        if self.waiting.is_empty() {
            return None;
        }
        let resumable = !self.parser.last_event_id().is_empty();
        match (error, self.dropped) {
            (None, None) if resumable => return None,
            (None, None) => {
                self.session.record(Violation::UpstreamFailure, "the SSE answer ended before every response");
            }
            _ => {}
        }
        match self.dropped {
            Some(dropped) => self.fail_waiting(dropped.reason(), dropped.message()),
            None => self.fail_waiting("upstream_error", "The upstream MCP server failed before answering"),
        }
    }

    /// An error event for every request still waiting, which then waits no more.
    fn fail_waiting(&mut self, reason: &str, message: &str) -> Option<Bytes> {
        let mut out = BytesMut::new();
        for waiting in self.waiting.drain(..) {
            if let Some(permit) = &mut self.permit {
                permit.release_one();
            }
            out.extend_from_slice(&error_event(&waiting.id, reason, message));
        }
        (!out.is_empty()).then(|| out.freeze())
    }
}

impl Dropped {
    fn reason(self) -> &'static str {
        match self {
            Dropped::TooLarge => "upstream_response_too_large",
            Dropped::Invalid => "upstream_invalid_response",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Dropped::TooLarge => "The upstream MCP server's answer is too large",
            Dropped::Invalid => "The upstream MCP server's answer is not valid JSON-RPC",
        }
    }
}

/// A JSON-RPC error response for `id`, as an SSE event. The code is the
/// one the gateway's own upstream rejections use; `data.reason` tells them
/// apart (stdio's timeouts read the same).
pub(super) fn error_event(id: &RequestId, reason: &str, message: &str) -> Bytes {
    let json = format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{},"message":"{message}","data":{{"reason":"{reason}"}}}}}}"#,
        id.as_json(),
        code::INTERNAL_ERROR,
    );
    crate::sse::message_event(json.as_bytes())
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
