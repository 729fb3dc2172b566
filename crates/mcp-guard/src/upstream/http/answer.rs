//! Whole answers from the HTTP upstream (a JSON body, an error status, a
//! `202`): read within a size cap and a deadline, then checked.
//!
//! A JSON answer to a POST must be a JSON-RPC response to each of the POST's
//! requests, one object, or under 2025-03-26 a batch of them; each message
//! at most `max_message_size`, a batch at most `max_response_size`. A `5xx`
//! is passed on only when its body is a JSON-RPC error; any other becomes
//! the gateway's own `502 upstream_error`.

use std::borrow::{Borrow, Cow};

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use mcp_guard_layers::{
    Rejection, body_limit,
    jsonrpc::{MessageKind, RequestId, classify_message},
};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::{body::BoxBody, upstream::violation::Violation};

/// Why a whole answer could not be read.
#[derive(Debug)]
pub(super) enum ReadError {
    TooLarge,
    Timeout,
    Failed(String),
}

/// Reads a body of at most `limit` bytes by `deadline`.
pub(super) async fn read<B>(body: B, limit: usize, deadline: Instant) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(ReadError::TooLarge);
    }
    match tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ReadError::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ReadError::TooLarge),
        Ok(Err(e)) => Err(ReadError::Failed(e.to_string())),
    }
}

/// A client's POST body, when no inspection layer read it (`mcp-guard pin`).
pub(super) async fn read_request(body: BoxBody, limit: usize) -> Result<Bytes, Rejection> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if body_limit::is_limit_error(&*e) => Err(Rejection::RequestTooLarge),
        Err(_) => Err(Rejection::InvalidMessage),
    }
}

/// Checks a JSON answer: a response for every id in `waiting` and nothing
/// else. `batch`: the POST was a batch, so the answer may be one too.
pub(super) fn check_json<W: Borrow<RequestId>>(
    body: &[u8],
    waiting: &[W],
    batch: bool,
    max_message_size: usize,
) -> Result<(), Violation> {
    let text = std::str::from_utf8(body).map_err(|_| Violation::InvalidMessage)?;
    if batch && text.trim_start().starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|_| Violation::InvalidMessage)?;
        let mut answered = vec![false; waiting.len()];
        for item in items {
            if item.get().len() > max_message_size {
                return Err(Violation::MessageTooLarge);
            }
            let at = response_to(item.get(), waiting)?;
            if std::mem::replace(&mut answered[at], true) {
                return Err(Violation::UnsolicitedResponse);
            }
        }
        return if answered.iter().all(|a| *a) { Ok(()) } else { Err(Violation::InvalidMessage) };
    }
    match (response_to(text, waiting)?, waiting.len()) {
        (_, 1) => Ok(()),
        // One response to a batch of several requests: the others would never be answered.
        _ => Err(Violation::InvalidMessage),
    }
}

/// Which of `waiting` the response `json` answers.
fn response_to<W: Borrow<RequestId>>(json: &str, waiting: &[W]) -> Result<usize, Violation> {
    let info = classify_message(json).map_err(|_| Violation::InvalidMessage)?;
    match (info.kind, info.id) {
        (MessageKind::Response, Some(id)) => {
            waiting.iter().position(|w| *w.borrow() == id).ok_or(Violation::UnsolicitedResponse)
        }
        _ => Err(Violation::InvalidMessage),
    }
}

// Only the shape is checked: the fields must be there with these types.
#[derive(Deserialize)]
struct ErrorAnswer<'a> {
    #[serde(borrow)]
    jsonrpc: Cow<'a, str>,
    #[serde(borrow, rename = "error")]
    _error: ErrorObject<'a>,
}

#[derive(Deserialize)]
struct ErrorObject<'a> {
    #[serde(rename = "code")]
    _code: i64,
    #[serde(borrow, rename = "message")]
    _message: Cow<'a, str>,
}

/// True when `body` is a JSON-RPC error response (`id` may be null or absent).
pub(super) fn is_jsonrpc_error(body: &[u8]) -> bool {
    serde_json::from_slice::<ErrorAnswer<'_>>(body).is_ok_and(|answer| answer.jsonrpc == "2.0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[&str]) -> Vec<RequestId> {
        ids.iter().map(|id| RequestId::from_json_text(id)).collect()
    }

    /// An answer, the ids waiting, whether the POST was a batch, the verdict.
    type Case = (&'static str, &'static [&'static str], bool, Result<(), Violation>);

    #[test]
    fn json_answers_must_answer_exactly_the_requests() {
        let ok = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        let cases: &[Case] = &[
            (ok, &["1"], false, Ok(())),
            (r#"{"jsonrpc":"2.0","id":"1","result":{}}"#, &["1"], false, Err(Violation::UnsolicitedResponse)),
            (
                r#"{"jsonrpc":"2.0","id":2,"error":{"code":1,"message":"x"}}"#,
                &["1"],
                false,
                Err(Violation::UnsolicitedResponse),
            ),
            (r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, &["1"], false, Err(Violation::InvalidMessage)),
            (r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#, &["1"], false, Err(Violation::InvalidMessage)),
            ("this is not json", &["1"], false, Err(Violation::InvalidMessage)),
            ("\u{fffd}", &["1"], false, Err(Violation::InvalidMessage)),
            (r#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#, &["1"], false, Err(Violation::InvalidMessage)),
            (
                r#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"result":{}}]"#,
                &["2", "1"],
                true,
                Ok(()),
            ),
            (ok, &["1"], true, Ok(())),
            (ok, &["1", "2"], true, Err(Violation::InvalidMessage)),
            (r#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#, &["1", "2"], true, Err(Violation::InvalidMessage)),
            (
                r#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":1,"result":{}}]"#,
                &["1", "2"],
                true,
                Err(Violation::UnsolicitedResponse),
            ),
        ];
        for (body, waiting, batch, want) in cases {
            assert_eq!(check_json(body.as_bytes(), &ids(waiting), *batch, 1 << 20), *want, "{body}");
        }
        let batch = format!(r#"[{{"jsonrpc":"2.0","id":1,"result":"{}"}}]"#, "x".repeat(100));
        assert_eq!(check_json(batch.as_bytes(), &ids(&["1"]), true, 64), Err(Violation::MessageTooLarge));
    }

    #[test]
    fn jsonrpc_errors_are_recognised() {
        assert!(is_jsonrpc_error(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"boom"}}"#));
        assert!(is_jsonrpc_error(br#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"b\u00f6om"}}"#));
        for body in [&b"boom"[..], br#"{"error":{"code":1,"message":"x"}}"#, br#"{"jsonrpc":"2.0","error":"x"}"#, b""] {
            assert!(!is_jsonrpc_error(body), "{}", String::from_utf8_lossy(body));
        }
    }

    #[tokio::test]
    async fn reads_are_bounded_in_size_and_time() {
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let full = http_body_util::Full::new(Bytes::from_static(b"0123456789"));
        assert!(matches!(read(full.clone(), 10, deadline).await, Ok(b) if b.len() == 10));
        assert!(matches!(read(full, 9, deadline).await, Err(ReadError::TooLarge)));
        let never = futures_util::stream::pending::<Result<http_body::Frame<Bytes>, std::io::Error>>();
        let body = http_body_util::StreamBody::new(never);
        let soon = Instant::now() + std::time::Duration::from_millis(20);
        assert!(matches!(read(body, 10, soon).await, Err(ReadError::Timeout)));
    }
}
