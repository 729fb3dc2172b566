//! Entry points for `benches/upstream_guard.rs`, which cannot reach the
//! crate-private guard otherwise. Not an API: hidden from the docs.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use http_body::{Body, Frame};
use mcp_guard_layers::jsonrpc::RequestId;
use tokio::time::Instant;

use super::{
    answer,
    guard::{Answering, Guard, Waiting},
    pending::Sessions,
};
use crate::config::UpstreamLimits;

/// The session every answer belongs to, as rmcp spells its ids.
const SESSION: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

/// The HTTP upstream's checks, without the network.
#[derive(Debug)]
pub struct GuardBench {
    sessions: Sessions,
    limits: UpstreamLimits,
}

impl GuardBench {
    /// Checks with these limits.
    pub fn new(limits: UpstreamLimits) -> Self {
        let sessions = Sessions::new(limits.max_server_requests_per_session, limits.server_request_timeout);
        GuardBench { sessions, limits }
    }

    /// Passes one SSE answer to a POST of requests `ids` (JSON text)
    /// through the guard, as the upstream does; returns the bytes passed on.
    /// Must run inside a Tokio runtime context (the guard keeps a timer).
    pub fn sse_answer(&self, ids: &[&str], chunks: &Arc<[Bytes]>) -> usize {
        let session = self.sessions.get(Some(SESSION));
        let Some(permit) = session.reserve(ids.len(), self.limits.max_pending_per_session) else { return 0 };
        let sent = Instant::now();
        let timeouts = (self.limits.request_timeout, self.limits.max_request_duration);
        let waiting =
            ids.iter().map(|id| Waiting::new(RequestId::from_json_text(id), None, true, sent, timeouts)).collect();
        let answering = Answering::Post {
            waiting,
            permit,
            max_response: self.limits.max_response_size,
            request_timeout: self.limits.request_timeout,
            cancel: None,
        };
        drain(Guard::new(Chunks(Arc::clone(chunks), 0), answering, self.limits.max_message_size))
    }

    /// The same chunks read without the guard: the baseline.
    pub fn sse_baseline(chunks: &Arc<[Bytes]>) -> usize {
        drain(Chunks(Arc::clone(chunks), 0))
    }

    /// Checks a JSON answer to a POST of requests `ids`, as the upstream does.
    pub fn json_answer(&self, ids: &[&str], body: &[u8]) -> bool {
        let ids: Vec<RequestId> = ids.iter().map(|id| RequestId::from_json_text(id)).collect();
        answer::check_json(body, &ids, false, self.limits.max_message_size).is_ok()
    }
}

/// Polls a body whose frames are all ready to its end; the bytes it gave.
fn drain<B: Body<Data = Bytes, Error = Infallible> + Unpin>(mut body: B) -> usize {
    let mut cx = Context::from_waker(Waker::noop());
    let mut total = 0;
    while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) {
        total += frame.data_ref().map_or(0, Bytes::len);
    }
    total
}

/// An upstream body of chunks that are all already here, and the next one.
struct Chunks(Arc<[Bytes]>, usize);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.0.get(self.1).cloned();
        self.1 += 1;
        Poll::Ready(next.map(|chunk| Ok(Frame::data(chunk))))
    }
}
