//! Sessions a client ended with DELETE, so their token cannot be replayed.
//!
//! A sealed token stays authentic until it expires, whatever happened to
//! its session, and an upstream may keep a session after DELETE (or never
//! support ending one). So a successful DELETE is recorded here, until the
//! token's expiry, and every request checks it. With `[redis]` the record is
//! shared by every replica; without, it lives in this process
//! ([`MemoryEndedSessions`]), which suffices for one replica.
//!
//! # Failure policy: open
//!
//! When the store cannot answer (Redis down), the request proceeds, and the
//! error is logged and counted (`mcp_guard_session_store_errors_total`).
//! The token has already been authenticated and bound to its caller, so
//! only the owner can use it: what degrades is the owner's own replay of a
//! session they deleted, which the upstream will usually refuse anyway.
//! Failing closed would instead make every session of every client unusable
//! while Redis is down.

use std::{
    collections::{BTreeSet, HashMap},
    future::Future,
    pin::Pin,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use aws_lc_rs::digest;

use super::SessionClaims;

/// A session's key in the store: 16 bytes of SHA-256 over its target and
/// upstream session id. Never the token (a bearer credential) nor the id.
/// Keyed by session, not token, so ending it ends every token naming it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndedId([u8; 16]);

impl EndedId {
    /// The key of the session `claims` name.
    pub fn of(claims: &SessionClaims) -> EndedId {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"mcp-guard ended session\0");
        ctx.update(claims.target.as_bytes());
        ctx.update(b"\0");
        ctx.update(claims.upstream_session.as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&ctx.finish().as_ref()[..16]);
        EndedId(id)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// Lowercase hex: 32 characters, usable in a Redis key.
impl std::fmt::Display for EndedId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::fmt::Debug for EndedId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EndedId({self})")
    }
}

/// The store could not answer.
#[derive(Debug, thiserror::Error)]
#[error("ended-session store: {0}")]
pub struct StoreError(String);

impl StoreError {
    /// An error saying `why`.
    pub fn new(why: impl std::fmt::Display) -> StoreError {
        StoreError(why.to_string())
    }
}

/// What a store operation returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where ended sessions are recorded. Implementations must bound how long
/// an answer can take (the Redis one by its command timeout): `is_ended`
/// runs on every request that names a session.
pub trait EndedSessions: Send + Sync + std::fmt::Debug + 'static {
    /// Records `id` as ended for `ttl` (the token's remaining lifetime;
    /// after it the token is refused as expired anyway).
    fn end(&self, id: EndedId, ttl: Duration) -> StoreFuture<'_, ()>;

    /// True when `id` was ended and the record has not expired.
    fn is_ended(&self, id: EndedId) -> StoreFuture<'_, bool>;
}

/// Ended sessions in this process: bounded and expiring.
#[derive(Debug)]
pub struct MemoryEndedSessions {
    state: Mutex<State>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct State {
    until: HashMap<EndedId, Instant>,
    /// The same entries by expiry, so expired ones are dropped oldest first
    /// without a scan.
    order: BTreeSet<(Instant, EndedId)>,
}

impl Default for MemoryEndedSessions {
    /// Up to 100,000 ended sessions.
    fn default() -> Self {
        MemoryEndedSessions::with_capacity(100_000)
    }
}

impl MemoryEndedSessions {
    /// Up to `capacity` records. When full of unexpired records, the one
    /// that would expire soonest is dropped: its token becomes usable by its
    /// owner again if the upstream kept the session. Sized so that this
    /// takes more deleted sessions than anyone creates within a TTL.
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryEndedSessions { state: Mutex::default(), capacity: capacity.max(1) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every mutation keeps both maps in step before it can panic: a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records held (expired ones included until the next insert).
    pub fn len(&self) -> usize {
        self.state().until.len()
    }

    /// True when none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn record(&self, id: EndedId, ttl: Duration) {
        let now = Instant::now();
        let until = now.checked_add(ttl).unwrap_or(now);
        let mut state = self.state();
        while let Some(&(at, old)) = state.order.first()
            && at <= now
        {
            state.order.pop_first();
            state.until.remove(&old);
        }
        if let Some(previous) = state.until.remove(&id) {
            state.order.remove(&(previous, id));
        }
        if state.until.len() >= self.capacity
            && let Some((_, evicted)) = state.order.pop_first()
        {
            state.until.remove(&evicted);
            tracing::warn!(target: "mcp_guard::sessions", "ended_sessions_full");
        }
        state.until.insert(id, until);
        state.order.insert((until, id));
    }

    fn ended(&self, id: EndedId) -> bool {
        self.state().until.get(&id).is_some_and(|until| *until > Instant::now())
    }
}

impl EndedSessions for MemoryEndedSessions {
    fn end(&self, id: EndedId, ttl: Duration) -> StoreFuture<'_, ()> {
        self.record(id, ttl);
        Box::pin(std::future::ready(Ok(())))
    }

    fn is_ended(&self, id: EndedId) -> StoreFuture<'_, bool> {
        Box::pin(std::future::ready(Ok(self.ended(id))))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::session_seal::Owner;

    fn id(n: u8) -> EndedId {
        EndedId([n; 16])
    }

    #[tokio::test]
    async fn records_expire_and_the_store_is_bounded() {
        let store = MemoryEndedSessions::with_capacity(2);
        let hour = Duration::from_secs(3600);
        assert!(!store.is_ended(id(1)).await.unwrap());
        store.end(id(1), hour).await.unwrap();
        assert!(store.is_ended(id(1)).await.unwrap());
        store.end(id(2), Duration::ZERO).await.unwrap();
        assert!(!store.is_ended(id(2)).await.unwrap(), "expired at once");
        // The expired record makes room; then the soonest to expire is evicted.
        store.end(id(3), 2 * hour).await.unwrap();
        assert_eq!(store.len(), 2);
        store.end(id(4), 3 * hour).await.unwrap();
        assert_eq!(store.len(), 2);
        assert!(!store.is_ended(id(1)).await.unwrap(), "evicted");
        assert!(store.is_ended(id(3)).await.unwrap() && store.is_ended(id(4)).await.unwrap());
        // Ending again extends, without duplicating.
        store.end(id(3), 4 * hour).await.unwrap();
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn ids_name_target_and_session_and_print_as_hex() {
        let claims = |target: &str, session: &str| SessionClaims {
            upstream_session: session.into(),
            owner: Owner::Unknown,
            target: Arc::from(target),
            expires: 1,
        };
        let a = EndedId::of(&claims("http://u/mcp", "s1"));
        assert_eq!(
            a,
            EndedId::of(&SessionClaims { owner: Owner::Ip([127, 0, 0, 1].into()), ..claims("http://u/mcp", "s1") })
        );
        assert_ne!(a, EndedId::of(&claims("http://u/mcp", "s2")));
        assert_ne!(a, EndedId::of(&claims("http://v/mcp", "s1")));
        let hex = a.to_string();
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
