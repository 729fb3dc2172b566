//! Just enough JSON-RPC 2.0 to classify an MCP message.
//!
//! [`inspect`] reads a POST body once and returns what later layers and
//! upstreams need: for each message its kind, method, id, the tool name of a
//! `tools/call`, the prompt or resource a request names, where a call's
//! `arguments` lie, and the `protocolVersion` of an `initialize`. Fields it
//! does not need (`arguments` themselves, `result`) stay unparsed raw JSON, so
//! the cost is one pass over the bytes plus a few small allocations.
//!
//! Nesting depth is checked by a byte scan *before* parsing, so a hostile
//! document of a million `[` is refused in linear time without recursion.

use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::rejection::Rejection;

/// What a single JSON-RPC message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// Has a `method` and an `id`: expects a response.
    Request,
    /// Has a `method` and no `id`.
    Notification,
    /// Has an `id` and exactly one of `result` or `error`.
    Response,
}

/// A JSON-RPC id kept as canonical JSON text (`42` and `"42"` differ), so it
/// can key a routing table and be echoed back.
///
/// Canonical is how serde_json writes the value: `"\u0061"` is kept as
/// `"a"` and `-0` as `0`, so an id matches the peer's echo of it however
/// the sender spelled it. (Comparing raw spellings would let a client
/// dodge every check keyed on the id of its request.)
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(Box<str>);

impl RequestId {
    /// The id's JSON text, e.g. `7` or `"abc"`.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// Builds an id from JSON text already known to be a string or number.
    pub fn from_json_text(text: &str) -> Self {
        RequestId(text.into())
    }
}

/// The classification of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageInfo {
    /// Request, notification or response.
    pub kind: MessageKind,
    /// `method`, for requests and notifications.
    pub method: Option<Box<str>>,
    /// `id`, for requests and responses.
    pub id: Option<RequestId>,
    /// `params.name` of a `tools/call` request.
    pub tool: Option<Box<str>>,
    /// `params.name` of a `prompts/get` request.
    pub prompt: Option<Box<str>>,
    /// `params.uri` of a `resources/read`, `resources/subscribe` or
    /// `resources/unsubscribe` request.
    pub uri: Option<Box<str>>,
    /// Where the `params.arguments` JSON of a `tools/call` lies in the
    /// inspected body (see [`Inspection::body`]).
    pub arguments: Option<Range<usize>>,
    /// `params.protocolVersion` of an `initialize` request.
    pub protocol_version: Option<Box<str>>,
    /// `params._meta.progressToken` of a request, or `params.progressToken`
    /// of a progress notification, as JSON text.
    pub progress_token: Option<Box<str>>,
    /// Where this message's JSON text lies in the inspected body.
    pub span: Range<usize>,
}

impl MessageInfo {
    /// True for an `initialize` request.
    pub fn is_initialize(&self) -> bool {
        self.kind == MessageKind::Request && self.method.as_deref() == Some("initialize")
    }
}

/// The classification of a POST body: one message, or a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// The messages, in body order.
    pub messages: Vec<MessageInfo>,
    /// True when the body was a JSON array (a JSON-RPC batch).
    pub batch: bool,
    /// The body the spans index into. Set by the inspection layer (a
    /// reference-counted view of the forwarded bytes, not a copy); empty
    /// when [`inspect`] is called directly.
    pub body: Bytes,
}

impl Inspection {
    /// True when any message expects a response.
    pub fn has_requests(&self) -> bool {
        self.messages.iter().any(|m| m.kind == MessageKind::Request)
    }

    /// The JSON text at `span` in [`Inspection::body`] (a message or its
    /// `arguments`), or `None` if the span is not in the body.
    pub fn text(&self, span: &Range<usize>) -> Option<&str> {
        self.body.get(span.clone()).and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The single `initialize` request, if that is what the body is.
    pub fn initialize(&self) -> Option<&MessageInfo> {
        match self.messages.as_slice() {
            [only] if only.is_initialize() => Some(only),
            _ => None,
        }
    }
}

/// Limits applied while inspecting.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Deepest allowed nesting of arrays and objects (the top level is 1).
    pub max_depth: usize,
    /// Longest allowed batch.
    pub max_batch: usize,
}

impl Default for Limits {
    /// Depth 64 is far beyond any real MCP message and well inside
    /// serde_json's own recursion limit; batches of 100 cover every client.
    fn default() -> Self {
        Limits { max_depth: 64, max_batch: 100 }
    }
}

// Raw fields keep "present but null" apart from "absent": `"id": null` is
// not a notification, and `"result": null` is still a response.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    method: Option<String>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Params<'a> {
    name: Option<String>,
    uri: Option<String>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
    #[serde(rename = "protocolVersion")]
    protocol_version: Option<String>,
    #[serde(rename = "progressToken", borrow)]
    progress_token: Option<&'a RawValue>,
    #[serde(rename = "_meta", borrow)]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(rename = "progressToken", borrow)]
    progress_token: Option<&'a RawValue>,
}

