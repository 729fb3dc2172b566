//! The accept loop: HTTP/1.1 and HTTP/2 on one port, over TLS when
//! configured, bounds on header size, count and arrival time (slowloris),
//! backoff on accept errors (running out of file descriptors must not become
//! a busy loop), and graceful shutdown that waits for in-flight requests up
//! to a bound.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{
        conn::auto,
        graceful::{GracefulShutdown, Watcher},
    },
    service::TowerToHyperService,
};
use mcp_guard_layers::identity::PeerAddr;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

use crate::body::BoxBody;

/// At most this many request headers.
const MAX_HEADERS: usize = 100;
/// At most this many bytes of request head (HTTP/1.1 read buffer, HTTP/2 header list).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// HTTP/2 liveness: ping idle connections, drop ones that do not answer.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(30);

/// Bounds on connections.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// How long in-flight requests may run once shutdown starts.
    pub(super) grace: Duration,
    /// Slowloris bound: time to send request headers. hyper starts this
    /// clock whenever an HTTP/1.1 connection waits for a request, so it is
    /// also the idle keep-alive timeout. It bounds the TLS handshake too.
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
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let mut backoff = Duration::from_millis(5);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff = Duration::from_millis(5);
                    accepted
                }
                Err(e) => {
                    tracing::warn!(target: "mcp_guard", error = %e, retry_ms = backoff.as_millis() as u64, "accept_failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // Latency over throughput for small JSON-RPC frames.
        let _ = stream.set_nodelay(true);
        // Taken now, before the next accept: a shutdown that starts while
        // this connection is in its handshake still reaches it.
        let watcher = graceful.watcher();
        let (builder, service) = (Arc::clone(&builder), service.clone());
        match &tls {
            None => {
                tokio::spawn(async move { serve_connection(&builder, stream, service, peer, watcher).await });
            }
            Some(acceptor) => {
                let (acceptor, stop) = (acceptor.clone(), stop.clone());
                // The handshake runs in the connection's task, so a slow or
                // silent client never holds up the accept loop.
                tokio::spawn(async move {
                    if let Some(stream) = handshake(&acceptor, stream, peer, limits.header_timeout, &stop).await {
                        serve_connection(&builder, stream, service, peer, watcher).await;
                    }
                });
            }
        }
    }
    drop(listener);
    tracing::info!(
        target: "mcp_guard",
        open_connections = graceful.count(),
        grace_ms = limits.grace.as_millis() as u64,
        "shutting_down"
    );
    if tokio::time::timeout(limits.grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(target: "mcp_guard", "shutdown_grace_expired");
    }
}

/// Serves HTTP/1.1 or HTTP/2 (by the connection preface; over TLS, ALPN has
/// already agreed which) until the client leaves or shutdown completes.
async fn serve_connection<S, I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    peer: SocketAddr,
    watcher: Watcher,
) where
    S: Service<Request<BoxBody>, Response = Response<BoxBody>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(service.map_request(move |req: Request<Incoming>| {
        let mut req = req.map(BoxBody::new);
        req.extensions_mut().insert(PeerAddr(peer));
        req
    }));
    if let Err(e) = watcher.watch(builder.serve_connection(TokioIo::new(io), service)).await {
        tracing::debug!(target: "mcp_guard", client = %peer, error = %e, "connection_error");
    }
}

/// The TLS handshake, bounded by the header timeout (a client that opens a
/// connection and sends nothing is the slowloris of TLS) and by shutdown.
/// Failures are routine on an open port (scanners, old clients): debug
/// logs, plus a counter so a broken certificate or client fleet shows up.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
    stop: &CancellationToken,
) -> Option<TlsStream<TcpStream>> {
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(timeout, acceptor.accept(stream)) => outcome,
        () = stop.cancelled() => return None,
    };
    let reason = match outcome {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(target: "mcp_guard", client = %peer, error = %e, "tls_handshake_failed");
            "error"
        }
        Err(_) => {
            tracing::debug!(target: "mcp_guard", client = %peer, timeout_ms = timeout.as_millis() as u64, "tls_handshake_timeout");
            "timeout"
        }
    };
    metrics::counter!("mcp_guard_tls_handshake_failures_total", "reason" => reason).increment(1);
    None
}
