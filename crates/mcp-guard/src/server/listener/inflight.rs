//! Requests in flight, so that shutdown can account for each one and cut
//! none off silently.
//!
//! A request counts from the moment its head is read until its answer ends:
//! for a stream (an SSE response) that is its last frame, for any other
//! answer the moment its head is ready (its length is known, hyper writes it
//! out). Once the shutdown grace has run out, every request still open is
//! answered in the protocol instead of dropped with its connection: one
//! still waiting for its response head gets `503 shutting_down`, and an
//! event stream gets a JSON-RPC error event for each request it answers
//! (their ids are in [`Answering`]), then ends. A stream without requests (a
//! standalone GET stream) simply ends, which tells its client to reconnect.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
    },
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use mcp_guard_layers::{
    Rejection,
    identity::PeerAddr,
    jsonrpc::{self, MessageKind},
};
use pin_project_lite::pin_project;
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tower::{Service, ServiceExt, util::Oneshot};

use crate::body::BoxBody;

/// The JSON-RPC body an event-stream response answers, set by the MCP
/// endpoint: the ids to answer if the stream is still open when the
/// shutdown grace runs out. A shared view of the inspected body, not a copy.
#[derive(Clone, Debug)]
pub(crate) struct Answering(pub(crate) Bytes);

/// The server's side of shutdown: when it starts, when the grace is over,
/// and what became of the requests in between.
#[derive(Debug, Default)]
pub(in crate::server) struct Server {
    /// Cancelled on the shutdown signal: stop accepting, finish what runs.
    pub(in crate::server) stop: CancellationToken,
    /// Cancelled when the grace is over: answer what still runs with an error.
    pub(in crate::server) abort: CancellationToken,
    pub(in crate::server) tally: Tally,
}

/// Request counts for the `shutting_down` and `shutdown_complete` log lines.
/// Only `in_flight` is kept all the time; the outcomes are counted once
/// shutdown has started.
#[derive(Debug, Default)]
pub(in crate::server) struct Tally {
    pub(in crate::server) in_flight: AtomicUsize,
    /// Answers that ended normally.
    pub(in crate::server) completed: AtomicUsize,
    /// Answered with `shutting_down` when the grace ran out.
    pub(in crate::server) aborted: AtomicUsize,
    /// Ended without a complete answer: the client left, or its connection
    /// was still not done writing when the flush after the grace ran out.
    pub(in crate::server) cut: AtomicUsize,
}

/// One connection's share of the shutdown state.
#[derive(Debug)]
pub(in crate::server) struct Conn {
    server: Arc<Server>,
    peer: SocketAddr,
    /// A child of the server's `abort`: each request waits on its
    /// connection's token, so requests never contend on one lock.
    pub(in crate::server) abort: CancellationToken,
    started: AtomicBool,
    first_request: Notify,
}

impl Conn {
    pub(in crate::server) fn new(server: &Arc<Server>, peer: SocketAddr) -> Arc<Conn> {
        Arc::new(Conn {
            abort: server.abort.child_token(),
            server: Arc::clone(server),
            peer,
            started: AtomicBool::new(false),
            first_request: Notify::new(),
        })
    }

    pub(in crate::server) fn server(&self) -> &Server {
        &self.server
    }

    pub(in crate::server) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Resolves once the connection's first request head has been read
    /// (at once if it already has).
    pub(in crate::server) async fn first_request(&self) {
        if !self.started.load(Relaxed) {
            self.first_request.notified().await;
        }
    }

    fn request_started(&self) {
        if !self.started.load(Relaxed) && !self.started.swap(true, Relaxed) {
            // A stored permit if the connection task is not waiting yet.
            self.first_request.notify_one();
        }
    }
}

/// The hyper service of one connection: the pipeline, with each request
/// counted and made abortable.
#[derive(Debug)]
pub(in crate::server) struct Handler<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S> Handler<S> {
    pub(in crate::server) fn new(inner: S, conn: Arc<Conn>) -> Self {
        Handler { inner, conn }
    }
}

