//! The supported versions and the versions negotiated per session.

use std::{sync::Arc, time::Duration};

use crate::session_table::SessionTable;

/// The revisions supported unless configured otherwise.
pub const DEFAULT_VERSIONS: [&str; 4] = ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];

/// The revision assumed when a request names none and no session says otherwise.
const ASSUMED: &str = "2025-03-26";

/// The effective protocol version of a request, in its extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolVersion {
    /// The revision, e.g. `2025-06-18`.
    pub version: Arc<str>,
    /// True when the request sent the header; false when it was inferred.
    pub declared: bool,
}

impl ProtocolVersion {
    /// True for revisions that allow JSON-RPC batches (2025-03-26 only).
    pub fn allows_batches(&self) -> bool {
        &*self.version == "2025-03-26"
    }
}

/// Supported versions and the per-session negotiated ones. Cheap to clone;
/// clones share the session table.
#[derive(Clone, Debug)]
pub struct Versions {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    supported: Box<[Arc<str>]>,
    /// Refuse a header that differs from the session's negotiated version
    /// (else: serve the request under the negotiated version's rules).
    strict: bool,
    /// Session id → negotiated version.
    sessions: SessionTable<Arc<str>>,
}

impl Default for Versions {
    fn default() -> Self {
        Versions::new(DEFAULT_VERSIONS)
    }
}

impl Versions {
    /// These versions, a table of up to 100,000 sessions idle-expiring after 24 h.
    pub fn new<I, S>(supported: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Versions::with_capacity(supported, 100_000, Duration::from_secs(24 * 3600))
    }

    /// As [`new`](Self::new), with an explicit session table size and idle expiry.
    pub fn with_capacity<I, S>(supported: I, capacity: usize, idle: Duration) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let supported = supported.into_iter().map(|s| Arc::from(s.as_ref())).collect();
        Versions { inner: Arc::new(Inner { supported, strict: true, sessions: SessionTable::new(capacity, idle) }) }
    }

    /// Whether a header that differs from the session's negotiated version
    /// is refused (`true`, the default) or served under the negotiated
    /// version's rules (`false`). The specification only says clients
    /// SHOULD repeat the negotiated version; some clients, the official
    /// conformance suite among them, do not. Call before sharing clones.
    pub fn enforce_negotiated(mut self, strict: bool) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.strict = strict;
        }
        self
    }

    pub(crate) fn strict(&self) -> bool {
        self.inner.strict
    }

    /// The supported versions, for logs.
    pub fn supported(&self) -> impl Iterator<Item = &str> {
        self.inner.supported.iter().map(|s| &**s)
    }

    /// The supported version equal to `value`, shared, without allocating.
    pub fn find(&self, value: &[u8]) -> Option<Arc<str>> {
        self.inner.supported.iter().find(|s| s.as_bytes() == value).cloned()
    }

    pub(crate) fn assumed(&self) -> Option<Arc<str>> {
        self.find(ASSUMED.as_bytes())
    }

    /// The version negotiated for `session`, if known.
    pub fn negotiated(&self, session: &str) -> Option<Arc<str>> {
        self.inner.sessions.get(session)
    }

    /// Records the version negotiated for `session`. When the table is full
    /// even after dropping idle entries, the session goes unrecorded.
    pub fn learn(&self, session: &str, version: Arc<str>) -> bool {
        self.inner.sessions.insert(session, version)
    }

    /// Forgets `session` (it was deleted).
    pub fn forget(&self, session: &str) {
        self.inner.sessions.remove(session);
    }

    /// Sessions currently recorded.
    pub fn len(&self) -> usize {
        self.inner.sessions.len()
    }

    /// True when no session is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_bounded_and_idle_entries_make_room() {
        let v = Versions::with_capacity(DEFAULT_VERSIONS, 2, Duration::from_millis(0));
        let version = v.find(b"2025-06-18").expect("supported");
        assert!(v.learn("a", version.clone()) && v.learn("b", version.clone()));
        // Full, but both entries are idle past a zero expiry: room is made.
        assert!(v.learn("c", version.clone()));
        assert_eq!(v.len(), 1);
        let v = Versions::with_capacity(DEFAULT_VERSIONS, 1, Duration::from_secs(3600));
        assert!(v.learn("a", version.clone()));
        assert!(!v.learn("b", version.clone()), "full of live sessions");
        assert_eq!(v.negotiated("a").as_deref(), Some("2025-06-18"));
        v.forget("a");
        assert!(v.is_empty());
        assert!(v.find(b"1.0.0").is_none());
        assert_eq!(v.assumed().as_deref(), Some("2025-03-26"));
    }
}
