//! `[upstream]` bounds that hold whatever the transport: what the gateway
//! lets an upstream send, and how long it waits for it. An upstream is as
//! untrusted as a client (a compromised MCP server is in the threat model),
//! so every one of these is on by default.

use std::time::Duration;

use super::{ConfigError, duration, invalid, raw::RawUpstream, units::parse_size};

/// Bounds on one upstream, HTTP or stdio (`[upstream]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamLimits {
    /// Longest single message from the upstream: a JSON body (each message
    /// of a JSON batch), one SSE event, one stdout line. Default 16 MiB; a
    /// longer one is dropped and counted (a JSON answer becomes 502
    /// `upstream_response_too_large`).
    pub max_message_size: usize,
    /// Most bytes in one answer to a POST: a JSON body or a whole SSE
    /// stream. Default 64 MiB. A GET stream lives as long as the session,
    /// so only `max_message_size` bounds it.
    pub max_response_size: usize,
    /// Time each request may wait for its response (`upstream.timeout`).
    /// Default 60s. A progress notification for the request restarts the
    /// clock, up to `max_request_duration`. The client then gets a JSON-RPC
    /// error for that id, and the upstream a `notifications/cancelled`.
    /// Over HTTP, an answer whose headers (or whole JSON body) do not come
    /// in time is 504 `upstream_timeout` instead: there is no stream yet.
    pub request_timeout: Duration,
    /// Upper bound on a request's wait however much progress it reports
    /// (the spec's "maximum timeout"). Default 10 minutes.
    pub max_request_duration: Duration,
    /// Requests of one session that may wait on the upstream at once.
    /// Default 64; past it, 429 `too_many_pending_requests`, so a stalled
    /// upstream session cannot hold an unbounded number of client requests.
    /// Over HTTP, requests without a session (`initialize`, a stateless
    /// upstream) belong to none and are not counted.
    pub max_pending_per_session: usize,
    /// Server-to-client requests (sampling, elicitation, roots) one session
    /// may have unanswered at once. Default 16; more are dropped and counted.
    pub max_server_requests_per_session: usize,
    /// Time the client has to answer a server-to-client request before the
    /// gateway answers the upstream with an error itself (stdio; an HTTP
    /// upstream times its own requests out, and the gateway only frees the
    /// slot). Default 10 minutes: elicitation waits for a person.
    pub server_request_timeout: Duration,
}

impl Default for UpstreamLimits {
    fn default() -> Self {
        UpstreamLimits {
            max_message_size: 16 << 20,
            max_response_size: 64 << 20,
            request_timeout: Duration::from_secs(60),
            max_request_duration: Duration::from_secs(600),
            max_pending_per_session: 64,
            max_server_requests_per_session: 16,
            server_request_timeout: Duration::from_secs(600),
        }
    }
}

impl UpstreamLimits {
    pub(super) fn from_raw(raw: &RawUpstream) -> Result<Self, ConfigError> {
        let d = UpstreamLimits::default();
        let limits = UpstreamLimits {
            max_message_size: size("upstream.max_message_size", raw.max_message_size.as_deref(), d.max_message_size)?,
            max_response_size: size(
                "upstream.max_response_size",
                raw.max_response_size.as_deref(),
                d.max_response_size,
            )?,
            request_timeout: duration("upstream.timeout", raw.timeout.as_deref(), d.request_timeout)?,
            max_request_duration: duration(
                "upstream.max_request_duration",
                raw.max_request_duration.as_deref(),
                d.max_request_duration,
            )?,
            max_pending_per_session: count(
                "upstream.max_pending_per_session",
                raw.max_pending_per_session,
                d.max_pending_per_session,
            )?,
            max_server_requests_per_session: count(
                "upstream.max_server_requests_per_session",
                raw.max_server_requests_per_session,
                d.max_server_requests_per_session,
            )?,
            server_request_timeout: duration(
                "upstream.server_request_timeout",
                raw.server_request_timeout.as_deref(),
                d.server_request_timeout,
            )?,
        };
        if limits.max_response_size < limits.max_message_size {
            return Err(invalid("upstream.max_response_size", "must be at least `upstream.max_message_size`"));
        }
        if limits.max_request_duration < limits.request_timeout {
            return Err(invalid("upstream.max_request_duration", "must be at least `upstream.timeout`"));
        }
        Ok(limits)
    }
}

fn size(key: &str, value: Option<&str>, default: usize) -> Result<usize, ConfigError> {
    let Some(text) = value else { return Ok(default) };
    parse_size(text)
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n >= 1024)
        .ok_or_else(|| invalid(key, format!("`{text}` must be a size of at least 1KiB, e.g. `16MiB`")))
}

fn count(key: &str, value: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(0) => Err(invalid(key, "must be at least 1")),
        Some(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_name_the_key() {
        assert_eq!(UpstreamLimits::from_raw(&RawUpstream::default()).ok(), Some(UpstreamLimits::default()));
        let cases: [(&str, RawUpstream); 4] = [
            ("upstream.max_message_size", RawUpstream { max_message_size: Some("1B".into()), ..Default::default() }),
            (
                "upstream.max_response_size",
                RawUpstream { max_response_size: Some("2KiB".into()), ..Default::default() },
            ),
            (
                "upstream.max_pending_per_session",
                RawUpstream { max_pending_per_session: Some(0), ..Default::default() },
            ),
            (
                "upstream.max_request_duration",
                RawUpstream { max_request_duration: Some("1s".into()), ..Default::default() },
            ),
        ];
        for (key, raw) in cases {
            match UpstreamLimits::from_raw(&raw) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
    }
}
