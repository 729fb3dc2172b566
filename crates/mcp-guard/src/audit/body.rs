//! The response body of [`Audit`](super::Audit): passed through unchanged,
//! while it watches for the end of the answer (to time it and write the
//! records, exactly once) and, for tools whose results are audited, reads
//! the JSON-RPC response to each request as it streams by.

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Response, header};
use http_body::{Body, Frame, SizeHint};
use mcp_guard_layers::{
    Rejection,
    policy::Refused,
    sse::{SseEvent, SseParser},
    transport::{MCP_SESSION_ID, is_event_stream},
};
use pin_project_lite::pin_project;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::record::{Answer, Entry, Logged, MAX_LOGGED, Outcome, Pending, logged, short_session};

/// Most bytes held to find the results in: a logged result plus its envelope.
const MAX_CAPTURE: usize = MAX_LOGGED + 4096;

pin_project! {
    /// Response body of [`Audit`](super::Audit).
    pub struct AuditBody<B> {
        #[pin]
        inner: B,
        audit: Option<Box<Streaming>>,
    }

    impl<B> PinnedDrop for AuditBody<B> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped unfinished: the client went away, or the server stopped
            // polling after `is_end_stream`. Either way the answer is over.
            if let Some(streaming) = this.project().audit.take() {
                streaming.end(false);
            }
        }
    }
}

impl<B> fmt::Debug for AuditBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.audit.is_some() { "AuditBody::Watching" } else { "AuditBody::Plain" })
    }
}

/// An answer being watched.
struct Streaming {
    pending: Pending,
    outcome: Outcome,
    capture: Option<Capture>,
}

/// Where the results of audited tools are looked for.
enum Capture {
    Json { buffer: Vec<u8>, over: bool },
    Sse { parser: SseParser, events: Vec<SseEvent>, over: bool },
}

impl<B> AuditBody<B> {
    fn plain(inner: B) -> Self {
        AuditBody { inner, audit: None }
    }

    /// Wraps an answer to the requests in `pending`.
    pub(crate) fn attach(response: Response<B>, pending: Option<Pending>) -> Response<AuditBody<B>> {
        let Some(mut pending) = pending else {
            return response.map(AuditBody::plain);
        };
        let outcome = Outcome {
            status: Some(response.status().as_u16()),
            refused: response.extensions().get::<Refused>().cloned(),
            rejection: response.extensions().get::<Rejection>().copied(),
            body_error: false,
        };
        // An initialize learns its session from the answer.
        let initialize = pending.entries.iter().any(|e| &*e.method == "initialize");
        if pending.shared.writer.is_some() && pending.session.is_none() && initialize {
            pending.session = response.headers().get(&MCP_SESSION_ID).map(|v| short_session(v.as_bytes()));
        }
        let capture = pending.entries.iter().any(|e| e.want_result).then(|| capture_for(&response)).flatten();
        let streaming = Box::new(Streaming { pending, outcome, capture });
        response.map(|body| AuditBody { inner: body, audit: Some(streaming) })
    }
}

fn capture_for<B>(response: &Response<B>) -> Option<Capture> {
    if is_event_stream(response.headers()) {
        return Some(Capture::Sse { parser: SseParser::new(MAX_CAPTURE), events: Vec::new(), over: false });
    }
    let json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    json.then(|| Capture::Json { buffer: Vec::new(), over: false })
}

impl<B: Default> Default for AuditBody<B> {
    fn default() -> Self {
        AuditBody::plain(B::default())
    }
}

impl<B: From<Bytes>> From<Bytes> for AuditBody<B> {
    fn from(bytes: Bytes) -> Self {
        AuditBody::plain(B::from(bytes))
    }
}

impl<B: Body<Data = Bytes>> Body for AuditBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let (Some(data), Some(streaming)) = (f.data_ref(), this.audit.as_mut()) {
                    streaming.feed(data);
                }
            }
            // Writes the records, once: at the end of the body, on its error, or on drop.
            Some(Err(_)) => {
                if let Some(streaming) = this.audit.take() {
                    streaming.end(true);
                }
            }
            None => {
                if let Some(streaming) = this.audit.take() {
                    streaming.end(false);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Streaming {
    fn feed(&mut self, data: &[u8]) {
        let keys = &self.pending.shared.redact;
        match &mut self.capture {
            None => {}
            Some(Capture::Json { buffer, over }) => {
                if !*over && buffer.len() + data.len() > MAX_CAPTURE {
                    *over = true;
                    *buffer = Vec::new();
                } else if !*over {
                    buffer.extend_from_slice(data);
                }
            }
            Some(Capture::Sse { parser, events, over }) => {
                // An oversized event is skipped; its result is reported truncated.
                if parser.feed(data, events).is_err() {
                    *over = true;
                }
                for event in events.drain(..) {
                    find_answers(&mut self.pending.entries, event.data.as_bytes(), keys);
                }
                // Every result found: the rest of the stream needs no parsing.
                if self.pending.entries.iter().all(|e| !e.want_result || e.answer.is_some()) {
                    self.capture = None;
                }
            }
        }
    }

    fn end(mut self, body_error: bool) {
        let over = match &self.capture {
            Some(Capture::Json { buffer, over }) => {
                find_answers(&mut self.pending.entries, buffer, &self.pending.shared.redact);
                *over
            }
            Some(Capture::Sse { over, .. }) => *over,
            None => false,
        };
        if over {
            for entry in self.pending.entries.iter_mut().filter(|e| e.want_result && e.answer.is_none()) {
                entry.answer = Some(Answer::Result(Logged::Truncated));
            }
        }
        self.outcome.body_error = body_error;
        self.pending.finish(&self.outcome);
    }
}

/// A JSON-RPC message, read just enough to find a response and its id.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// Records, for each request that wants it, the response to it in `json`
/// (one message or a batch); anything else is ignored.
fn find_answers(entries: &mut [Entry], json: &[u8], keys: &[String]) {
    let first = json.iter().find(|b| !b.is_ascii_whitespace());
    let messages: Vec<Message<'_>> = match first {
        Some(b'[') => serde_json::from_slice(json).unwrap_or_default(),
        Some(b'{') => serde_json::from_slice(json).map(|m| vec![m]).unwrap_or_default(),
        _ => return,
    };
    for message in messages {
        let Some(id) = message.id else { continue };
        let wanted = entries.iter_mut().find(|e| e.want_result && e.answer.is_none() && e.id.as_json() == id.get());
        if let Some(entry) = wanted {
            entry.answer = match (message.result, message.error) {
                (Some(r), _) => logged(r.get().as_bytes(), keys).map(Answer::Result),
                (None, Some(e)) => logged(e.get().as_bytes(), keys).map(Answer::Error),
                (None, None) => None,
            };
        }
    }
}