/// Classifies a POST body. Errors are the rejection to answer with.
pub fn inspect(body: &[u8], limits: Limits) -> Result<Inspection, Rejection> {
    if nesting_depth(body) > limits.max_depth {
        return Err(Rejection::NestingTooDeep);
    }
    // JSON text is UTF-8 (RFC 8259 §8.1). serde_json skips fields it ignores
    // without checking them, so without this a body could be accepted whose
    // spans are not text: a layer that re-reads a message (the policy's
    // `completion/complete` check) would find nothing to judge.
    let body = std::str::from_utf8(body).map_err(|_| Rejection::ParseError)?;
    let first = body.bytes().find(|b| !b.is_ascii_whitespace());
    if first == Some(b'[') {
        let items: Vec<&RawValue> = serde_json::from_str(body).map_err(parse_rejection)?;
        if items.is_empty() {
            return Err(Rejection::InvalidMessage);
        }
        if items.len() > limits.max_batch {
            return Err(Rejection::BatchTooLong);
        }
        let base = body.as_ptr() as usize;
        let messages: Vec<MessageInfo> = items
            .iter()
            .map(|raw| {
                // The element borrows from `body`: its offset is a pointer difference.
                let start = offset(base, raw.get());
                classify_raw(raw.get(), start..start + raw.get().len())
            })
            .collect::<Result<_, _>>()?;
        // "The initialize request MUST NOT be part of a JSON-RPC batch"
        // (2025-03-26, the one revision with batches). Refused here, a batched
        // one cannot open a session or skip the version cross-check.
        if messages.iter().any(MessageInfo::is_initialize) {
            return Err(Rejection::InvalidMessage);
        }
        Ok(Inspection { messages, batch: true, body: Bytes::new() })
    } else {
        let envelope: Envelope<'_> = serde_json::from_str(body).map_err(parse_rejection)?;
        let message = classify(envelope, body.as_ptr() as usize, 0..body.len())?;
        Ok(Inspection { messages: vec![message], batch: false, body: Bytes::new() })
    }
}

/// Where `part`, which borrows from the text starting at address `base`, starts in it.
fn offset(base: usize, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(base)
}

/// Classifies one message given as JSON text (an element of a batch, or a
/// line read from a stdio server).
pub fn classify_message(json: &str) -> Result<MessageInfo, Rejection> {
    classify_raw(json, 0..json.len())
}

fn classify_raw(json: &str, span: Range<usize>) -> Result<MessageInfo, Rejection> {
    let envelope: Envelope<'_> = serde_json::from_str(json).map_err(|e| {
        // Inside a batch the JSON already parsed; a type error means "not a message".
        if e.is_data() { Rejection::InvalidMessage } else { Rejection::ParseError }
    })?;
    classify(envelope, json.as_ptr() as usize, span)
}

fn parse_rejection(e: serde_json::Error) -> Rejection {
    match e.classify() {
        // Valid JSON of the wrong shape (a number, a string, `{"id": {}}`).
        serde_json::error::Category::Data => Rejection::InvalidMessage,
        _ => Rejection::ParseError,
    }
}

/// `base` is the address of the message's first byte, `span` where it lies
/// in the body: together they place the borrowed `arguments` in the body.
fn classify(envelope: Envelope<'_>, base: usize, span: Range<usize>) -> Result<MessageInfo, Rejection> {
    if envelope.jsonrpc.map(RawValue::get) != Some(r#""2.0""#) {
        return Err(Rejection::InvalidMessage);
    }
    let id = match envelope.id {
        None => None,
        Some(raw) => Some(valid_id(raw.get())?),
    };
    let kind = match (&envelope.method, &id, envelope.result.is_some(), envelope.error.is_some()) {
        (Some(_), Some(_), false, false) => MessageKind::Request,
        (Some(_), None, false, false) => MessageKind::Notification,
        (None, Some(_), true, false) | (None, Some(_), false, true) => MessageKind::Response,
        _ => return Err(Rejection::InvalidMessage),
    };
    let mut info = MessageInfo {
        kind,
        method: envelope.method.map(String::into_boxed_str),
        id,
        tool: None,
        prompt: None,
        uri: None,
        arguments: None,
        protocol_version: None,
        progress_token: None,
        span: span.clone(),
    };
    // MCP params are always objects; positional (array) params carry none of
    // the fields read here and are left for the server to judge.
    let params = envelope.params.filter(|p| p.get().starts_with('{'));
    let is_progress = info.method.as_deref() == Some("notifications/progress");
    if let (true, Some(params)) = (kind == MessageKind::Request || is_progress, params) {
        let params: Params<'_> = serde_json::from_str(params.get()).map_err(|_| Rejection::InvalidMessage)?;
        let token = match kind {
            MessageKind::Request => params.meta.and_then(|m| m.progress_token),
            _ => params.progress_token,
        };
        info.progress_token = token.map(|t| t.get().into());
        match info.method.as_deref() {
            Some("tools/call") => {
                info.tool = params.name.map(String::into_boxed_str);
                info.arguments = params.arguments.map(|a| {
                    let start = span.start + offset(base, a.get());
                    start..start + a.get().len()
                });
            }
            Some("prompts/get") => info.prompt = params.name.map(String::into_boxed_str),
            Some("resources/read" | "resources/subscribe" | "resources/unsubscribe") => {
                info.uri = params.uri.map(String::into_boxed_str);
            }
            Some("initialize") => info.protocol_version = params.protocol_version.map(String::into_boxed_str),
            _ => {}
        }
    }
    Ok(info)
}

