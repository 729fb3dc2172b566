//! JSON-RPC inspection of a POST body: `jsonrpc::inspect` under the default
//! limits and under lenient ones, and `classify_message` on each message.
//!
//! Beyond "no panic", the invariants later layers rely on: every span and
//! `arguments` range lies in the body and is valid JSON text; each message's
//! fields fit its kind; a batch element classifies the same alone as in the
//! batch; ids are in canonical form; and the two limit settings agree
//! wherever both accept.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mcp_guard_layers::{
    Rejection,
    jsonrpc::{Inspection, Limits, MessageInfo, MessageKind, classify_message, inspect, nesting_depth},
};
use serde::de::IgnoredAny;
use serde_json::Value;

/// Far past what the gateway allows, to reach serde_json's own recursion
/// limit and batches longer than the default cap.
const LENIENT: Limits = Limits { max_depth: 512, max_batch: 100_000 };

fuzz_target!(|body: &[u8]| {
    let strict = inspect(body, Limits::default());
    let lenient = inspect(body, LENIENT);
    if let Ok(i) = &strict {
        check(body, i.clone());
        assert!(nesting_depth(body) <= Limits::default().max_depth);
        assert!(i.messages.len() <= Limits::default().max_batch);
        assert_eq!(lenient.as_ref().ok(), Some(i), "accepted under the default limits, not under lenient ones");
    }
    if let Ok(i) = lenient {
        check(body, i);
    }
    // A body that is not a batch is one message: classify_message must say the same.
    if let Ok(text) = std::str::from_utf8(body)
        && !text.trim_start_matches(|c: char| c.is_ascii_whitespace()).starts_with('[')
        && nesting_depth(body) <= Limits::default().max_depth
    {
        let alone = classify_message(text);
        let first = strict.as_ref().map(|i| i.messages.first());
        assert_eq!(first, alone.as_ref().map(Some), "inspect vs classify_message");
    }
    if let Err(r) = &strict {
        assert!(is_inspection_refusal(r), "unexpected refusal {r:?}");
    }
});

fn is_inspection_refusal(r: &Rejection) -> bool {
    matches!(r, Rejection::ParseError | Rejection::InvalidMessage | Rejection::NestingTooDeep | Rejection::BatchTooLong)
}

fn check(body: &[u8], mut i: Inspection) {
    assert!(!i.messages.is_empty());
    assert!(i.batch || i.messages.len() == 1);
    i.body = Bytes::copy_from_slice(body);
    let mut previous_end = 0;
    for m in &i.messages {
        let text = i.text(&m.span).unwrap_or_else(|| panic!("span {:?} not UTF-8 text in the body", m.span));
        serde_json::from_str::<IgnoredAny>(text).expect("a message span is JSON");
        assert!(m.span.start >= previous_end, "spans in body order, not overlapping");
        previous_end = m.span.end;
        if let Some(args) = &m.arguments {
            assert!(m.span.start <= args.start && args.end <= m.span.end, "arguments inside the message");
            let args = i.text(args).expect("arguments are text in the body");
            serde_json::from_str::<IgnoredAny>(args).expect("arguments are JSON");
        }
        fields_fit_kind(m);
        if i.batch {
            // Alone, the element classifies the same, with its ranges relative to itself.
            let mut alone = classify_message(text).expect("a batch element classifies alone");
            alone.span = m.span.clone();
            alone.arguments = alone.arguments.map(|a| a.start + m.span.start..a.end + m.span.start);
            assert_eq!(&alone, m, "batch element vs alone");
        }
    }
    assert_eq!(i.initialize().is_some(), !i.batch && i.messages[0].is_initialize());
    assert_eq!(i.has_requests(), i.messages.iter().any(|m| m.kind == MessageKind::Request));
}

fn fields_fit_kind(m: &MessageInfo) {
    match m.kind {
        MessageKind::Request => assert!(m.method.is_some() && m.id.is_some()),
        MessageKind::Notification => assert!(m.method.is_some() && m.id.is_none()),
        MessageKind::Response => assert!(m.method.is_none() && m.id.is_some()),
    }
    let method = m.method.as_deref();
    if m.tool.is_some() || m.arguments.is_some() {
        assert_eq!(method, Some("tools/call"));
    }
    if m.prompt.is_some() {
        assert_eq!(method, Some("prompts/get"));
    }
    if m.protocol_version.is_some() {
        assert!(m.is_initialize());
    }
    if m.uri.is_some() {
        assert!(matches!(method, Some("resources/read" | "resources/subscribe" | "resources/unsubscribe")));
    }
    if let Some(id) = &m.id {
        // Canonical: a string as serde_json writes it, or an integer of any
        // length without a sign on zero.
        let text = id.as_json();
        if text.starts_with('"') {
            let value: Value = serde_json::from_str(text).expect("a string id is JSON");
            assert_eq!(serde_json::to_string(&value).ok().as_deref(), Some(text), "id not canonical");
        } else {
            let digits = text.strip_prefix('-').unwrap_or(text);
            assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()), "id {text}");
            assert!(text != "-0" && (digits == "0" || !digits.starts_with('0')), "id {text}");
        }
    }
    if let Some(token) = &m.progress_token {
        serde_json::from_str::<IgnoredAny>(token).expect("a progress token is JSON");
    }
}
