//! Server-sent events: `sse::SseParser` over a stream fed whole and in chunks
//! split where the input says (one seed in 32: a byte at a time); the gateway's own
//! event writer (`mcp_guard::sse::message_event`); and the access policy
//! rewriting a `tools/list` answer streamed as SSE (`policy/body.rs`).
//!
//! Input: byte 0 picks the parser's event size limit, byte 1 seeds the
//! chunk lengths, the rest is the stream.
//!
//! Invariants: chunking never changes the events, the last event id, the
//! retry time or whether an event was too large; values hold no line
//! breaks; a stream restarted after `finish` parses the same; a written
//! event reads back as the one message it carries; and what a client reads
//! from the policy's output is the upstream's events, with no tool the
//! policy denies left in the answer to the filtered request.

#![no_main]

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    future::Ready,
    pin::Pin,
    sync::{LazyLock, Mutex},
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body::{Body, Frame};
use libfuzzer_sys::fuzz_target;
use mcp_guard_fuzz::{Choices, ready};
use mcp_guard_layers::{
    jsonrpc::{Limits, inspect},
    policy::{
        AccessPolicyLayer, AccessPolicyService,
        rules::{AccessPolicy, Effect, Kind, RuleSpec},
    },
    sse::{SseEvent, SseParser},
};
use serde_json::Value;
use tower::{Layer, Service, service_fn, util::ServiceFn};

const LIMITS: [usize; 6] = [1, 8, 64, 512, 4096, 16 << 20];

fuzz_target!(|data: &[u8]| {
    let [limit, seed, stream @ ..] = data else { return };
    let limit = LIMITS[usize::from(*limit) % LIMITS.len()];
    let chunks = chunks(stream, *seed);

    // One seed in 32 gives chunks of one byte: byte-at-a-time is covered.
    let whole = parse(limit, &[stream], true);
    let split = parse(limit, &chunks, false);
    assert_eq!(whole, split, "chunking changed the parse");
    for event in &whole.events {
        for value in [event.event.as_deref(), event.id.as_deref(), Some(event.data.as_str())].into_iter().flatten() {
            assert!(!value.contains('\r'), "CR in a value");
        }
        assert!(!event.event.as_deref().unwrap_or_default().contains('\n'), "LF in an event type");
        assert!(!event.id.as_deref().unwrap_or_default().contains(['\n', '\0']), "LF or NUL in an id");
    }

    written_event(stream);
    policy_rewrite(stream, &chunks);
});

/// What a parser made of a stream.
#[derive(Debug, PartialEq)]
struct Parsed {
    events: Vec<SseEvent>,
    too_large: bool,
    last_event_id: String,
    retry: Option<u64>,
    at_boundary: bool,
}

fn parse(limit: usize, chunks: &[&[u8]], restart: bool) -> Parsed {
    let mut parser = SseParser::new(limit);
    let run = |parser: &mut SseParser| {
        let mut events = Vec::new();
        let mut too_large = false;
        for chunk in chunks {
            too_large |= parser.feed(chunk, &mut events).is_err();
        }
        (events, too_large)
    };
    let (events, too_large) = run(&mut parser);
    let parsed = Parsed {
        events,
        too_large,
        last_event_id: parser.last_event_id().to_owned(),
        retry: parser.retry(),
        at_boundary: parser.at_event_boundary(),
    };
    if !restart {
        return parsed;
    }
    // A reconnection: the same stream again parses to the same events.
    parser.finish();
    assert!(parser.at_event_boundary());
    let (again, again_too_large) = run(&mut parser);
    assert_eq!((&again, again_too_large), (&parsed.events, parsed.too_large), "a restarted stream parsed differently");
    parsed
}

/// Chunks of `stream` with lengths drawn from `seed`: mostly short, so
/// splits land inside lines, CRLF pairs and byte order marks.
fn chunks(stream: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut choices = Choices::new(&[seed]);
    let max = 1 + usize::from(seed % 32);
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = choices.next_in(max).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        out.push(chunk);
        rest = tail;
    }
    out
}

