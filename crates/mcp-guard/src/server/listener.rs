//! The accept loop: HTTP/1.1 and HTTP/2 on one port, over TLS when
//! configured, bounds on header size, count and arrival time (slowloris),
//! backoff on accept errors (running out of file descriptors must not become
//! a busy loop), and a shutdown that accounts for every request.
//!
//! Shutdown, in order: stop accepting; serve the connections the kernel had
//! already completed (their clients may have sent a request), then close the
//! port so new ones are refused; let in-flight requests finish for the grace
//! (`server.shutdown_timeout`), closing each connection once its current
//! request is answered; then answer whatever still runs with a
//! `shutting_down` error ([`inflight`]) and give connections a moment to
//! write it. The `shutdown_complete` log line counts what became of them.

mod inflight;

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use http::{Request, Response};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    time::Instant,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::Service;

pub(crate) use self::inflight::Answering;
use self::inflight::{Conn, Handler, Server};
use crate::body::BoxBody;

/// At most this many request headers.
const MAX_HEADERS: usize = 100;
/// At most this many bytes of request head (HTTP/1.1 read buffer, HTTP/2 header list).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// HTTP/2 liveness: ping idle connections, drop ones that do not answer.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(30);
/// First wait after a failed accept, doubled per failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// Longest wait between accepts while they keep failing.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one `accept_failed` line this often; the counter sees every one.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(1);
/// Once shutdown starts, how long a connection that has sent no request
/// yet still gets to send one (a client that had just connected).
const LAST_CALL: Duration = Duration::from_secs(1);
/// After the grace, how long connections get to write the errors that
/// answer their aborted requests before they are closed.
const ABORT_FLUSH: Duration = Duration::from_secs(1);

/// Bounds on connections.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// How long in-flight requests may run once shutdown starts.
    pub(super) grace: Duration,
    /// Slowloris bound: time to send request headers, counted from the
    /// accept for a connection's first request (TLS handshake included),
    /// and by hyper for each later HTTP/1.1 one (so it is also the idle
    /// keep-alive timeout).
    pub(super) header_timeout: Duration,
}

/// Serves until `stop`; with `tls`, each connection is a TLS one.
pub(super) async fn serve<S>(
    listener: TcpListener,
    service: S,
    stop: CancellationToken,
    limits: Limits,
    tls: Option<TlsAcceptor>,
) where
    S: Service<Request<BoxBody>, Response = Response<BoxBody>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .keep_alive_interval(H2_KEEP_ALIVE)
        .keep_alive_timeout(Duration::from_secs(10));
    let spawner = Spawner {
        builder: Arc::new(builder),
        server: Arc::new(Server { stop, ..Server::default() }),
        tracker: TaskTracker::new(),
        tls,
        header_timeout: limits.header_timeout,
    };
    let stop = &spawner.server.stop;
    let mut errors = AcceptErrors::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                errors.succeeded();
                spawner.spawn(stream, peer, service.clone());
            }
            Err(e) => {
                let backoff = errors.failed(&e);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => break,
                }
            }
        }
    }
    let backlog = drain_backlog(listener);
    let backlog_len = backlog.len();
    for (stream, peer) in backlog {
        spawner.spawn(stream, peer, service.clone());
    }
    shut_down(&spawner, limits.grace, backlog_len).await;
}

