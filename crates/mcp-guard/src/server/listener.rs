//! The accept loop: HTTP/1.1 and HTTP/2 on one port, a bound on how long a
//! client may take to send its headers, backoff on accept errors (running
//! out of file descriptors must not become a busy loop), and graceful
//! shutdown that waits for in-flight requests up to a bound.

use std::{net::SocketAddr, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::body::BoxBody;

/// Slowloris bound: a client gets this long to finish its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEADERS: usize = 100;

pub(super) async fn serve(listener: TcpListener, router: Router, stop: CancellationToken, grace: Duration) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).max_headers(MAX_HEADERS);
    builder.http2().timer(TokioTimer::new()).max_header_list_size(64 * 1024);
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
        let service = TowerToHyperService::new(router.clone().map_request(move |req: http::Request<Incoming>| {
            let mut req = req.map(BoxBody::new);
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
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
    let open = graceful.count();
    tracing::info!(target: "mcp_guard", open_connections = open, grace_ms = grace.as_millis() as u64, "shutting_down");
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(target: "mcp_guard", "shutdown_grace_expired");
    }
}
