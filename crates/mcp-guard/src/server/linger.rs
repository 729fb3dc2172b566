//! Lingering: read and discard what a client is still sending after it
//! has been refused.
//!
//! Most refusals (403, 413, 429, …) are decided before the request body is
//! read. HTTP/1.1 then has a race: hyper stops reading a body nobody wants
//! and closes the connection, and a client still writing its body gets a
//! reset instead of the answer. This layer wraps each request body so that a
//! body dropped unread is handed back instead of closed, and drains it in
//! the background (at most [`DRAIN_BYTES`] within [`DRAIN_TIME`]) while the
//! response is written. The client then reads its 413 like any other answer;
//! past the bounds the connection is closed as before.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use mcp_guard_layers::future::{HookFuture, OnResponse};
use tower::{Layer, Service};

use crate::body::BoxBody;

/// Most bytes read and discarded after a refusal.
const DRAIN_BYTES: usize = 16 << 20;
/// Longest time spent doing so.
const DRAIN_TIME: Duration = Duration::from_secs(5);

type Slot = Arc<Mutex<Option<BoxBody>>>;

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LingerLayer;

impl<S> Layer<S> for LingerLayer {
    type Service = Linger<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Linger { inner }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Linger<S> {
    inner: S,
}

impl<S, ResBody> Service<Request<BoxBody>> for Linger<S>
where
    S: Service<Request<BoxBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = HookFuture<S::Future, DrainUnread>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<BoxBody>) -> Self::Future {
        // Bodiless requests (most GETs and DELETEs) need no slot.
        if req.body().is_end_stream() {
            return HookFuture::new(self.inner.call(req), DrainUnread(None));
        }
        let slot = Slot::default();
        let req = req.map(|body| BoxBody::new(HandBack { inner: Some(body), slot: Arc::clone(&slot) }));
        HookFuture::new(self.inner.call(req), DrainUnread(Some(slot)))
    }
}

/// Once the response is ready: drains whatever body was handed back.
#[derive(Debug)]
pub(crate) struct DrainUnread(Option<Slot>);

impl OnResponse for DrainUnread {
    fn on_response<B>(self, _response: &mut Response<B>) {
        let unread = self.0.and_then(|slot| slot.lock().ok().and_then(|mut s| s.take()));
        if let Some(body) = unread {
            tokio::spawn(drain(body));
        }
    }
}

async fn drain(mut body: BoxBody) {
    let mut seen = 0usize;
    let read = async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > DRAIN_BYTES {
                break;
            }
        }
    };
    // Past either bound the body is dropped, and hyper closes the connection.
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}

/// A request body that, dropped before its end, returns what is left of
/// itself to the slot instead of closing it.
struct HandBack {
    inner: Option<BoxBody>,
    slot: Slot,
}

impl Body for HandBack {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

impl Drop for HandBack {
    fn drop(&mut self) {
        if let Some(body) = self.inner.take().filter(|b| !b.is_end_stream())
            && let Ok(mut slot) = self.slot.lock()
        {
            *slot = Some(body);
        }
    }
}
