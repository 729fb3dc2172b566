//! The demo server, served in-process through rmcp's Streamable HTTP service.
//!
//! rmcp's service is itself a tower service, so the demo sits behind exactly
//! the same pipeline as a remote upstream, with no socket in between. Its
//! own Host check is off and its body cap raised: the gateway's layers in
//! front of it own those decisions.

use std::sync::Arc;

use http::{Request, Response};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::Upstream;
use mcp_guard_layers::transport;

use crate::{body::BoxBody, demo::DemoServer, sse};

/// The in-process demo upstream.
#[derive(Clone)]
pub struct EmbeddedUpstream {
    service: StreamableHttpService<DemoServer, LocalSessionManager>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for EmbeddedUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedUpstream").finish_non_exhaustive()
    }
}

impl EmbeddedUpstream {
    /// The demo server with rmcp's session manager.
    pub fn demo() -> Self {
        let cancel = CancellationToken::new();
        let config = StreamableHttpServerConfig::default()
            .disable_allowed_hosts()
            .with_cancellation_token(cancel.child_token())
            .with_max_request_body_bytes(usize::MAX);
        let service =
            StreamableHttpService::new(|| Ok(DemoServer::default()), Arc::new(LocalSessionManager::default()), config);
        EmbeddedUpstream { service, cancel }
    }
}

impl Upstream for EmbeddedUpstream {
    fn kind(&self) -> &'static str {
        "demo"
    }

    async fn handle(&self, req: Request<BoxBody>) -> Response<BoxBody> {
        let response = match self.service.clone().oneshot(req).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (mut parts, body) = response.into_parts();
        if transport::is_event_stream(&parts.headers) {
            sse::set_stream_headers(&mut parts.headers);
        }
        Response::from_parts(parts, BoxBody::new(body))
    }

    async fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    async fn shutdown(&self) {
        self.cancel.cancel();
    }
}
