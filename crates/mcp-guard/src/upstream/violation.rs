//! What a hostile or broken upstream did, counted and logged in one place.
//!
//! An upstream is as untrusted as a client: a compromised MCP server may
//! answer garbage, flood, stall, or answer ids nobody asked for. Each such
//! act is contained to the session (or stream) it happened on, counted in
//! `mcp_guard_upstream_violations_total{upstream, kind}`, and logged at
//! `warn`, at most once per [`LOG_EVERY`] per source so a flood cannot
//! flood the log too (the count says how many were not logged).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// At most one log line per source this often; the metric counts every one.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

/// One kind of upstream misbehaviour. `kind()` is the stable metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Violation {
    /// An answer (JSON body, or all of a stream) over `max_response_size`.
    ResponseTooLarge,
    /// One SSE event or stdout line over the message size cap.
    MessageTooLarge,
    /// Something that is not a JSON-RPC message (not JSON, wrong shape, bad UTF-8).
    InvalidMessage,
    /// A response to an id no pending request of this session has.
    UnsolicitedResponse,
    /// A request the upstream did not answer within the request timeout.
    RequestTimeout,
    /// A session tried to have more requests waiting than allowed.
    TooManyPending,
    /// A server-to-client request the client did not answer in time; the
    /// gateway answered it with an error instead.
    ServerRequestTimeout,
    /// More server-to-client requests outstanding than allowed: dropped.
    TooManyServerRequests,
    /// The upstream failed mid-exchange: a reset connection, a broken stream, a 5xx.
    UpstreamFailure,
}

impl Violation {
    /// Stable label for metrics and logs. Never changes once released.
    pub(crate) const fn kind(self) -> &'static str {
        match self {
            Violation::ResponseTooLarge => "response_too_large",
            Violation::MessageTooLarge => "message_too_large",
            Violation::InvalidMessage => "invalid_message",
            Violation::UnsolicitedResponse => "unsolicited_response",
            Violation::RequestTimeout => "request_timeout",
            Violation::TooManyPending => "too_many_pending",
            Violation::ServerRequestTimeout => "server_request_timeout",
            Violation::TooManyServerRequests => "too_many_server_requests",
            Violation::UpstreamFailure => "upstream_failure",
        }
    }

    /// Every kind, for documentation and exhaustive tests.
    pub(crate) const ALL: [Violation; 9] = [
        Violation::ResponseTooLarge,
        Violation::MessageTooLarge,
        Violation::InvalidMessage,
        Violation::UnsolicitedResponse,
        Violation::RequestTimeout,
        Violation::TooManyPending,
        Violation::ServerRequestTimeout,
        Violation::TooManyServerRequests,
        Violation::UpstreamFailure,
    ];
}

/// Rate-limits the log lines of one source (a session, a stream); the
/// counter is always incremented.
#[derive(Debug)]
pub(crate) struct ViolationLog {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last line logged, plus one (0: never).
    last_logged: AtomicU64,
    suppressed: AtomicU64,
}

impl Default for ViolationLog {
    fn default() -> Self {
        ViolationLog { epoch: Instant::now(), last_logged: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }
}

impl ViolationLog {
    /// Counts `violation` and logs it unless this source logged within
    /// [`LOG_EVERY`]. `session` is a short, loggable id (never a full one).
    pub(crate) fn record(&self, upstream: &'static str, violation: Violation, session: Option<&str>, detail: &str) {
        metrics::counter!("mcp_guard_upstream_violations_total", "upstream" => upstream, "kind" => violation.kind())
            .increment(1);
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let last = self.last_logged.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= LOG_EVERY.as_millis() as u64;
        if due && self.last_logged.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            tracing::warn!(
                target: "mcp_guard::upstream",
                upstream,
                kind = violation.kind(),
                session,
                detail,
                suppressed,
                "upstream_violation"
            );
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_distinct_snake_case() {
        let mut kinds: Vec<&str> = Violation::ALL.iter().map(|v| v.kind()).collect();
        assert!(kinds.iter().all(|k| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), Violation::ALL.len());
    }

    #[test]
    fn a_flood_logs_once_per_interval_and_counts_the_rest() {
        let log = ViolationLog::default();
        for _ in 0..1000 {
            log.record("stdio", Violation::InvalidMessage, Some("abc"), "test");
        }
        assert_eq!(log.suppressed.load(Ordering::Relaxed), 999);
        assert_ne!(log.last_logged.load(Ordering::Relaxed), 0);
    }
}