impl<S> hyper::service::Service<Request<Incoming>> for Handler<S>
where
    S: Service<Request<BoxBody>, Response = Response<BoxBody>, Error = Infallible> + Clone,
{
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = Tracked<Oneshot<S, Request<BoxBody>>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let mut req = req.map(BoxBody::new);
        req.extensions_mut().insert(PeerAddr(self.conn.peer));
        self.conn.request_started();
        Tracked {
            inner: self.inner.clone().oneshot(req),
            abort: self.conn.abort.clone().cancelled_owned(),
            request: Some(InFlight::new(&self.conn)),
        }
    }
}

/// How a counted request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Completed,
    Aborted,
}

/// A request in flight until dropped; dropped without an outcome, it was cut.
#[derive(Debug)]
struct InFlight {
    conn: Arc<Conn>,
    outcome: Option<Outcome>,
}

impl InFlight {
    fn new(conn: &Arc<Conn>) -> Self {
        conn.server.tally.in_flight.fetch_add(1, Relaxed);
        InFlight { conn: Arc::clone(conn), outcome: None }
    }

    fn end(mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let server = &self.conn.server;
        server.tally.in_flight.fetch_sub(1, Relaxed);
        if !server.stop.is_cancelled() {
            return;
        }
        let counter = match self.outcome {
            Some(Outcome::Completed) => &server.tally.completed,
            Some(Outcome::Aborted) => &server.tally.aborted,
            None => &server.tally.cut,
        };
        counter.fetch_add(1, Relaxed);
    }
}

pin_project! {
    /// A request's response future: counted, and answered with
    /// `shutting_down` if the grace runs out before its head is ready.
    #[derive(Debug)]
    pub(in crate::server) struct Tracked<F> {
        #[pin]
        inner: F,
        #[pin]
        abort: WaitForCancellationFutureOwned,
        request: Option<InFlight>,
    }
}

impl<F> Future for Tracked<F>
where
    F: Future<Output = Result<Response<BoxBody>, Infallible>>,
{
    type Output = Result<Response<BoxBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => {
                if this.abort.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if let Some(request) = this.request.take() {
                    request.end(Outcome::Aborted);
                }
                return Poll::Ready(Ok(Rejection::ShuttingDown.into_response()));
            }
        };
        let Some(request) = this.request.take() else { return Poll::Ready(Ok(response)) };
        let body = response.body();
        // A body of known length is already decided; only streams can still
        // be running when the grace is over.
        if body.is_end_stream() || body.size_hint().exact().is_some() {
            request.end(Outcome::Completed);
            return Poll::Ready(Ok(response));
        }
        let answering = response.extensions_mut().remove::<Answering>();
        let abort = request.conn.abort.clone().cancelled_owned();
        Poll::Ready(Ok(response
            .map(|inner| BoxBody::new(TrackedBody { inner, abort, request: Some(request), answering, ended: false }))))
    }
}

