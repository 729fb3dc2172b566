//! The MCP servers behind the gateway, behind one trait.
//!
//! [`Upstream`] is the seam between the pipeline and the transports: the
//! pipeline has already validated the request (Host/Origin, headers, and in
//! later layers auth, limits and policy) and hands it over; the upstream
//! answers it, streaming when the answer is a stream. Every failure is a
//! response with a JSON-RPC error body, never an error value: an upstream
//! cannot make the gateway drop a connection without an answer.

pub mod embedded;
pub mod http;
pub mod stdio;
pub(crate) mod violation;

use std::future::Future;

use ::http::{Request, Response};

use crate::body::BoxBody;

/// An MCP server reachable through the Streamable HTTP transport semantics.
pub trait Upstream: Send + Sync + 'static {
    /// Short name for logs and metrics: `http`, `stdio` or `demo`.
    fn kind(&self) -> &'static str;

    /// Answers one validated request to the MCP endpoint (POST, GET or DELETE).
    fn handle(&self, req: Request<BoxBody>) -> impl Future<Output = Response<BoxBody>> + Send;

    /// `Ok` when the upstream can take requests (for `/ready`); otherwise why not.
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// Sessions the upstream holds, when it tracks them itself (stdio).
    fn session_count(&self) -> Option<usize> {
        None
    }

    /// Ends sessions and child processes. Called once, at shutdown.
    fn shutdown(&self) -> impl Future<Output = ()> + Send;
}
