//! One stdio session: a child process and the routing table that sends each
//! message it writes to the HTTP stream waiting for it.
//!
//! Routing rules, in order:
//! 1. A response goes to the stream of the POST that sent its request id.
//! 2. A progress notification goes to the stream of the request that
//!    carried its `progressToken`, and restarts that request's timeout.
//! 3. Anything else the server sends (sampling, elicitation and roots
//!    requests, log and list-changed notifications) goes to the newest
//!    POST stream still open: the spec asks that such messages relate to the
//!    originating request, and while a tool call is in flight that is the one.
//!    With no POST stream open it goes to the session's GET stream, and with
//!    none of those it waits in a small backlog for the next GET.
//!
//! Every table here is bounded: pending requests by
//! `upstream.max_pending_per_session`, the backlog by [`BACKLOG`], the
//! child's open requests to the client by [`ServerRequests`], and the bytes
//! of each POST stream by `upstream.max_response_size` ([`PostStream`]).

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use mcp_guard_layers::{jsonrpc::RequestId, rejection::code};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::server_requests::ServerRequests;
use crate::{
    config::UpstreamLimits,
    session_id,
    upstream::violation::{Violation, ViolationLog},
};

/// Messages kept for a GET stream that is not open yet.
const BACKLOG: usize = 64;
/// Requests the gateway answered itself (timed out, over budget), kept so a
/// late answer from the child is recognised as late rather than unsolicited.
const ABANDONED: usize = 64;

/// The SSE stream answering one POST, shared by the requests it carries,
/// with the bytes sent on it so far.
#[derive(Clone, Debug)]
pub(crate) struct PostStream {
    pub(crate) tx: mpsc::Sender<Bytes>,
    sent: Arc<AtomicUsize>,
}

impl PostStream {
    pub(crate) fn new(tx: mpsc::Sender<Bytes>) -> Self {
        PostStream { tx, sent: Arc::new(AtomicUsize::new(0)) }
    }

    /// Counts `len` more bytes; false once the stream's total passes `max`.
    pub(crate) fn charge(&self, len: usize, max: usize) -> bool {
        self.sent.fetch_add(len, Ordering::Relaxed).saturating_add(len) <= max
    }

    fn same(&self, other: &PostStream) -> bool {
        Arc::ptr_eq(&self.sent, &other.sent)
    }
}

/// A request waiting for the child's response.
#[derive(Debug)]
struct Pending {
    stream: PostStream,
    progress_token: Option<Box<str>>,
    /// Order of arrival, to find the newest open POST stream.
    seq: u64,
    /// When it was sent: progress extends the deadline up to this plus
    /// `max_request_duration`, never further.
    since: Instant,
    deadline: Instant,
}

#[derive(Debug, Default)]
struct Routes {
    pending: HashMap<RequestId, Pending>,
    progress: HashMap<Box<str>, RequestId>,
    standalone: Option<mpsc::Sender<Bytes>>,
    backlog: VecDeque<Bytes>,
    abandoned: VecDeque<RequestId>,
    seq: u64,
    last_seen: Option<Instant>,
}

impl Routes {
    /// Takes a request the gateway answers itself.
    fn abandon(&mut self, id: &RequestId) -> Option<Pending> {
        let pending = self.take(id)?;
        if self.abandoned.len() == ABANDONED {
            self.abandoned.pop_front();
        }
        self.abandoned.push_back(id.clone());
        Some(pending)
    }

    /// Stops tracking a request, and its progress token with it.
    fn take(&mut self, id: &RequestId) -> Option<Pending> {
        let pending = self.pending.remove(id)?;
        if let Some(token) = &pending.progress_token {
            self.progress.remove(token);
        }
        Some(pending)
    }
}

/// Where a message from the child should go.
#[derive(Debug)]
pub(crate) enum Route {
    /// A POST's stream, which counts what it carries.
    Post(PostStream),
    /// The session's GET stream.
    Standalone(mpsc::Sender<Bytes>),
    /// Parked until a GET stream opens.
    Backlogged,
    /// Nowhere: the backlog is full.
    Dropped,
}

