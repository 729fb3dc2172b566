//! The listener, the routes, and an orderly shutdown.

mod listener;
mod observe;
mod pipeline;

use std::{net::SocketAddr, sync::Arc};

use axum::{Router, extract::State, routing::get};
use http::StatusCode;
use mcp_guard_layers::Rejection;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    body::BoxBody,
    config::{Config, UpstreamConfig},
    upstream::{Upstream, embedded::EmbeddedUpstream, http::HttpUpstream, stdio::StdioUpstream},
};

/// A gateway that is listening.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// The address it listens on (the real port when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish within the
    /// configured bound, ends upstream sessions and children, and returns.
    pub async fn shutdown(self) {
        self.stop.cancel();
        // A panic inside the server task has already been logged by tokio.
        let _ = self.task.await;
    }
}

/// Binds `config.listen`, starts serving, and returns at once.
pub async fn start(config: Config) -> std::io::Result<Running> {
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    Ok(match &config.upstream {
        UpstreamConfig::Demo => launch(&config, listener, addr, EmbeddedUpstream::demo()),
        UpstreamConfig::Http(http) => launch(&config, listener, addr, HttpUpstream::new(http)),
        UpstreamConfig::Stdio(stdio) => launch(&config, listener, addr, StdioUpstream::new(stdio.clone())),
    })
}

fn launch<U: Upstream>(config: &Config, listener: TcpListener, addr: SocketAddr, upstream: U) -> Running {
    let upstream = Arc::new(upstream);
    let host_origin = config.host_origin(addr.port());
    tracing::info!(
        target: "mcp_guard",
        listen = %addr,
        path = config.path,
        upstream = upstream.kind(),
        allowed_origins = ?host_origin.describe_origins(),
        "origin_validation_enabled"
    );
    let router = Router::new()
        .route_service(&config.path, pipeline::build(host_origin, Arc::clone(&upstream)))
        .route("/health", get(health))
        .route("/ready", get(ready::<U>))
        .fallback(not_found)
        .with_state(Arc::clone(&upstream))
        .layer(axum::middleware::from_fn(observe::observe));
    let stop = CancellationToken::new();
    let grace = config.shutdown_timeout;
    let token = stop.clone();
    let task = tokio::spawn(async move {
        listener::serve(listener, router, token, grace).await;
        upstream.shutdown().await;
        tracing::info!(target: "mcp_guard", "stopped");
    });
    Running { addr, stop, task }
}

async fn health() -> &'static str {
    "ok"
}

async fn ready<U: Upstream>(State(upstream): State<Arc<U>>) -> (StatusCode, String) {
    match upstream.ready().await {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn not_found() -> http::Response<BoxBody> {
    Rejection::NotFound.into_response()
}
