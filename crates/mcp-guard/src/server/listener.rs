//! The accept loop: HTTP/1.1 and HTTP/2 on one port, bounds on header size,
//! count and arrival time (slowloris), backoff on accept errors (running out
//! of file descriptors must not become a busy loop), and graceful shutdown
//! that waits for in-flight requests up to a bound.

use std::{convert::Infallible, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use mcp_guard_layers::identity::PeerAddr;
use tokio::net::TcpListener;
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
    /// also the idle keep-alive timeout.
    pub(super) header_timeout: Duration,
}

pub(super) async fn serve<S>(listener: TcpListener, service: S, stop: CancellationToken, limits: Limits)
where
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
        let service = TowerToHyperService::new(service.clone().map_request(move |req: Request<Incoming>| {
            let mut req = req.map(BoxBody::new);
            req.extensions_mut().insert(PeerAddr(peer));
            req
        }));
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(target: "mcp_guard", client = %peer, error = %e, "connection_error");
            }
        });
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
