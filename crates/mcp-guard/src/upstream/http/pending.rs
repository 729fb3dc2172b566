//! What the HTTP upstream remembers per upstream session: requests waiting
//! on the upstream, and server-to-client requests the client has not
//! answered yet.
//!
//! Sessions are keyed by the `Mcp-Session-Id` the request carries to the
//! upstream (the upstream's own id). Requests without one (`initialize`, or
//! a stateless upstream) share one gateway-wide entry that is never capped
//! on pending requests: they belong to no session, and a per-gateway cap
//! would let one caller block every other's `initialize`. They are still
//! bounded by the request timeouts and the answer size caps.
//!
//! The table holds no more than it must: an entry is dropped by a sweep once
//! nothing refers to it (no request or stream in flight) and it has no
//! unanswered server request. Sweeps run when the table has doubled since
//! the last one, so their cost is amortised and the table stays within
//! twice the live sessions (or 1024 entries).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use mcp_guard_layers::jsonrpc::RequestId;

use crate::upstream::violation::{Violation, ViolationLog};

/// The `upstream` label of metrics and logs.
pub(super) const KIND: &str = "http";

/// Entries the table may hold before its first sweep.
const FIRST_SWEEP: usize = 1024;

/// Every session the HTTP upstream has something in flight for.
#[derive(Debug)]
pub(super) struct Sessions {
    table: Mutex<Table>,
    /// Requests without a session id.
    sessionless: Arc<SessionState>,
    max_server_requests: usize,
    server_request_timeout: Duration,
}

#[derive(Debug)]
struct Table {
    by_id: HashMap<Box<str>, Arc<SessionState>>,
    sweep_at: usize,
}

/// One upstream session's bookkeeping.
#[derive(Debug)]
pub(super) struct SessionState {
    /// The first characters of the session id, for logs; `-` for none.
    short: Box<str>,
    /// False for the shared sessionless entry: see the module docs.
    capped: bool,
    pending: AtomicUsize,
    /// Unanswered server-to-client requests and when each expires.
    server_requests: Mutex<HashMap<RequestId, Instant>>,
    max_server_requests: usize,
    server_request_timeout: Duration,
    log: ViolationLog,
}

impl Sessions {
    pub(super) fn new(max_server_requests: usize, server_request_timeout: Duration) -> Self {
        Sessions {
            table: Mutex::new(Table { by_id: HashMap::new(), sweep_at: FIRST_SWEEP }),
            sessionless: Arc::new(SessionState::new("-", false, max_server_requests, server_request_timeout)),
            max_server_requests,
            server_request_timeout,
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state of session `id`, created if new; the shared entry for none.
    pub(super) fn get(&self, id: Option<&str>) -> Arc<SessionState> {
        let Some(id) = id else { return Arc::clone(&self.sessionless) };
        let mut table = self.table();
        if let Some(state) = table.by_id.get(id) {
            return Arc::clone(state);
        }
        if table.by_id.len() >= table.sweep_at {
            table.sweep();
        }
        let short = crate::session_id::short(id);
        let state = Arc::new(SessionState::new(short, true, self.max_server_requests, self.server_request_timeout));
        table.by_id.insert(id.into(), Arc::clone(&state));
        state
    }

    /// Forgets a session the upstream ended (a successful DELETE).
    pub(super) fn remove(&self, id: &str) {
        self.table().by_id.remove(id);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.table().by_id.len()
    }
}

impl Table {
    /// Drops every entry nothing refers to and that waits on no client answer.
    fn sweep(&mut self) {
        let now = Instant::now();
        // New references are only made under the table lock, so a count of
        // one (the table's) cannot grow while this runs.
        self.by_id.retain(|_, state| Arc::strong_count(state) > 1 || state.expire_server_requests(now) > 0);
        self.sweep_at = (self.by_id.len() * 2).max(FIRST_SWEEP);
    }
}

impl SessionState {
    fn new(short: &str, capped: bool, max_server_requests: usize, server_request_timeout: Duration) -> Self {
        SessionState {
            short: short.into(),
            capped,
            pending: AtomicUsize::new(0),
            server_requests: Mutex::new(HashMap::new()),
            max_server_requests,
            server_request_timeout,
            log: ViolationLog::default(),
        }
    }

    /// Counts and (rate-limited) logs a violation on this session.
    pub(super) fn record(&self, violation: Violation, detail: &str) {
        self.log.record(KIND, violation, Some(&self.short), detail);
    }

    /// Takes `n` of the session's `max` pending slots, or none if they do
    /// not all fit. The slots come back as the permit is released or dropped.
    pub(super) fn reserve(self: &Arc<Self>, n: usize, max: usize) -> Option<Permit> {
        if self.capped {
            self.pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(n).filter(|total| *total <= max)
            })
        } else {
            Ok(self.pending.fetch_add(n, Ordering::AcqRel))
        }
        .ok()?;
        Some(Permit { state: Arc::clone(self), held: n })
    }