/// The stop sequence after the port is closed: the grace, then the abort.
async fn shut_down(spawner: &Spawner, grace: Duration, backlog: usize) {
    let (tracker, tally) = (&spawner.tracker, &spawner.server.tally);
    let started = Instant::now();
    let in_flight = tally.in_flight.load(Relaxed);
    tracing::info!(
        target: "mcp_guard",
        open_connections = tracker.len(),
        in_flight,
        backlog,
        grace_ms = grace.as_millis() as u64,
        "shutting_down"
    );
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            target: "mcp_guard",
            open_connections = tracker.len(),
            in_flight = tally.in_flight.load(Relaxed),
            "shutdown_grace_expired"
        );
        spawner.server.abort.cancel();
        // Each connection bounds its own flush by ABORT_FLUSH; this only
        // keeps a connection task that is never polled from holding exit.
        let _ = tokio::time::timeout(ABORT_FLUSH + Duration::from_millis(200), tracker.wait()).await;
    }
    tracing::info!(
        target: "mcp_guard",
        in_flight,
        completed = tally.completed.load(Relaxed),
        aborted = tally.aborted.load(Relaxed),
        cut = tally.cut.load(Relaxed),
        unanswered = tally.in_flight.load(Relaxed),
        open_connections = tracker.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "shutdown_complete"
    );
}

/// Takes the connections the kernel has completed but the loop has not
/// accepted yet, and closes the port: from here on connections are
/// refused instead of reset after their client has sent a request.
fn drain_backlog(listener: TcpListener) -> Vec<(TcpStream, SocketAddr)> {
    // A std listener, so that an empty queue is known at once (WouldBlock)
    // rather than through the reactor's readiness, which may lag.
    let listener = match listener.into_std() {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(target: "mcp_guard", error = %e, "shutdown_backlog_unavailable");
            return Vec::new();
        }
    };
    let mut backlog = Vec::new();
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let stream = stream.set_nonblocking(true).and_then(|()| TcpStream::from_std(stream));
                if let Ok(stream) = stream {
                    backlog.push((stream, peer));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => {
                tracing::warn!(target: "mcp_guard", error = %e, "shutdown_backlog_accept_failed");
                break;
            }
        }
    }
    backlog
}

/// Backoff and log pacing for failed accepts. Out of file descriptors, the
/// listener stays readable while every accept fails: without a pause that
/// is a busy loop, and without pacing a log line per attempt.
#[derive(Debug)]
struct AcceptErrors {
    backoff: Duration,
    logged: Option<Instant>,
    /// Failures since the last line.
    unlogged: u64,
}

impl Default for AcceptErrors {
    fn default() -> Self {
        AcceptErrors { backoff: FIRST_BACKOFF, logged: None, unlogged: 0 }
    }
}

impl AcceptErrors {
    /// Counts and maybe logs `error`; returns how long to wait.
    fn failed(&mut self, error: &io::Error) -> Duration {
        metrics::counter!("mcp_guard_accept_errors_total").increment(1);
        let backoff = self.backoff;
        let now = Instant::now();
        if self.logged.is_none_or(|at| now.duration_since(at) >= ACCEPT_LOG_EVERY) {
            tracing::warn!(
                target: "mcp_guard",
                error = %error,
                retry_ms = backoff.as_millis() as u64,
                suppressed = self.unlogged,
                "accept_failed"
            );
            self.logged = Some(now);
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        self.backoff = (backoff * 2).min(MAX_BACKOFF);
        backoff
    }

    fn succeeded(&mut self) {
        self.backoff = FIRST_BACKOFF;
    }
}

/// Starts connection tasks, tracked so that shutdown can wait for them.
struct Spawner {
    builder: Arc<auto::Builder<TokioExecutor>>,
    server: Arc<Server>,
    tracker: TaskTracker,
    tls: Option<TlsAcceptor>,
    header_timeout: Duration,
}

impl Spawner {
    fn spawn<S>(&self, stream: TcpStream, peer: SocketAddr, service: S)
    where
        S: Service<Request<BoxBody>, Response = Response<BoxBody>, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        // The first request's head is due this long after the accept.
        let deadline = Instant::now() + self.header_timeout;
        // Latency over throughput for small JSON-RPC frames.
        let _ = stream.set_nodelay(true);
        let conn = Conn::new(&self.server, peer);
        let builder = Arc::clone(&self.builder);
        match &self.tls {
            None => {
                self.tracker.spawn(async move { serve_connection(&builder, stream, service, conn, deadline).await });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                // The handshake runs in the connection's task, so a slow or
                // silent client never holds up the accept loop.
                self.tracker.spawn(async move {
                    if let Some(stream) = handshake(&acceptor, stream, peer, deadline, &conn.abort).await {
                        serve_connection(&builder, stream, service, conn, deadline).await;
                    }
                });
            }
        }
    }
}

