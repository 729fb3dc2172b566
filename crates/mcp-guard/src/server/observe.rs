//! One log event per rejection, and a debug line per request, with timing.
//!
//! Rejections are read from the response extensions, where every layer
//! puts its [`Rejection`]: no layer logs for itself, so each refusal is
//! logged exactly once, here.

use std::{net::SocketAddr, time::Instant};

use axum::{extract::ConnectInfo, middleware::Next};
use http::{Request, Response};
use mcp_guard_layers::Rejection;

use crate::body::BoxBody;

/// axum middleware: times the request and logs its outcome.
pub(crate) async fn observe(req: Request<BoxBody>, next: Next) -> Response<BoxBody> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let response = next.run(req).await;
    let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    let status = response.status().as_u16();
    match response.extensions().get::<Rejection>() {
        Some(rejection) => tracing::warn!(
            target: "mcp_guard::security",
            event = rejection.reason(),
            %method,
            path,
            status,
            client = ?peer,
            micros,
            "request_rejected"
        ),
        None => tracing::debug!(target: "mcp_guard::access", %method, path, status, client = ?peer, micros, "request"),
    }
    response
}
