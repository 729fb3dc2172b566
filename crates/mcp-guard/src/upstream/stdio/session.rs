//! One stdio session: a child process and the routing table that sends each
//! message it writes to the HTTP stream waiting for it.
//!
//! Routing rules, in order:
//! 1. A response goes to the stream of the POST that sent its request id.
//! 2. A progress notification goes to the stream of the request that
//!    carried its `progressToken`.
//! 3. Anything else the server sends (sampling, elicitation and roots
//!    requests, log and list-changed notifications) goes to the newest
//!    POST stream still open: the spec asks that such messages relate to the
//!    originating request, and while a tool call is in flight that is the one.
//!    With no POST stream open it goes to the session's GET stream, and with
//!    none of those it waits in a small backlog for the next GET.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use bytes::Bytes;
use mcp_guard_layers::jsonrpc::RequestId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::session_id;

/// Messages kept for a GET stream that is not open yet.
const BACKLOG: usize = 64;

/// A request waiting for the child's response.
#[derive(Debug)]
struct Pending {
    stream: mpsc::Sender<Bytes>,
    progress_token: Option<Box<str>>,
    /// Order of arrival, to find the newest open POST stream.
    seq: u64,
    deadline: Instant,
}

#[derive(Debug, Default)]
struct Routes {
    pending: HashMap<RequestId, Pending>,
    progress: HashMap<Box<str>, RequestId>,
    standalone: Option<mpsc::Sender<Bytes>>,
    backlog: VecDeque<Bytes>,
    seq: u64,
    last_seen: Option<Instant>,
}

impl Routes {
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
    /// An open HTTP stream.
    Stream(mpsc::Sender<Bytes>),
    /// Parked until a GET stream opens.
    Backlogged,
    /// Nowhere: the backlog is full, or a response nobody waits for.
    Dropped,
}

/// One session: id, the child's stdin, and the routing table.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: String,
    to_child: mpsc::Sender<Bytes>,
    routes: Mutex<Routes>,
    /// Cancelled when the session ends, for whatever reason.
    pub(crate) ended: CancellationToken,
}

