//! Header rules of the MCP Streamable HTTP transport.
//!
//! A POST must send `Content-Type: application/json` (else `415`) and
//! accept both `application/json` and `text/event-stream` (else `406`); a
//! GET must accept `text/event-stream` (else `406`). Media-range wildcards
//! (`*/*`, `text/*`) count as accepting, per RFC 9110 §12.5.1; a range with
//! `q=0` counts as refusing.

use http::{HeaderMap, HeaderName, header};

use crate::rejection::Rejection;

/// `Mcp-Session-Id`: the session a request belongs to.
pub static MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
/// `MCP-Protocol-Version`: the protocol revision of a request.
pub static MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// `Mcp-Method`: the JSON-RPC method, repeated in a header (2026-07-28).
pub static MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
/// `Last-Event-ID`: where a resumed SSE stream picks up.
pub static LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// Checks the headers of a POST to the MCP endpoint.
pub fn check_post(headers: &HeaderMap) -> Result<(), Rejection> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Rejection::UnsupportedMediaType);
    }
    if accepts(headers, "application", "json") && accepts(headers, "text", "event-stream") {
        Ok(())
    } else {
        Err(Rejection::NotAcceptable)
    }
}

/// Checks the headers of a GET that opens an SSE stream.
pub fn check_get(headers: &HeaderMap) -> Result<(), Rejection> {
    if accepts(headers, "text", "event-stream") { Ok(()) } else { Err(Rejection::NotAcceptable) }
}

/// True when `Content-Type` is `text/event-stream` (parameters ignored).
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// True when some `Accept` media range covers `kind/sub` with a non-zero weight.
pub fn accepts(headers: &HeaderMap, kind: &str, sub: &str) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim();
        let refused = parts
            .any(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()).is_some_and(|q| q <= 0.0));
        let Some((k, s)) = media.split_once('/') else { return false };
        let covers =
            (k == "*" && s == "*") || (k.eq_ignore_ascii_case(kind) && (s == "*" || s.eq_ignore_ascii_case(sub)));
        covers && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    type Case = (&'static [(&'static str, &'static str)], Result<(), Rejection>);
    const BOTH: &str = "application/json, text/event-stream";

    #[test]
    fn post_rules() {
        let cases: &[Case] = &[
            (&[("content-type", "application/json"), ("accept", BOTH)], Ok(())),
            (&[("content-type", "Application/JSON; charset=utf-8"), ("accept", BOTH)], Ok(())),
            (
                &[
                    ("content-type", "application/json"),
                    ("accept", "application/json"),
                    ("accept", "text/event-stream"),
                ],
                Ok(()),
            ),
            (&[("content-type", "application/json"), ("accept", "*/*")], Ok(())),
            (&[("content-type", "application/json"), ("accept", "application/json")], Err(Rejection::NotAcceptable)),
            (
                &[("content-type", "application/json"), ("accept", "application/json, text/event-stream;q=0")],
                Err(Rejection::NotAcceptable),
            ),
            (&[("content-type", "application/json")], Err(Rejection::NotAcceptable)),
            (&[("content-type", "text/plain"), ("accept", BOTH)], Err(Rejection::UnsupportedMediaType)),
            (&[("content-type", "application/jsonx"), ("accept", BOTH)], Err(Rejection::UnsupportedMediaType)),
            (&[("accept", BOTH)], Err(Rejection::UnsupportedMediaType)),
        ];
        for (pairs, want) in cases {
            assert_eq!(check_post(&headers(pairs)), *want, "{pairs:?}");
        }
    }

    #[test]
    fn event_stream_content_type() {
        assert!(is_event_stream(&headers(&[("content-type", "text/event-stream")])));
        assert!(is_event_stream(&headers(&[("content-type", "Text/Event-Stream; charset=utf-8")])));
        assert!(!is_event_stream(&headers(&[("content-type", "application/json")])));
        assert!(!is_event_stream(&headers(&[])));
    }

    #[test]
    fn get_rules() {
        assert_eq!(check_get(&headers(&[("accept", "text/event-stream")])), Ok(()));
        assert_eq!(check_get(&headers(&[("accept", "text/*")])), Ok(()));
        assert_eq!(check_get(&headers(&[("accept", "application/json")])), Err(Rejection::NotAcceptable));
        assert_eq!(check_get(&headers(&[])), Err(Rejection::NotAcceptable));
    }
}
