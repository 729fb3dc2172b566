//! What one audit record holds, and how it is decided and written.
//!
//! A [`Pending`] is built when a POST enters the layer, with one [`Entry`]
//! per JSON-RPC request in it; it is finished exactly once, when the answer's
//! body ends or is dropped (or the answer never comes), with the
//! [`Outcome`] the response carried.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use mcp_guard_layers::{Rejection, jsonrpc::RequestId, policy::Refused};
use serde::Serialize;
use serde_json::{Value, value::RawValue};

use super::Shared;

/// Largest arguments or result text logged; past it the record says
/// `*_truncated` instead, so one call cannot flood the audit log.
pub(crate) const MAX_LOGGED: usize = 64 << 10;

/// What replaces a redacted value.
const REDACTED: &str = "[redacted]";

/// A logged argument or result.
#[derive(Debug)]
pub(crate) enum Logged {
    /// Parsed and redacted.
    Value(Value),
    /// Larger than [`MAX_LOGGED`]: not kept.
    Truncated,
}

/// How a request's result came back: `result`, or `error`.
#[derive(Debug)]
pub(crate) enum Answer {
    Result(Logged),
    Error(Logged),
}

/// One JSON-RPC request of the POST, awaiting its outcome.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) method: Box<str>,
    pub(crate) id: RequestId,
    /// Tool, prompt or resource URI the request names.
    pub(crate) name: Option<Box<str>>,
    /// The metric label of a `tools/call`: the tool's name when the catalog
    /// knows it, else `unknown`. `None` for other methods.
    pub(crate) tool_label: Option<String>,
    pub(crate) arguments: Option<Logged>,
    /// Results are logged for this request's tool.
    pub(crate) want_result: bool,
    pub(crate) answer: Option<Answer>,
}

/// What is known of a POST when it enters the layer.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) shared: Arc<Shared>,
    pub(crate) time: SystemTime,
    pub(crate) start: Instant,
    pub(crate) principal: Option<Arc<str>>,
    pub(crate) client_ip: Option<IpAddr>,
    /// Shortened session id (never the raw one).
    pub(crate) session: Option<String>,
    pub(crate) entries: Vec<Entry>,
}

/// What the answer said about the requests.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// `None`: no response was produced (the client went away first).
    pub(crate) status: Option<u16>,
    pub(crate) refused: Option<Refused>,
    pub(crate) rejection: Option<Rejection>,
    /// The body failed while streaming (the upstream broke off).
    pub(crate) body_error: bool,
}

#[derive(Serialize)]
struct Record<'a> {
    time: &'a str,
    principal: Option<&'a str>,
    client_ip: Option<IpAddr>,
    session: Option<&'a str>,
    method: &'a str,
    id: Option<&'a RawValue>,
    name: Option<&'a str>,
    decision: &'static str,
    reason: Option<&'static str>,
    status: Option<u16>,
    upstream_error: bool,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a Value>,
    #[serde(skip_serializing_if = "is_false")]
    arguments_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a Value>,
    #[serde(skip_serializing_if = "is_false")]
    result_truncated: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The decision for one request: `(decision, reason, upstream_error)`.
pub(crate) fn decide(id: &RequestId, outcome: &Outcome) -> (&'static str, Option<&'static str>, bool) {
    if let Some((_, refusal)) = outcome.refused.as_ref().and_then(|r| r.0.iter().find(|(rid, _)| rid == id)) {
        return ("deny", Some(refusal.reason()), false);
    }
    match outcome.rejection {
        // The gateway let the request through; the upstream failed it. The
        // reason still says how.
        Some(
            r @ (Rejection::UpstreamUnavailable
            | Rejection::UpstreamError
            | Rejection::UpstreamTimeout
            | Rejection::UpstreamResponseTooLarge
            | Rejection::UpstreamInvalidResponse),
        ) => ("allow", Some(r.reason()), true),
        Some(r) => ("deny", Some(r.reason()), false),
        None => {
            let failed = outcome.body_error || outcome.status.is_some_and(|s| s >= 500);
            ("allow", None, failed)
        }
    }
}