pin_project! {
    /// A streamed answer: counted until its last frame, and ended with an
    /// error event per request it answers if the grace runs out first.
    struct TrackedBody {
        #[pin]
        inner: BoxBody,
        #[pin]
        abort: WaitForCancellationFutureOwned,
        request: Option<InFlight>,
        answering: Option<Answering>,
        ended: bool,
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        // What the upstream has already sent goes first: the abort only
        // replaces waiting, so an answer that is ready is never preceded by
        // an error for the same request.
        match this.inner.poll_frame(cx) {
            Poll::Ready(None) => {
                *this.ended = true;
                if let Some(request) = this.request.take() {
                    request.end(Outcome::Completed);
                }
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(frame)),
            Poll::Pending => {
                if this.abort.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                *this.ended = true;
                if let Some(request) = this.request.take() {
                    request.end(Outcome::Aborted);
                }
                Poll::Ready(this.answering.take().and_then(|a| shutdown_events(&a.0)).map(|e| Ok(Frame::data(e))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.ended { SizeHint::with_exact(0) } else { SizeHint::default() }
    }
}

/// One `message` event per request in `body`: a JSON-RPC error with its
/// id and the `shutting_down` rejection's code, message and reason.
fn shutdown_events(body: &[u8]) -> Option<Bytes> {
    // Re-read only here, on the way out; the MCP endpoint already accepted
    // this body, so the default limits are not what refuses it.
    let inspection = jsonrpc::inspect(body, jsonrpc::Limits { max_depth: usize::MAX, max_batch: usize::MAX }).ok()?;
    let rejection = Rejection::ShuttingDown;
    let mut events = BytesMut::new();
    for id in inspection.messages.iter().filter(|m| m.kind == MessageKind::Request).filter_map(|m| m.id.as_ref()) {
        let error = format!(
            r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{},"message":"{}","data":{{"reason":"{}"}}}}}}"#,
            id.as_json(),
            rejection.code(),
            rejection.message(),
            rejection.reason()
        );
        events.extend_from_slice(&crate::sse::message_event(error.as_bytes()));
    }
    (!events.is_empty()).then(|| events.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn shutdown_events_answer_each_request_by_id() {
        let body = br#"[{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"sleep"}},
                        {"jsonrpc":"2.0","method":"notifications/progress"},
                        {"jsonrpc":"2.0","id":"a\"b","method":"ping"}]"#;
        let events = shutdown_events(body).expect("two requests");
        let text = std::str::from_utf8(&events).unwrap();
        let data: Vec<serde_json::Value> =
            text.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
        assert_eq!(data.len(), 2, "{text}");
        assert_eq!(data[0]["id"], 7);
        assert_eq!(data[1]["id"], "a\"b");
        for d in &data {
            assert_eq!(d["error"]["code"], Rejection::ShuttingDown.code());
            assert_eq!(d["error"]["data"]["reason"], "shutting_down");
        }
        assert_eq!(shutdown_events(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#), None);
    }

    fn conn() -> (Arc<Server>, Arc<Conn>) {
        let server = Arc::new(Server::default());
        let conn = Conn::new(&server, "127.0.0.1:9".parse().unwrap());
        (server, conn)
    }

    #[tokio::test]
    async fn a_stream_open_when_the_grace_ends_gets_an_error_event_then_ends() {
        let (server, conn) = conn();
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let stream = crate::sse::SseBody::new(rx, std::time::Duration::from_secs(60));
        let body = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"sleep"}}"#;
        let mut response = Response::new(BoxBody::new(stream));
        response.extensions_mut().insert(Answering(Bytes::from_static(body)));
        let tracked = Tracked {
            inner: std::future::ready(Ok(response)),
            abort: conn.abort.clone().cancelled_owned(),
            request: Some(InFlight::new(&conn)),
        };
        let mut body = tracked.await.unwrap().into_body();
        tx.send(Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#)).await.unwrap();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(first.starts_with(b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\""));
        assert_eq!(server.tally.in_flight.load(Relaxed), 1);
        server.stop.cancel();
        server.abort.cancel();
        let last = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let last = std::str::from_utf8(&last).unwrap();
        assert!(last.contains(r#""id":3,"error":{"code":-32000"#) && last.contains("shutting_down"), "{last}");
        assert!(body.frame().await.is_none());
        drop(body);
        assert_eq!(server.tally.in_flight.load(Relaxed), 0);
        assert_eq!(server.tally.aborted.load(Relaxed), 1);
        drop(tx);
    }

    #[tokio::test]
    async fn a_request_without_a_response_head_gets_503_when_the_grace_ends() {
        let (server, conn) = conn();
        let tracked = Tracked {
            inner: std::future::pending::<Result<Response<BoxBody>, Infallible>>(),
            abort: conn.abort.clone().cancelled_owned(),
            request: Some(InFlight::new(&conn)),
        };
        server.stop.cancel();
        server.abort.cancel();
        let response = tracked.await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.extensions().get::<Rejection>(), Some(&Rejection::ShuttingDown));
        assert_eq!((server.tally.in_flight.load(Relaxed), server.tally.aborted.load(Relaxed)), (0, 1));
    }

    #[tokio::test]
    async fn answers_are_counted_once_shutdown_has_started() {
        let (server, conn) = conn();
        let answer = |conn: &Arc<Conn>| Tracked {
            inner: std::future::ready(Ok(Response::new(BoxBody::from("{}")))),
            abort: conn.abort.clone().cancelled_owned(),
            request: Some(InFlight::new(conn)),
        };
        answer(&conn).await.unwrap();
        assert_eq!(server.tally.completed.load(Relaxed), 0, "not counted before shutdown");
        server.stop.cancel();
        answer(&conn).await.unwrap();
        drop(answer(&conn));
        let tally = &server.tally;
        assert_eq!((tally.completed.load(Relaxed), tally.cut.load(Relaxed), tally.in_flight.load(Relaxed)), (1, 1, 0));
    }
}