/// MCP ids are strings or integers; `null`, objects, arrays and fractions
/// are refused. The id is kept in canonical form (see [`RequestId`]).
fn valid_id(text: &str) -> Result<RequestId, Rejection> {
    match text.as_bytes().split_first() {
        Some((b'"', _)) if !text.contains('\\') => Ok(RequestId::from_json_text(text)),
        Some((b'"', _)) => {
            // Escapes: decode, then write back as serde_json does.
            let decoded: String = serde_json::from_str(text).map_err(|_| Rejection::InvalidMessage)?;
            let canonical = serde_json::to_string(&decoded).map_err(|_| Rejection::InvalidMessage)?;
            Ok(RequestId(canonical.into()))
        }
        Some((b'-' | b'0'..=b'9', rest)) if rest.iter().all(u8::is_ascii_digit) => {
            // The JSON grammar already refused leading zeros; `-0` is the one other spelling.
            Ok(RequestId::from_json_text(if text == "-0" { "0" } else { text }))
        }
        _ => Err(Rejection::InvalidMessage),
    }
}

/// The deepest nesting of arrays and objects in a JSON text, ignoring
/// brackets inside strings. Malformed input still yields a number; the parser
/// reports the syntax error afterwards.
pub fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(body: &str) -> Result<MessageInfo, Rejection> {
        inspect(body.as_bytes(), Limits::default()).map(|i| {
            assert!(!i.batch);
            i.messages.into_iter().next().expect("one message")
        })
    }

    #[test]
    fn classifies_messages() {
        let cases: &[(&str, Result<MessageKind, Rejection>)] = &[
            (r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, Ok(MessageKind::Request)),
            (r#"{"jsonrpc":"2.0","id":"a","method":"tools/list","params":{}}"#, Ok(MessageKind::Request)),
            (r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, Ok(MessageKind::Notification)),
            (r#"{"jsonrpc":"2.0","id":3,"result":{}}"#, Ok(MessageKind::Response)),
            (r#"{"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"x"}}"#, Ok(MessageKind::Response)),
            (r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, Err(Rejection::InvalidMessage)),
            (r#"{"id":1,"method":"ping"}"#, Err(Rejection::InvalidMessage)),
            (r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, Err(Rejection::InvalidMessage)),
            (r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, Err(Rejection::InvalidMessage)),
            (r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#, Err(Rejection::InvalidMessage)),
            (r#"{"jsonrpc":"2.0","id":3,"result":{},"error":{}}"#, Err(Rejection::InvalidMessage)),
            (r#"{"jsonrpc":"2.0","method":1}"#, Err(Rejection::InvalidMessage)),
            (r#"{"jsonrpc":"2.0"}"#, Err(Rejection::InvalidMessage)),
            (r#"42"#, Err(Rejection::InvalidMessage)),
            (r#"{"jsonrpc":"2.0","id":1,"method":"ping""#, Err(Rejection::ParseError)),
            ("not json", Err(Rejection::ParseError)),
            ("", Err(Rejection::ParseError)),
        ];
        for (body, want) in cases {
            assert_eq!(one(body).map(|m| m.kind), *want, "{body}");
        }
    }

    #[test]
    fn extracts_tool_and_protocol_version() {
        let m =
            one(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"a":[1,2]}}}"#)
                .expect("valid");
        assert_eq!(m.tool.as_deref(), Some("echo"));
        assert_eq!(m.id.as_ref().map(RequestId::as_json), Some("9"));
        let m = one(r#"{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"p","arguments":{}}}"#)
            .expect("valid");
        assert_eq!((m.prompt.as_deref(), m.arguments), (Some("p"), None), "only a tool call's arguments are placed");
        let m =
            one(r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a"}}"#).expect("valid");
        assert_eq!(m.uri.as_deref(), Some("file:///a"));
        let m = one(
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"c","_meta":{"progressToken":"p1"}}}"#,
        )
        .expect("valid");
        assert_eq!(m.progress_token.as_deref(), Some(r#""p1""#));
        let m = one(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":7,"progress":1}}"#)
            .expect("valid");
        assert_eq!(m.progress_token.as_deref(), Some("7"));
        let m = one(r#"{"jsonrpc":"2.0","id":"x","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}"#)
            .expect("valid");
        assert!(m.is_initialize());
        assert_eq!(m.protocol_version.as_deref(), Some("2025-06-18"));
        assert_eq!(m.id.as_ref().map(RequestId::as_json), Some(r#""x""#));
    }

    #[test]
    fn arguments_are_placed_in_the_body_single_and_batched() {
        let call =
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments": {"a" : [1, "}"]}}}"#;
        let batch = format!(r#"[ {{"jsonrpc":"2.0","method":"n"}}, {call} ]"#);
        for body in [call.to_owned(), batch] {
            let mut i = inspect(body.as_bytes(), Limits::default()).expect("valid");
            i.body = Bytes::from(body.clone());
            let m = i.messages.last().expect("a message");
            let args = m.arguments.clone().expect("arguments placed");
            assert_eq!(i.text(&args), Some(r#"{"a" : [1, "}"]}"#), "{body}");
            assert_eq!(i.text(&m.span), Some(call));
        }
    }

    #[test]
    fn ids_are_canonical_however_they_are_spelled() {
        let id = |raw: &str| {
            one(&format!(r#"{{"jsonrpc":"2.0","id":{raw},"method":"ping"}}"#)).expect("valid").id.expect("id")
        };
        for (raw, canonical) in [
            (r#""a""#, r#""a""#),
            (r#""\u0061""#, r#""a""#),
            (r#""a\/b""#, r#""a/b""#),
            (r#""\u00e9\n""#, "\"\u{e9}\\n\""),
            ("-0", "0"),
            ("-7", "-7"),
            ("12", "12"),
        ] {
            assert_eq!(id(raw).as_json(), canonical, "{raw}");
        }
    }

    #[test]
    fn batches_are_classified_and_capped() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"n"}]"#;
        let i = inspect(body.as_bytes(), Limits::default()).expect("valid batch");
        assert!(i.batch && i.has_requests() && i.initialize().is_none());
        assert_eq!(i.messages.len(), 2);
        assert_eq!(&body[i.messages[1].span.clone()], r#"{"jsonrpc":"2.0","method":"n"}"#);
        let limits = Limits { max_batch: 1, ..Limits::default() };
        assert_eq!(inspect(body.as_bytes(), limits), Err(Rejection::BatchTooLong));
        assert_eq!(inspect(b"[]", Limits::default()), Err(Rejection::InvalidMessage));
        assert_eq!(inspect(b"[1]", Limits::default()), Err(Rejection::InvalidMessage));
    }

    /// Found by the `jsonrpc_inspect` fuzz target: invalid UTF-8 in a field
    /// serde_json ignores was accepted, so the message's span was not text
    /// and the policy could not read a `completion/complete` it had to judge.
    #[test]
    fn invalid_utf8_is_a_parse_error_even_where_ignored() {
        let bodies: [&[u8]; 3] = [
            b"{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"completion/complete\",\"x\":\"\xc7\",\"params\":{}}",
            b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\xff\"}]",
            b"{\"jsonrpc\":\"2.0\",\"method\":\"n\"} \xfe",
        ];
        for body in bodies {
            assert_eq!(inspect(body, Limits::default()), Err(Rejection::ParseError), "{}", body.escape_ascii());
        }
    }

    /// Found by the `jsonrpc_inspect` fuzz target: a batch of one
    /// `initialize` passed as an initialize (it could open a stdio session),
    /// and one beside other messages was not seen as one at all.
    #[test]
    fn initialize_is_refused_inside_a_batch() {
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}"#;
        let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        for body in [format!("[{init}]"), format!("[{ping},{init}]")] {
            assert_eq!(inspect(body.as_bytes(), Limits::default()), Err(Rejection::InvalidMessage), "{body}");
        }
        assert!(inspect(init.as_bytes(), Limits::default()).expect("alone it is fine").initialize().is_some());
    }

    #[test]
    fn depth_is_bounded_before_parsing() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(inspect(deep.as_bytes(), Limits::default()), Err(Rejection::NestingTooDeep));
        assert_eq!(nesting_depth(br#"{"a":"[[[[[[","b":[{}]}"#), 3);
        assert_eq!(nesting_depth(br#"{"a":"\"[[[","b":1}"#), 1);
    }
}