impl Session {
    pub(crate) fn new(id: String, to_child: mpsc::Sender<Bytes>) -> Self {
        let routes = Routes { last_seen: Some(Instant::now()), ..Routes::default() };
        Session { id, to_child, routes: Mutex::new(routes), ended: CancellationToken::new() }
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

    pub(crate) fn touch(&self) {
        self.routes().last_seen = Some(Instant::now());
    }

    /// Registers requests of one POST, all answered on `stream`. Fails with
    /// the first id already in flight, registering none.
    pub(crate) fn register(
        &self,
        requests: &[(RequestId, Option<Box<str>>)],
        stream: &mpsc::Sender<Bytes>,
        timeout: Duration,
    ) -> Result<(), RequestId> {
        let mut routes = self.routes();
        if let Some((dup, _)) = requests.iter().find(|(id, _)| routes.pending.contains_key(id)) {
            return Err(dup.clone());
        }
        let deadline = Instant::now() + timeout;
        for (id, token) in requests {
            routes.seq += 1;
            let seq = routes.seq;
            if let Some(token) = token {
                routes.progress.insert(token.clone(), id.clone());
            }
            let pending = Pending { stream: stream.clone(), progress_token: token.clone(), seq, deadline };
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

    /// The stream for the response to `id`, which stops being pending.
    pub(crate) fn route_response(&self, id: &RequestId) -> Route {
        match self.routes().take(id) {
            Some(p) => Route::Stream(p.stream),
            None => Route::Dropped,
        }
    }

    /// The stream for a progress notification, if its token is known.
    pub(crate) fn route_progress(&self, token: &str) -> Option<Route> {
        let routes = self.routes();
        let id = routes.progress.get(token)?;
        routes.pending.get(id).map(|p| Route::Stream(p.stream.clone()))
    }

    /// The stream for anything not tied to a request (rule 3 above).
    pub(crate) fn route_unrelated(&self, message: &Bytes) -> Route {
        let mut routes = self.routes();
        let newest = routes.pending.values().filter(|p| !p.stream.is_closed()).max_by_key(|p| p.seq);
        if let Some(p) = newest {
            return Route::Stream(p.stream.clone());
        }
        if let Some(standalone) = routes.standalone.as_ref().filter(|s| !s.is_closed()) {
            return Route::Stream(standalone.clone());
        }
        if routes.backlog.len() < BACKLOG {
            routes.backlog.push_back(message.clone());
            Route::Backlogged
        } else {
            Route::Dropped
        }
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
        expired.into_iter().filter_map(|id| routes.take(&id).map(|p| (id, p.stream))).collect()
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
        let mut routes = self.routes();
        routes.standalone = None;
        routes.backlog.clear();
        routes.progress.clear();
        routes.pending.drain().map(|(id, p)| (id, p.stream)).collect()
    }
}

/// A JSON-RPC error response for `id`, written by the gateway on the child's behalf.
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

    #[tokio::test]
    async fn routes_responses_progress_and_unrelated_messages() {
        let (to_child, _child_rx) = mpsc::channel(1);
        let s = Session::new("s".repeat(64), to_child);
        let (post_a, _rx_a) = mpsc::channel(8);
        let (post_b, _rx_b) = mpsc::channel(8);
        let t = Duration::from_secs(60);
        s.register(&[(id(1), Some("\"tok\"".into()))], &post_a, t).expect("fresh id");
        s.register(&[(id(2), None)], &post_b, t).expect("fresh id");
        assert_eq!(s.register(&[(id(1), None)], &post_b, t), Err(id(1)));

        assert!(matches!(s.route_progress("\"tok\""), Some(Route::Stream(tx)) if tx.same_channel(&post_a)));
        assert!(s.route_progress("\"other\"").is_none());
        // Unrelated messages go to the newest open POST stream.
        assert!(matches!(s.route_unrelated(&Bytes::new()), Route::Stream(tx) if tx.same_channel(&post_b)));
        assert!(matches!(s.route_response(&id(2)), Route::Stream(tx) if tx.same_channel(&post_b)));
        assert!(matches!(s.route_response(&id(2)), Route::Dropped));
        assert!(matches!(s.route_unrelated(&Bytes::new()), Route::Stream(tx) if tx.same_channel(&post_a)));
        assert!(matches!(s.route_response(&id(1)), Route::Stream(_)));
        assert!(s.route_progress("\"tok\"").is_none());

        // No POST stream: backlog, delivered when a GET stream opens; one GET at a time.
        assert!(matches!(s.route_unrelated(&Bytes::from_static(b"n")), Route::Backlogged));
        let (get, _get_rx) = mpsc::channel(8);
        assert_eq!(s.open_standalone(get.clone()).expect("first GET"), vec![Bytes::from_static(b"n")]);
        assert!(s.open_standalone(get.clone()).is_none());
        assert!(matches!(s.route_unrelated(&Bytes::new()), Route::Stream(tx) if tx.same_channel(&get)));
    }

    #[tokio::test]
    async fn expiry_idleness_and_drain() {
        let (to_child, _child_rx) = mpsc::channel(1);
        let s = Session::new("x".repeat(64), to_child);
        let (post, _rx) = mpsc::channel(8);
        s.register(&[(id(1), None), (id(2), None)], &post, Duration::from_millis(10)).expect("fresh");
        let now = Instant::now();
        assert!(!s.is_idle(now + Duration::from_secs(3600), Duration::from_secs(1)), "pending requests keep it busy");
        assert_eq!(s.expire(now).len(), 0);
        assert_eq!(s.expire(now + Duration::from_secs(1)).len(), 2);
        assert!(s.is_idle(now + Duration::from_secs(3600), Duration::from_secs(1)));
        s.register(&[(id(3), None)], &post, Duration::from_secs(1)).expect("fresh");
        assert_eq!(s.drain().len(), 1);
        assert!(matches!(s.route_response(&id(3)), Route::Dropped));
        let body = error_response(&id(3), -32603, "gone", "upstream_exited");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["id"], 3);
        assert_eq!(v["error"]["data"]["reason"], "upstream_exited");
    }
}
