//! State shared by every session of one test server instance: the
//! "rug pull" flag and the log of requests received.

use std::sync::{
    Mutex, PoisonError,
    atomic::{AtomicBool, Ordering},
};

/// Shared by all sessions of one server: one per [`crate::spawn_http`] /
/// [`crate::router`] call, one per [`crate::TestServer::default`] (the stdio
/// process).
#[derive(Debug, Default)]
pub struct ServerState {
    rug_pulled: AtomicBool,
    received: Mutex<Vec<String>>,
}

impl ServerState {
    /// Every request received so far, oldest first: `"tools/call <name>"`,
    /// `"resources/read <uri>"`, `"resources/subscribe <uri>"`,
    /// `"prompts/get <name>"`, `"tools/list"`, `"resources/list"`,
    /// `"resources/templates/list"`, `"prompts/list"`. Calls of the
    /// `received` tool are not recorded.
    pub fn received(&self) -> Vec<String> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether `rug_pull` has been called: `tools/list` then shows
    /// `get_weather` with [`crate::RUG_PULLED_DESCRIPTION`].
    pub fn rug_pulled(&self) -> bool {
        self.rug_pulled.load(Ordering::SeqCst)
    }

    pub(crate) fn pull_rug(&self) {
        self.rug_pulled.store(true, Ordering::SeqCst);
    }

    pub(crate) fn record(&self, entry: impl Into<String>) {
        self.received.lock().unwrap_or_else(PoisonError::into_inner).push(entry.into());
    }
}