/// Serves HTTP/1.1 or HTTP/2 (by the connection preface; over TLS, ALPN has
/// already agreed which) until the client leaves or shutdown completes.
async fn serve_connection<S, I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    conn: Arc<Conn>,
    deadline: Instant,
) where
    S: Service<Request<BoxBody>, Response = Response<BoxBody>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stop = conn.server().stop.clone();
    let connection = builder.serve_connection(TokioIo::new(io), Handler::new(service, Arc::clone(&conn)));
    tokio::pin!(connection);
    // hyper bounds an HTTP/1.1 head only once it knows the protocol: a
    // client that sends nothing, or one byte, or a slow HTTP/2 preface,
    // would otherwise hold the connection for ever.
    let first_request = tokio::time::sleep_until(deadline);
    tokio::pin!(first_request);
    let (mut started, mut draining) = (false, false);
    let result = loop {
        tokio::select! {
            result = connection.as_mut() => break result,
            () = conn.first_request(), if !started => {
                started = true;
                if draining {
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = &mut first_request, if !started => {
                metrics::counter!("mcp_guard_header_timeouts_total").increment(1);
                tracing::debug!(target: "mcp_guard", client = %conn.peer(), "first_request_timeout");
                return;
            }
            () = stop.cancelled(), if !draining => {
                draining = true;
                if started {
                    // Idle: closed now. Busy: closed once the answer is written.
                    connection.as_mut().graceful_shutdown();
                } else {
                    // Its client may have written a request we have not read
                    // yet: closing now would reset it.
                    let last_call = Instant::now() + LAST_CALL;
                    if last_call < first_request.deadline() {
                        first_request.as_mut().reset(last_call);
                    }
                }
            }
            () = conn.abort.cancelled() => {
                if !started {
                    return;
                }
                // The aborted requests' answers are still to be written.
                break tokio::time::timeout(ABORT_FLUSH, connection.as_mut()).await.unwrap_or(Ok(()));
            }
        }
    };
    if let Err(e) = result {
        if e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout) {
            metrics::counter!("mcp_guard_header_timeouts_total").increment(1);
        }
        tracing::debug!(target: "mcp_guard", client = %conn.peer(), error = %e, "connection_error");
    }
}

/// The TLS handshake, due by the first request's deadline (a client that
/// opens a connection and sends nothing is the slowloris of TLS) and given
/// up once the shutdown grace is over. Failures are routine on an open port
/// (scanners, old clients): debug logs, plus a counter so a broken
/// certificate or client fleet shows up.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    deadline: Instant,
    abort: &CancellationToken,
) -> Option<TlsStream<TcpStream>> {
    let outcome = tokio::select! {
        outcome = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => outcome,
        () = abort.cancelled() => return None,
    };
    let reason = match outcome {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(target: "mcp_guard", client = %peer, error = %e, "tls_handshake_failed");
            "error"
        }
        Err(_) => {
            tracing::debug!(target: "mcp_guard", client = %peer, "tls_handshake_timeout");
            "timeout"
        }
    };
    metrics::counter!("mcp_guard_tls_handshake_failures_total", "reason" => reason).increment(1);
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_accepts_back_off_to_a_second_and_start_over_after_a_success() {
        let mut errors = AcceptErrors::default();
        let emfile = io::Error::from_raw_os_error(24);
        let waits: Vec<u64> = (0..10).map(|_| errors.failed(&emfile).as_millis() as u64).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        // Ten failures within a second: one line, the rest counted.
        assert_eq!(errors.unlogged, 9);
        errors.succeeded();
        assert_eq!(errors.failed(&emfile), FIRST_BACKOFF);
    }
}
