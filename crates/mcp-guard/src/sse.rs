//! Server-sent events written by the gateway itself (stdio sessions).
//!
//! [`SseBody`] is an HTTP body fed by a channel of JSON-RPC messages: each
//! is written as one `message` event the moment it arrives, with a comment line every
//! keep-alive interval so idle proxies do not cut the stream. It ends when
//! every sender is gone.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Response, header};
use http_body::{Body, Frame, SizeHint};
use tokio::{sync::mpsc, time::Interval};

use crate::body::BoxBody;

/// One JSON-RPC message as an SSE `message` event.
pub fn message_event(json: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(json.len() + 24);
    out.put_slice(b"event: message\ndata: ");
    // A valid JSON text has CR or LF only as insignificant whitespace, but
    // either would end the SSE `data:` line early: write them as spaces.
    out.extend(json.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.put_slice(b"\n\n");
    out.freeze()
}

const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// A streaming SSE body.
#[derive(Debug)]
pub struct SseBody {
    rx: mpsc::Receiver<Bytes>,
    keep_alive: Interval,
}

impl SseBody {
    /// A body that writes each message `rx` receives as an event, with a keep-alive comment every `every`.
    pub fn new(rx: mpsc::Receiver<Bytes>, every: Duration) -> Self {
        let mut keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        SseBody { rx, keep_alive }
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(message)) => return Poll::Ready(Some(Ok(Frame::data(message_event(&message))))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        match self.keep_alive.poll_tick(cx) {
            Poll::Ready(_) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(KEEP_ALIVE))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A `200 text/event-stream` response around `body`, with the headers that
/// stop proxies from buffering or transforming the stream.
pub fn response(body: SseBody) -> Response<BoxBody> {
    let mut res = Response::new(BoxBody::new(body));
    set_stream_headers(res.headers_mut());
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    res
}

/// Headers every SSE response carries, upstream's or our own.
pub fn set_stream_headers(headers: &mut http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-transform"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn events_stay_on_one_data_line() {
        assert_eq!(&message_event(b"{\"a\":1}")[..], b"event: message\ndata: {\"a\":1}\n\n");
        assert_eq!(&message_event(b"{\r\n\"a\":1}")[..], b"event: message\ndata: {  \"a\":1}\n\n");
    }

    #[tokio::test(start_paused = true)]
    async fn body_streams_events_then_keep_alives_then_ends() {
        let (tx, rx) = mpsc::channel(4);
        let mut body = SseBody::new(rx, Duration::from_secs(15));
        tx.send(Bytes::from_static(b"{}")).await.expect("open");
        let frame = body.frame().await.expect("frame").expect("infallible");
        assert_eq!(frame.into_data().expect("data"), "event: message\ndata: {}\n\n");
        let frame = body.frame().await.expect("frame").expect("infallible");
        assert_eq!(frame.into_data().expect("data"), KEEP_ALIVE);
        drop(tx);
        assert!(body.frame().await.is_none());
    }
}