impl Pending {
    /// Writes one record per request and records the tool-call metrics.
    pub(crate) fn finish(self, outcome: &Outcome) {
        let elapsed = self.start.elapsed();
        let time = rfc3339_millis(self.time);
        for entry in &self.entries {
            let (decision, reason, upstream_error) = decide(&entry.id, outcome);
            if let Some(tool) = &entry.tool_label {
                metrics::counter!("mcp_tool_calls_total", "tool" => tool.clone(), "decision" => decision).increment(1);
                metrics::histogram!("mcp_tool_call_duration_seconds", "tool" => tool.clone())
                    .record(elapsed.as_secs_f64());
            }
            let Some(writer) = &self.shared.writer else { continue };
            let (result, error, result_truncated) = match &entry.answer {
                None => (None, None, false),
                Some(Answer::Result(Logged::Value(v))) => (Some(v), None, false),
                Some(Answer::Error(Logged::Value(v))) => (None, Some(v), false),
                Some(Answer::Result(Logged::Truncated) | Answer::Error(Logged::Truncated)) => (None, None, true),
            };
            let record = Record {
                time: &time,
                principal: self.principal.as_deref(),
                client_ip: self.client_ip,
                session: self.session.as_deref(),
                method: &entry.method,
                // Validated JSON text (a string or an integer) by inspection.
                id: serde_json::from_str(entry.id.as_json()).ok(),
                name: entry.name.as_deref(),
                decision,
                reason,
                status: outcome.status,
                upstream_error,
                latency_ms: millis(elapsed),
                arguments: match &entry.arguments {
                    Some(Logged::Value(v)) => Some(v),
                    _ => None,
                },
                arguments_truncated: matches!(entry.arguments, Some(Logged::Truncated)),
                result,
                error,
                result_truncated,
            };
            match serde_json::to_vec(&record) {
                Ok(mut line) => {
                    line.push(b'\n');
                    writer.send(line);
                }
                Err(e) => tracing::warn!(error = %e, "audit record not serializable"),
            }
        }
    }
}

/// Milliseconds with microsecond precision.
fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// Replaces the value of every object key in `redact` (lowercase) by
/// `"[redacted]"`, at any depth. Depth is bounded by the parser that built
/// `value` (serde_json refuses nesting past 128).
pub(crate) fn redact(value: &mut Value, redact: &[String]) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if redact.iter().any(|r| key_matches(key, r)) {
                    *v = Value::String(REDACTED.to_owned());
                } else {
                    redact_nested(v, redact);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_nested(v, redact)),
        _ => {}
    }
}

fn redact_nested(value: &mut Value, keys: &[String]) {
    if value.is_object() || value.is_array() {
        redact(value, keys);
    }
}

/// A key matches when it *contains* the configured word, ignoring case,
/// `_` and `-`: `token` covers `access_token` and `refreshToken`, `api_key`
/// covers `X-Api-Key` and `apiKey`. Over-redacting a log is cheap;
/// leaking a credential into one is not.
fn key_matches(key: &str, word: &str) -> bool {
    let normal =
        |s: &str| s.chars().filter(|c| !matches!(c, '_' | '-')).flat_map(char::to_lowercase).collect::<String>();
    normal(key).contains(&normal(word))
}

/// Parses logged JSON text and redacts it; too long a text is not kept.
pub(crate) fn logged(text: &[u8], keys: &[String]) -> Option<Logged> {
    if text.len() > MAX_LOGGED {
        return Some(Logged::Truncated);
    }
    let mut value: Value = serde_json::from_slice(text).ok()?;
    redact(&mut value, keys);
    Some(Logged::Value(value))
}

/// The first 12 hex digits of the SHA-256 of a session id: enough to tell
/// sessions apart in a log, useless to take one over.
pub(crate) fn short_session(id: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id);
    digest.as_ref().iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// `time` as RFC 3339 in UTC with milliseconds, e.g. `2026-11-21T07:31:53.123Z`.
pub(crate) fn rfc3339_millis(time: SystemTime) -> String {
    // Before 1970 only with a broken clock: shown as the epoch.
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn times_are_rfc3339_utc_with_millis() {
        let at = |secs: u64, ms: u64| rfc3339_millis(UNIX_EPOCH + Duration::from_millis(secs * 1000 + ms));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_825_600, 7), "2000-02-29T12:00:00.007Z");
        assert_eq!(at(1_795_245_113, 123), "2026-11-21T07:11:53.123Z");
        assert_eq!(at(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn redaction_is_case_insensitive_and_nested() {
        let keys = vec!["password".to_owned(), "api_key".to_owned(), "clé".to_owned()];
        let mut v = json!({"user": "u", "PassWord": "p", "nested": [{"Api_Key": {"deep": 1}, "ok": "x"}], "CLÉ": 1});
        redact(&mut v, &keys);
        assert_eq!(
            v,
            json!({"user": "u", "PassWord": "[redacted]", "nested": [{"Api_Key": "[redacted]", "ok": "x"}], "CLÉ": "[redacted]"})
        );
        assert!(matches!(logged(&vec![b' '; MAX_LOGGED + 1], &keys), Some(Logged::Truncated)));
        let keys = vec!["token".to_owned(), "api_key".to_owned()];
        let mut v = json!({"access_token": 1, "refreshToken": 2, "X-Api-Key": 3, "apiKey": 4, "tokenizer_name": 5, "city": "x"});
        redact(&mut v, &keys);
        let kept: Vec<&str> = v
            .as_object()
            .expect("object")
            .iter()
            .filter(|(_, v)| **v != "[redacted]")
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(kept, ["city"], "containment over-redacts rather than leaks");
    }

    #[test]
    fn sessions_are_shortened_hashes() {
        let s = short_session(b"secret-session-id");
        assert_eq!(s.len(), 12);
        assert!(s.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(s, short_session(b"another"));
    }
}
