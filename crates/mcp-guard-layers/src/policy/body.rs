//! The response body of [`AccessPolicyLayer`](super::AccessPolicyLayer):
//! passed through, or rewritten where it carries a list answer.
//!
//! A JSON answer is held until complete (it is one message, or one batch),
//! then rewritten once. An SSE answer is parsed event by event as it
//! streams; each event is re-emitted with its `id`, `event` and `retry`
//! fields, its data rewritten when it is a list answer. Chunks holding only
//! comments (keep-alives) and blank lines are passed on as they are.

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::filter::ListFilter;
use crate::sse::{SseEvent, SseParser, StreamStart};

/// Largest list answer (a JSON body, or one SSE event) held for filtering.
pub(crate) const MAX_LIST_ANSWER: usize = 16 << 20;

pin_project! {
    /// Response body of [`AccessPolicyService`](super::AccessPolicyService).
    #[project = Proj]
    pub struct PolicyBody<B> {
        #[pin]
        inner: B,
        mode: Mode,
    }
}

enum Mode {
    Plain,
    Json(Box<JsonState>),
    Sse(Box<SseState>),
}

struct JsonState {
    filter: ListFilter,
    buffer: BytesMut,
    too_large: bool,
    done: bool,
}

struct SseState {
    filter: ListFilter,
    parser: SseParser,
    events: Vec<SseEvent>,
    start: StreamStart,
}

impl<B> fmt::Debug for PolicyBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.mode {
            Mode::Plain => "PolicyBody::Plain",
            Mode::Json(_) => "PolicyBody::Json",
            Mode::Sse(_) => "PolicyBody::Sse",
        })
    }
}

impl<B> PolicyBody<B> {
    pub(crate) fn plain(inner: B) -> Self {
        PolicyBody { inner, mode: Mode::Plain }
    }

    pub(crate) fn json(inner: B, filter: ListFilter) -> Self {
        let state = JsonState { filter, buffer: BytesMut::new(), too_large: false, done: false };
        PolicyBody { inner, mode: Mode::Json(Box::new(state)) }
    }

    pub(crate) fn sse(inner: B, filter: ListFilter) -> Self {
        let state = SseState {
            filter,
            parser: SseParser::new(MAX_LIST_ANSWER),
            events: Vec::new(),
            start: StreamStart::default(),
        };
        PolicyBody { inner, mode: Mode::Sse(Box::new(state)) }
    }
}

impl<B: From<Bytes>> From<Bytes> for PolicyBody<B> {
    fn from(bytes: Bytes) -> Self {
        PolicyBody::plain(B::from(bytes))
    }
}

impl<B: Default> Default for PolicyBody<B> {
    fn default() -> Self {
        PolicyBody::plain(B::default())
    }
}

impl<B: Body<Data = Bytes>> Body for PolicyBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let Proj { mut inner, mode } = self.project();
        match mode {
            Mode::Plain => inner.poll_frame(cx),
            Mode::Json(state) => loop {
                if state.done {
                    return Poll::Ready(None);
                }
                match std::task::ready!(inner.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data()
                            && !state.too_large
                        {
                            if state.buffer.len() + data.len() > MAX_LIST_ANSWER {
                                state.too_large = true;
                                state.buffer = BytesMut::new();
                            } else {
                                state.buffer.extend_from_slice(&data);
                            }
                        }
                    }
                    Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                    None => {
                        state.done = true;
                        return Poll::Ready(Some(Ok(Frame::data(state.finish()))));
                    }
                }
            },
            Mode::Sse(state) => loop {
                match std::task::ready!(inner.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        let data = match frame.into_data() {
                            Ok(data) => data,
                            Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                        };
                        if let Some(out) = state.feed(data) {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    other => return Poll::Ready(other),
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.mode {
            Mode::Json(state) => state.done,
            Mode::Plain | Mode::Sse(_) => self.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.mode {
            Mode::Plain => self.inner.size_hint(),
            Mode::Json(_) | Mode::Sse(_) => SizeHint::default(),
        }
    }
}

impl JsonState {
    fn finish(&mut self) -> Bytes {
        if self.too_large {
            // Fail closed: an answer too large to filter is not passed on.
            tracing::warn!(event = "list_answer_too_large", limit = MAX_LIST_ANSWER, "list answer withheld");
            return Bytes::from_static(
                br#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error: the list answer is too large for the gateway to filter","data":{"reason":"list_answer_too_large"}}}"#,
            );
        }
        let buffer = std::mem::take(&mut self.buffer).freeze();
        match self.filter.rewrite(&buffer) {
            Some(rewritten) => Bytes::from(rewritten),
            None => buffer,
        }
    }
}

impl SseState {
    /// The bytes to send for one chunk of the stream, if any.
    fn feed(&mut self, data: Bytes) -> Option<Bytes> {
        let between_events = self.parser.at_event_boundary();
        let upstream_start = self.start.read(&data);
        self.events.clear();
        if self.parser.feed(&data, &mut self.events).is_err() {
            // Fail closed: the event is dropped, never passed on unfiltered.
            tracing::warn!(event = "list_answer_too_large", limit = MAX_LIST_ANSWER, "SSE event withheld");
        }
        if self.events.is_empty() {
            let only_comments = between_events && self.parser.at_event_boundary() && !data.is_empty();
            return only_comments.then(|| self.start.pass_through(data, upstream_start));
        }
        self.start.sent();
        let mut out = BytesMut::with_capacity(data.len() + 64);
        for event in &self.events {
            let rewritten = self.filter.rewrite(event.data.as_bytes());
            let text = rewritten.as_deref().unwrap_or(event.data.as_bytes());
            event.encode_with_data(text, &mut out);
        }
        Some(out.freeze())
    }
}