    #[cfg(test)]
    pub(super) fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    fn server_requests(&self) -> MutexGuard<'_, HashMap<RequestId, Instant>> {
        self.server_requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A server-to-client request is on its way to the client: admitted if
    /// the session has room for one more unanswered, else the violation.
    pub(super) fn server_request(&self, id: RequestId) -> Result<(), Violation> {
        let now = Instant::now();
        let mut outstanding = self.server_requests();
        if outstanding.len() >= self.max_server_requests && !outstanding.contains_key(&id) {
            self.expire_locked(&mut outstanding, now);
            if outstanding.len() >= self.max_server_requests {
                return Err(Violation::TooManyServerRequests);
            }
        }
        outstanding.insert(id, now + self.server_request_timeout);
        Ok(())
    }

    /// The client answered these server-to-client requests.
    pub(super) fn answered<'a>(&self, ids: impl Iterator<Item = &'a RequestId>) {
        let mut outstanding = self.server_requests();
        if outstanding.is_empty() {
            return;
        }
        for id in ids {
            outstanding.remove(id);
        }
    }

    /// Forgets the server requests the client did not answer in time;
    /// returns how many are still outstanding.
    fn expire_server_requests(&self, now: Instant) -> usize {
        let mut outstanding = self.server_requests();
        self.expire_locked(&mut outstanding, now);
        outstanding.len()
    }

    fn expire_locked(&self, outstanding: &mut HashMap<RequestId, Instant>, now: Instant) {
        let before = outstanding.len();
        outstanding.retain(|_, deadline| *deadline > now);
        for _ in outstanding.len()..before {
            // The upstream times its own requests out; the slot is what the
            // gateway must free.
            self.record(Violation::ServerRequestTimeout, "the client did not answer a server request in time");
        }
    }
}

/// Pending slots of one POST; each answered request gives its slot back.
#[derive(Debug)]
pub(super) struct Permit {
    state: Arc<SessionState>,
    held: usize,
}

impl Permit {
    /// The session the slots belong to.
    pub(super) fn session(&self) -> &Arc<SessionState> {
        &self.state
    }

    /// One request of the POST is answered.
    pub(super) fn release_one(&mut self) {
        if self.held > 0 {
            self.held -= 1;
            self.state.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.held > 0 {
            self.state.pending.fetch_sub(self.held, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> RequestId {
        RequestId::from_json_text(&n.to_string())
    }

    #[test]
    fn pending_slots_are_capped_and_given_back() {
        let sessions = Sessions::new(4, Duration::from_secs(60));
        let s = sessions.get(Some("session-a"));
        let mut first = s.reserve(2, 3).expect("fits");
        assert!(s.reserve(2, 3).is_none(), "2 + 2 > 3: all or nothing");
        let second = s.reserve(1, 3).expect("fits");
        first.release_one();
        assert_eq!(s.pending(), 2);
        drop(first);
        drop(second);
        assert_eq!(s.pending(), 0);
        let other = sessions.get(Some("session-b"));
        let _held = other.reserve(3, 3).expect("another session has its own slots");
        assert!(s.reserve(3, 3).is_some());
        let sessionless = sessions.get(None);
        let _many: Vec<Permit> = (0..10).map(|_| sessionless.reserve(1, 3).expect("never capped")).collect();
    }

    #[test]
    fn server_requests_are_capped_answered_and_expire() {
        let sessions = Sessions::new(2, Duration::from_millis(30));
        let s = sessions.get(Some("s"));
        assert_eq!(s.server_request(id(1)), Ok(()));
        assert_eq!(s.server_request(id(2)), Ok(()));
        assert_eq!(s.server_request(id(3)), Err(Violation::TooManyServerRequests));
        assert_eq!(s.server_request(id(2)), Ok(()), "a repeated id takes no new slot");
        s.answered([id(1)].iter());
        assert_eq!(s.server_request(id(3)), Ok(()));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(s.server_request(id(4)), Ok(()));
        assert_eq!(s.server_request(id(5)), Ok(()), "the expired ones made room");
        assert_eq!(s.server_request(id(6)), Err(Violation::TooManyServerRequests));
    }

    #[test]
    fn the_table_forgets_idle_sessions() {
        let sessions = Sessions::new(1, Duration::from_secs(60));
        let kept = sessions.get(Some("in-flight"));
        let waiting = sessions.get(Some("waiting-for-client"));
        assert_eq!(waiting.server_request(id(1)), Ok(()));
        drop(waiting);
        for n in 0..FIRST_SWEEP * 3 {
            drop(sessions.get(Some(&format!("idle-{n}"))));
        }
        assert!(sessions.len() <= FIRST_SWEEP + 1, "bounded: {}", sessions.len());
        assert!(Arc::ptr_eq(&kept, &sessions.get(Some("in-flight"))), "a session in use is kept");
        let waiting = sessions.get(Some("waiting-for-client"));
        assert_eq!(waiting.server_request(id(2)), Err(Violation::TooManyServerRequests), "its request is remembered");
        sessions.remove("in-flight");
        assert!(!Arc::ptr_eq(&kept, &sessions.get(Some("in-flight"))));
    }
}