/// The gateway writes each stdio message as one event; it reads back as
/// that message, line breaks turned to spaces.
fn written_event(json: &[u8]) {
    let written = mcp_guard::sse::message_event(json);
    let mut events = Vec::new();
    SseParser::new(usize::MAX).feed(&written, &mut events).expect("no limit");
    let expected: Vec<u8> = json.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }).collect();
    assert_eq!(events.len(), 1, "one message, one event");
    assert_eq!(events[0].event.as_deref(), Some("message"));
    assert_eq!(events[0].data, String::from_utf8_lossy(&expected));
}

/// The upstream's answer for the current input: the policy service is built
/// once, and its inner service takes the chunks from here.
static ANSWER: Mutex<VecDeque<Bytes>> = Mutex::new(VecDeque::new());

type Answer = Ready<Result<Response<Chunks>, Infallible>>;
type Upstream = ServiceFn<fn(Request<()>) -> Answer>;

static POLICY: LazyLock<(AccessPolicy, AccessPolicyService<Upstream>)> = LazyLock::new(|| {
    let upstream: fn(Request<()>) -> Answer = |_| {
        let frames = std::mem::take(&mut *ANSWER.lock().unwrap_or_else(|e| e.into_inner()));
        let mut response = Response::new(Chunks(frames));
        response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/event-stream"));
        std::future::ready(Ok(response))
    };
    (policy(), AccessPolicyLayer::new(Some(policy()), None).layer(service_fn(upstream)))
});

fn policy() -> AccessPolicy {
    let readers = RuleSpec {
        principals: vec!["*".into()],
        effect: Effect::Allow,
        tools: vec!["get_*".into()],
        resources: vec![],
        prompts: vec![],
    };
    AccessPolicy::compile(Effect::Deny, &HashMap::new(), &[readers]).expect("the policy compiles")
}

/// Streams `chunks` as the upstream's SSE answer to `tools/list` (id 1)
/// through the access policy, and reads what the client gets.
fn policy_rewrite(stream: &[u8], chunks: &[&[u8]]) {
    let (policy, svc) = &*POLICY;
    *ANSWER.lock().unwrap_or_else(|e| e.into_inner()) = chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect();
    let mut svc = svc.clone();
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
    let inspection = inspect(body, Limits::default()).expect("a valid request");
    let mut req = Request::new(());
    *req.method_mut() = Method::POST;
    req.extensions_mut().insert(inspection);
    let Ok(response) = ready(svc.call(req));
    let mut body = std::pin::pin!(response.into_body());
    let mut output = Vec::new();
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => output.extend_from_slice(&frame.into_data().unwrap_or_default()),
            Poll::Ready(None) => break,
            Poll::Ready(Some(Err(e))) => match e {},
            Poll::Pending => panic!("the policy body waited on a body that never pends"),
        }
    }

    let sent = parse(16 << 20, &[stream], false).events;
    let mut seen = Vec::new();
    let _ = SseParser::new(16 << 20).feed(&output, &mut seen);
    assert_eq!(seen.len(), sent.len(), "the client reads a different number of events than the upstream sent");
    for (got, sent) in seen.iter().zip(&sent) {
        assert_eq!((&got.event, &got.id, got.retry), (&sent.event, &sent.id, sent.retry), "event fields changed");
        if got.data != sent.data {
            assert!(serde_json::from_str::<Value>(&got.data).is_ok(), "rewritten data is not JSON");
        }
        let Ok(message) = serde_json::from_str::<Value>(&got.data) else { continue };
        let messages = match message {
            Value::Array(items) => items,
            one => vec![one],
        };
        for m in messages.iter().filter(|m| m.get("id").and_then(Value::as_i64) == Some(1)) {
            let Some(Value::Array(tools)) = m.get("result").and_then(|r| r.get("tools")) else { continue };
            for tool in tools {
                let name = tool.get("name").and_then(Value::as_str);
                assert!(
                    name.is_some_and(|n| policy.allows(None, Kind::Tool, n)),
                    "a denied tool reached the client: {tool}"
                );
            }
        }
    }
}

/// An upstream body that yields the given chunks, ready at once.
struct Chunks(VecDeque<Bytes>);

impl From<Bytes> for Chunks {
    fn from(bytes: Bytes) -> Self {
        Chunks(VecDeque::from([bytes]))
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}
