//! The child's own requests to the client (sampling, elicitation, roots),
//! tracked per session until the client answers them.
//!
//! The gateway stands between two peers that each wait on the other, so it
//! bounds both directions: a child cannot have more than
//! `upstream.max_server_requests_per_session` questions open (more are
//! answered with an error at once), and a client that never answers leaves
//! the child waiting no longer than `upstream.server_request_timeout` (the
//! gateway answers for it). A client answer is forwarded only for a question
//! still open, so the child never gets a second answer to one id, nor an
//! answer to a question it never asked.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use mcp_guard_layers::jsonrpc::RequestId;

/// Why a server-to-client request is not passed on to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// As many are open as allowed.
    TooMany,
    /// One with this id is open already: a second could not be told apart
    /// from the first when the answer comes.
    Duplicate,
}

/// The open server-to-client requests of one session, with their deadlines.
#[derive(Debug)]
pub(crate) struct ServerRequests {
    open: Mutex<HashMap<RequestId, Instant>>,
    max: usize,
    timeout: Duration,
}

impl ServerRequests {
    pub(crate) fn new(max: usize, timeout: Duration) -> Self {
        ServerRequests { open: Mutex::new(HashMap::new()), max, timeout }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, Instant>> {
        // Every mutation is a single insert or remove: consistent even after a panic.
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens the request `id`, due an answer within the timeout from `now`.
    pub(crate) fn track(&self, id: &RequestId, now: Instant) -> Result<(), Refused> {
        let mut open = self.open();
        if open.contains_key(id) {
            return Err(Refused::Duplicate);
        }
        if open.len() >= self.max {
            return Err(Refused::TooMany);
        }
        open.insert(id.clone(), now + self.timeout);
        Ok(())
    }

    /// Closes `id` because the client answered it; false when it was not
    /// open (never asked, already answered, or already timed out).
    pub(crate) fn answered(&self, id: &RequestId) -> bool {
        self.open().remove(id).is_some()
    }

    /// Closes `id` without an answer from the client (it could not be sent).
    pub(crate) fn forget(&self, id: &RequestId) {
        self.open().remove(id);
    }

    /// Closes and returns the requests past their deadline.
    pub(crate) fn expire(&self, now: Instant) -> Vec<RequestId> {
        let mut open = self.open();
        if open.is_empty() {
            return Vec::new();
        }
        let expired: Vec<RequestId> = open.iter().filter(|(_, due)| **due <= now).map(|(id, _)| id.clone()).collect();
        for id in &expired {
            open.remove(id);
        }
        expired
    }

    /// Closes all of them: the session ended, the child is going away.
    pub(crate) fn clear(&self) {
        self.open().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> RequestId {
        RequestId::from_json_text(text)
    }

    #[test]
    fn bounded_answered_once_and_expired() {
        let requests = ServerRequests::new(2, Duration::from_secs(10));
        let now = Instant::now();
        assert_eq!(requests.track(&id("1"), now), Ok(()));
        assert_eq!(requests.track(&id("1"), now), Err(Refused::Duplicate));
        assert_eq!(requests.track(&id("\"a\""), now), Ok(()));
        assert_eq!(requests.track(&id("3"), now), Err(Refused::TooMany));

        assert!(requests.answered(&id("1")), "an open request is answered once");
        assert!(!requests.answered(&id("1")), "a second answer is not forwarded");
        assert!(!requests.answered(&id("9")), "nor an answer to a request never made");
        assert_eq!(requests.track(&id("3"), now), Ok(()), "answering frees a slot");

        assert!(requests.expire(now + Duration::from_secs(9)).is_empty());
        let mut expired = requests.expire(now + Duration::from_secs(10));
        expired.sort_by(|a, b| a.as_json().cmp(b.as_json()));
        assert_eq!(expired, [id("\"a\""), id("3")]);
        assert!(!requests.answered(&id("3")), "a timed-out request takes no late answer");

        requests.track(&id("4"), now).expect("room again");
        requests.forget(&id("4"));
        assert!(!requests.answered(&id("4")));
        requests.track(&id("5"), now).expect("room");
        requests.clear();
        assert!(requests.expire(now + Duration::from_secs(3600)).is_empty());
    }
}