/// Why the requests of a POST were not registered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// This id is already waiting for a response.
    Duplicate(RequestId),
    /// They would take the session past `max_pending_per_session`.
    TooMany,
}

/// One session: id, the child's stdin, and the routing table.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: String,
    to_child: mpsc::Sender<Bytes>,
    routes: Mutex<Routes>,
    pub(crate) limits: UpstreamLimits,
    /// The child's own requests to the client that wait for an answer.
    pub(crate) server_requests: ServerRequests,
    /// Per session, so one flooding child cannot crowd the others out of the log.
    violations: ViolationLog,
    /// Cancelled when the session ends, for whatever reason.
    pub(crate) ended: CancellationToken,
}

impl Session {
    pub(crate) fn new(id: String, to_child: mpsc::Sender<Bytes>, limits: UpstreamLimits) -> Self {
        let routes = Routes { last_seen: Some(Instant::now()), ..Routes::default() };
        Session {
            id,
            to_child,
            routes: Mutex::new(routes),
            server_requests: ServerRequests::new(limits.max_server_requests_per_session, limits.server_request_timeout),
            limits,
            violations: ViolationLog::default(),
            ended: CancellationToken::new(),
        }
    }

    pub(crate) fn short_id(&self) -> &str {
        session_id::short(&self.id)
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        // A panic while holding this lock would be a bug in this module; the
        // table is still consistent (every mutation is a single insert or
        // remove), so recover the guard instead of cascading the panic.
        self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends one message (a single line of JSON) to the child's stdin.
    pub(crate) async fn send_to_child(&self, line: Bytes) -> Result<(), ()> {
        self.to_child.send(line).await.map_err(|_| ())
    }

    /// Sends a message of the gateway's own to the child if its stdin has
    /// room, never waiting: the callers (the stdout reader, the reaper) must
    /// not stall on a child that stopped reading. False when not sent.
    pub(crate) fn try_send_to_child(&self, line: Bytes) -> bool {
        self.to_child.try_send(line).is_ok()
    }

    /// Tells the child that the client will not answer its request `id`:
    /// a JSON-RPC error in the client's stead, sent only if stdin has room.
    pub(crate) fn answer_child(&self, id: &RequestId, message: &str, reason: &str) {
        if !self.try_send_to_child(error_response(id, code::INTERNAL_ERROR, message, reason)) {
            tracing::debug!(target: "mcp_guard::upstream::stdio", session = self.short_id(), reason, "upstream_answer_dropped");
        }
    }

    /// Counts what this session's child (or client) did wrong; logged at
    /// most once per interval for the session.
    pub(crate) fn violation(&self, violation: Violation, detail: &str) {
        self.violations.record(super::KIND, violation, Some(self.short_id()), detail);
    }

    pub(crate) fn touch(&self) {
        self.routes().last_seen = Some(Instant::now());
    }

    /// Registers requests of one POST, all answered on `stream`. Fails,
    /// registering none, on an id already in flight (or twice in the POST)
    /// or when the session would have more than `max_pending_per_session`.
    pub(crate) fn register(
        &self,
        requests: &[(RequestId, Option<Box<str>>)],
        stream: &PostStream,
    ) -> Result<(), Refused> {
        let mut routes = self.routes();
        if routes.pending.len().saturating_add(requests.len()) > self.limits.max_pending_per_session {
            return Err(Refused::TooMany);
        }
        let repeated = |i: usize, id: &RequestId| requests.iter().take(i).any(|(seen, _)| seen == id);
        if let Some((dup, _)) = requests
            .iter()
            .enumerate()
            .find(|(i, (id, _))| routes.pending.contains_key(id) || repeated(*i, id))
            .map(|(_, r)| r)
        {
            return Err(Refused::Duplicate(dup.clone()));
        }
        let since = Instant::now();
        let deadline = since + self.limits.request_timeout;
        for (id, token) in requests {
            routes.seq += 1;
            let seq = routes.seq;
            if let Some(token) = token {
                routes.progress.insert(token.clone(), id.clone());
            }
            let pending = Pending { stream: stream.clone(), progress_token: token.clone(), seq, since, deadline };
            routes.pending.insert(id.clone(), pending);
        }
        Ok(())
    }

    /// Unregisters requests that could not be written to the child.
    pub(crate) fn unregister(&self, ids: &[RequestId]) {
        let mut routes = self.routes();
        for id in ids {
            routes.take(id);
        }
    }

    /// The stream for the response to `id`, which stops being pending;
    /// `None` when no request of this session has that id.
    pub(crate) fn route_response(&self, id: &RequestId) -> Option<PostStream> {
        self.routes().take(id).map(|p| p.stream)
    }

    /// True (once) when `id` is a request the gateway already answered: its
    /// response comes too late, but was asked for.
    pub(crate) fn late_response(&self, id: &RequestId) -> bool {
        let mut routes = self.routes();
        let position = routes.abandoned.iter().position(|a| a == id);
        position.and_then(|i| routes.abandoned.remove(i)).is_some()
    }

    /// The stream for a progress notification, if its token is known. The
    /// request it reports on gets a new deadline: `request_timeout` from
    /// now, but no later than `max_request_duration` after it was sent.
    pub(crate) fn route_progress(&self, token: &str, now: Instant) -> Option<Route> {
        let mut routes = self.routes();
        let Routes { pending, progress, .. } = &mut *routes;
        let pending = pending.get_mut(progress.get(token)?)?;
        pending.deadline = (now + self.limits.request_timeout).min(pending.since + self.limits.max_request_duration);
        Some(Route::Post(pending.stream.clone()))
    }

    /// The stream for anything not tied to a request (rule 3 above).
    pub(crate) fn route_unrelated(&self, message: &Bytes) -> Route {
        let mut routes = self.routes();
        let newest = routes.pending.values().filter(|p| !p.stream.tx.is_closed()).max_by_key(|p| p.seq);
        if let Some(p) = newest {
            return Route::Post(p.stream.clone());
        }
        if let Some(standalone) = routes.standalone.as_ref().filter(|s| !s.is_closed()) {
            return Route::Standalone(standalone.clone());
        }
        if routes.backlog.len() < BACKLOG {
            routes.backlog.push_back(message.clone());
            Route::Backlogged
        } else {
            Route::Dropped
        }
    }

    /// Takes every request still waiting on `stream`: it may carry no more.
    pub(crate) fn close_stream(&self, stream: &PostStream) -> Vec<RequestId> {
        let mut routes = self.routes();
        let ids: Vec<RequestId> =
            routes.pending.iter().filter(|(_, p)| p.stream.same(stream)).map(|(id, _)| id.clone()).collect();
        for id in &ids {
            routes.abandon(id);
        }
        ids
    }

    /// The session's GET stream, if one is open (fallback for a closed POST stream).
    pub(crate) fn standalone(&self) -> Option<mpsc::Sender<Bytes>> {
        self.routes().standalone.clone().filter(|s| !s.is_closed())
    }

    /// Opens the session's GET stream, or `None` when one is already open.
    /// Returns the backlog to send on it first.
    pub(crate) fn open_standalone(&self, stream: mpsc::Sender<Bytes>) -> Option<Vec<Bytes>> {
        let mut routes = self.routes();
        if routes.standalone.as_ref().is_some_and(|s| !s.is_closed()) {
            return None;
        }
        routes.standalone = Some(stream);
        Some(routes.backlog.drain(..).collect())
    }

    /// Removes and returns requests past their deadline, with their streams.
    pub(crate) fn expire(&self, now: Instant) -> Vec<(RequestId, mpsc::Sender<Bytes>)> {
        let mut routes = self.routes();
        let expired: Vec<RequestId> =
            routes.pending.iter().filter(|(_, p)| p.deadline <= now).map(|(id, _)| id.clone()).collect();
        expired.into_iter().filter_map(|id| routes.abandon(&id).map(|p| (id, p.stream.tx))).collect()
    }

    /// True when nothing happened for `idle` and no stream is open.
    pub(crate) fn is_idle(&self, now: Instant, idle: Duration) -> bool {
        let routes = self.routes();
        let quiet = routes.last_seen.is_none_or(|t| now.duration_since(t) >= idle);
        quiet && routes.pending.is_empty() && routes.standalone.as_ref().is_none_or(mpsc::Sender::is_closed)
    }

    /// Ends routing: takes every pending request (to answer with an error)
    /// and closes the GET stream.
    pub(crate) fn drain(&self) -> Vec<(RequestId, mpsc::Sender<Bytes>)> {
        self.server_requests.clear();
        let mut routes = self.routes();
        routes.standalone = None;
        routes.backlog.clear();
        routes.abandoned.clear();
        routes.progress.clear();
        routes.pending.drain().map(|(id, p)| (id, p.stream.tx)).collect()
    }
}

/// A JSON-RPC error response for `id`, written by the gateway on the child's
/// behalf (to the client) or on the client's (to the child).
pub(crate) fn error_response(id: &RequestId, code: i32, message: &str, reason: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{code},"message":"{message}","data":{{"reason":"{reason}"}}}}}}"#,
        id.as_json()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> RequestId {
        RequestId::from_json_text(&n.to_string())
    }

    fn session(limits: UpstreamLimits) -> (Session, mpsc::Receiver<Bytes>) {
        let (to_child, child_rx) = mpsc::channel(1);
        (Session::new("s".repeat(64), to_child, limits), child_rx)
    }

    fn post() -> (PostStream, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(8);
        (PostStream::new(tx), rx)
    }

    fn is_post(route: &Route, stream: &PostStream) -> bool {
        matches!(route, Route::Post(s) if s.same(stream))
    }

    #[tokio::test]
    async fn routes_responses_progress_and_unrelated_messages() {
        let (s, _child) = session(UpstreamLimits::default());
        let (post_a, _rx_a) = post();
        let (post_b, _rx_b) = post();
        s.register(&[(id(1), Some("\"tok\"".into()))], &post_a).expect("fresh id");
        s.register(&[(id(2), None)], &post_b).expect("fresh id");
        assert_eq!(s.register(&[(id(1), None)], &post_b), Err(Refused::Duplicate(id(1))));
        assert_eq!(s.register(&[(id(5), None), (id(5), None)], &post_b), Err(Refused::Duplicate(id(5))));

        let now = Instant::now();
        assert!(s.route_progress("\"tok\"", now).is_some_and(|r| is_post(&r, &post_a)));
        assert!(s.route_progress("\"other\"", now).is_none());
        // Unrelated messages go to the newest open POST stream.
        assert!(is_post(&s.route_unrelated(&Bytes::new()), &post_b));
        assert!(s.route_response(&id(2)).is_some_and(|p| p.same(&post_b)));
        assert!(s.route_response(&id(2)).is_none());
        assert!(is_post(&s.route_unrelated(&Bytes::new()), &post_a));
        assert!(s.route_response(&id(1)).is_some());
        assert!(s.route_progress("\"tok\"", now).is_none());

        // No POST stream: backlog, delivered when a GET stream opens; one GET at a time.
        assert!(matches!(s.route_unrelated(&Bytes::from_static(b"n")), Route::Backlogged));
        let (get, _get_rx) = mpsc::channel(8);
        assert_eq!(s.open_standalone(get.clone()).expect("first GET"), vec![Bytes::from_static(b"n")]);
        assert!(s.open_standalone(get.clone()).is_none());
        assert!(matches!(s.route_unrelated(&Bytes::new()), Route::Standalone(tx) if tx.same_channel(&get)));
    }

    #[tokio::test]
    async fn pending_cap_counts_the_whole_post() {
        let limits = UpstreamLimits { max_pending_per_session: 3, ..UpstreamLimits::default() };
        let (s, _child) = session(limits);
        let (stream, _rx) = post();
        s.register(&[(id(1), None), (id(2), None)], &stream).expect("within the cap");
        assert_eq!(s.register(&[(id(3), None), (id(4), None)], &stream), Err(Refused::TooMany));
        s.register(&[(id(3), None)], &stream).expect("exactly at the cap");
        assert_eq!(s.register(&[(id(4), None)], &stream), Err(Refused::TooMany));
        assert!(s.route_response(&id(4)).is_none(), "a refused POST registers nothing");
        s.route_response(&id(1)).expect("pending");
        s.register(&[(id(4), None)], &stream).expect("an answer frees a slot");
    }

    #[tokio::test]
    async fn progress_restarts_the_deadline_up_to_the_maximum() {
        let limits = UpstreamLimits {
            request_timeout: Duration::from_secs(10),
            max_request_duration: Duration::from_secs(15),
            ..UpstreamLimits::default()
        };
        let (s, _child) = session(limits);
        let (stream, _rx) = post();
        let sent = Instant::now();
        s.register(&[(id(1), Some("7".into()))], &stream).expect("fresh");
        assert!(s.expire(sent + Duration::from_secs(9)).is_empty());
        // Progress 5 s in restarts the clock: due 15 s after sending, not 10.
        s.route_progress("7", sent + Duration::from_secs(5)).expect("known token");
        assert!(s.expire(sent + Duration::from_secs(12)).is_empty(), "progress extended the deadline");
        // Progress 9 s in would make it 19 s: capped at max_request_duration.
        s.route_progress("7", sent + Duration::from_secs(9)).expect("known token");
        assert_eq!(s.expire(sent + Duration::from_secs(16)).len(), 1, "never past max_request_duration");
    }

    #[tokio::test]
    async fn a_stream_budget_and_closing_a_stream() {
        let (s, _child) = session(UpstreamLimits::default());
        let (a, _rx_a) = post();
        let (b, _rx_b) = post();
        assert!(a.charge(600, 1000));
        assert!(a.charge(400, 1000), "the budget is inclusive");
        assert!(!a.charge(1, 1000));
        assert!(b.charge(1000, 1000), "each stream has its own");
        s.register(&[(id(1), None), (id(2), None)], &a).expect("fresh");
        s.register(&[(id(3), None)], &b).expect("fresh");
        let mut closed = s.close_stream(&a);
        closed.sort_by(|x, y| x.as_json().cmp(y.as_json()));
        assert_eq!(closed, [id(1), id(2)]);
        assert!(s.route_response(&id(1)).is_none());
        assert!(s.late_response(&id(1)), "answered by the gateway: a late answer, not an unsolicited one");
        assert!(!s.late_response(&id(1)), "only once");
        assert!(s.route_response(&id(3)).is_some(), "other streams are untouched");
        assert!(!s.late_response(&id(3)), "answered by the child");
    }

    #[tokio::test]
    async fn expiry_idleness_and_drain() {
        let limits = UpstreamLimits { request_timeout: Duration::from_millis(10), ..UpstreamLimits::default() };
        let (s, _child) = session(limits);
        let (stream, _rx) = post();
        s.register(&[(id(1), None), (id(2), None)], &stream).expect("fresh");
        let now = Instant::now();
        assert!(!s.is_idle(now + Duration::from_secs(3600), Duration::from_secs(1)), "pending requests keep it busy");
        assert_eq!(s.expire(now).len(), 0);
        assert_eq!(s.expire(now + Duration::from_secs(1)).len(), 2);
        assert!(s.is_idle(now + Duration::from_secs(3600), Duration::from_secs(1)));
        s.register(&[(id(3), None)], &stream).expect("fresh");
        s.server_requests.track(&id(9), now).expect("room");
        assert_eq!(s.drain().len(), 1);
        assert!(s.route_response(&id(3)).is_none());
        assert!(!s.server_requests.answered(&id(9)), "the child's open requests go with the session");
        let body = error_response(&id(3), -32603, "gone", "upstream_exited");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["id"], 3);
        assert_eq!(v["error"]["data"]["reason"], "upstream_exited");
    }

    #[tokio::test]
    async fn gateway_messages_to_the_child_never_wait() {
        let (s, mut child) = session(UpstreamLimits::default());
        assert!(s.try_send_to_child(Bytes::from_static(b"1")));
        assert!(!s.try_send_to_child(Bytes::from_static(b"2")), "a full stdin drops, never blocks");
        assert_eq!(child.recv().await.as_deref(), Some(&b"1"[..]));
    }
}
