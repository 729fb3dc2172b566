//! A request id for every request: set on the request (so the upstream
//! and the logs see it), in the request extensions, and on the response.
//!
//! Ids are generated here, never taken from the client: a client-chosen id
//! could collide with another request's on purpose, or smuggle text into
//! logs. The form is a per-process random prefix and a counter
//! (`3f9a1c2e-42`): unique within and across processes, and free to make.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use http::{HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service};

use crate::future::{HookFuture, OnResponse};

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request, in its extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub HeaderValue);

/// Adds a [`RequestId`] to every request and its response.
#[derive(Clone, Debug)]
pub struct RequestIdLayer {
    state: Arc<IdState>,
}

#[derive(Debug)]
struct IdState {
    prefix: u32,
    next: AtomicU64,
}

impl Default for RequestIdLayer {
    fn default() -> Self {
        use std::hash::BuildHasher;
        // Not a secret, only distinct per process: the std hasher's random keys suffice.
        let prefix = std::collections::hash_map::RandomState::new().hash_one(std::process::id()) as u32;
        RequestIdLayer { state: Arc::new(IdState { prefix, next: AtomicU64::new(1) }) }
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = SetRequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SetRequestId { inner, state: Arc::clone(&self.state) }
    }
}

/// The service of [`RequestIdLayer`].
#[derive(Clone, Debug)]
pub struct SetRequestId<S> {
    inner: S,
    state: Arc<IdState>,
}

/// Copies the id onto the response.
#[derive(Debug)]
pub struct EchoId(HeaderValue);

impl OnResponse for EchoId {
    fn on_response<B>(self, response: &mut Response<B>) {
        response.headers_mut().insert(&X_REQUEST_ID, self.0);
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SetRequestId<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = HookFuture<S::Future, EchoId>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let n = self.state.next.fetch_add(1, Ordering::Relaxed);
        let mut buf = itoa_hex(self.state.prefix, n);
        let id = HeaderValue::from_bytes(buf.as_bytes_mut()).unwrap_or(HeaderValue::from_static("0"));
        req.headers_mut().insert(&X_REQUEST_ID, id.clone());
        req.extensions_mut().insert(RequestId(id.clone()));
        HookFuture::new(self.inner.call(req), EchoId(id))
    }
}

/// `prefix` as 8 hex digits, a dash, `n` in decimal, without going through `format!`.
fn itoa_hex(prefix: u32, n: u64) -> IdBuf {
    let mut out = IdBuf { bytes: [0; 29], len: 0 };
    for shift in (0..8).rev() {
        let nibble = ((prefix >> (shift * 4)) & 0xf) as u8;
        out.push(if nibble < 10 { b'0' + nibble } else { b'a' + nibble - 10 });
    }
    out.push(b'-');
    // The largest power of ten not above `n` (10^19 at most, which fits a u64).
    let mut unit = 1u64;
    while n / unit >= 10 {
        unit *= 10;
    }
    loop {
        out.push(b'0' + (n / unit % 10) as u8);
        if unit == 1 {
            break;
        }
        unit /= 10;
    }
    out
}

struct IdBuf {
    bytes: [u8; 29],
    len: usize,
}

impl IdBuf {
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.bytes.get_mut(..self.len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tower::{ServiceExt, service_fn};

    #[tokio::test]
    async fn ids_are_generated_overwritten_and_echoed() {
        let layer = RequestIdLayer::default();
        let mut seen = Vec::new();
        for _ in 0..2 {
            let svc = layer.layer(service_fn(|req: Request<()>| async move {
                let ext = req.extensions().get::<RequestId>().cloned().expect("extension");
                assert_eq!(req.headers()[&X_REQUEST_ID], ext.0);
                Ok::<_, std::convert::Infallible>(Response::new(Bytes::new()))
            }));
            let req = Request::get("/").header("x-request-id", "client-chosen").body(()).expect("request");
            let res = svc.oneshot(req).await.expect("infallible");
            let id = res.headers()[&X_REQUEST_ID].to_str().expect("ascii").to_owned();
            assert_ne!(id, "client-chosen");
            seen.push(id);
        }
        assert_ne!(seen[0], seen[1]);
        let (prefix, n) = seen[1].split_once('-').expect("prefix-counter");
        assert_eq!(prefix.len(), 8);
        assert_eq!(n, "2");
        assert_eq!(itoa_hex(0xdeadbeef, u64::MAX).as_bytes_mut(), b"deadbeef-18446744073709551615");
        assert_eq!(itoa_hex(0x0a, 0).as_bytes_mut(), b"0000000a-0");
        assert_eq!(itoa_hex(u32::MAX, 10).as_bytes_mut(), b"ffffffff-10");
        assert_eq!(itoa_hex(0x1234_5678, 9_999_999_999_999_999_999).as_bytes_mut(), b"12345678-9999999999999999999");
    }
}
