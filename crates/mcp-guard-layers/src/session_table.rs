//! A bounded table keyed by session id, shared by the layers that remember
//! something per session (negotiated version, owner).
//!
//! Entries are touched on use. When the table is full, entries idle longer
//! than the expiry make room; if none are, the insert is refused and the
//! caller decides what that means (both users fail closed or fall back to
//! stateless checks).

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

#[derive(Debug)]
pub(crate) struct SessionTable<V> {
    entries: Mutex<HashMap<Box<str>, (V, Instant)>>,
    capacity: usize,
    idle: Duration,
}

impl<V: Clone> SessionTable<V> {
    pub(crate) fn new(capacity: usize, idle: Duration) -> Self {
        SessionTable { entries: Mutex::default(), capacity, idle }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<Box<str>, (V, Instant)>> {
        // Every mutation is a single insert or remove: a poisoned table is still consistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value for `session`, marking it used.
    pub(crate) fn get(&self, session: &str) -> Option<V> {
        let mut entries = self.entries();
        let (value, seen) = entries.get_mut(session)?;
        *seen = Instant::now();
        Some(value.clone())
    }

    /// Records `value` for `session`; false when the table is full of live entries.
    pub(crate) fn insert(&self, session: &str, value: V) -> bool {
        let mut entries = self.entries();
        if entries.len() >= self.capacity && !entries.contains_key(session) {
            let now = Instant::now();
            entries.retain(|_, (_, seen)| now.duration_since(*seen) < self.idle);
            if entries.len() >= self.capacity {
                return false;
            }
        }
        entries.insert(session.into(), (value, Instant::now()));
        true
    }

    pub(crate) fn remove(&self, session: &str) {
        self.entries().remove(session);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries().len()
    }
}
