//! Tower layers that harden a Model Context Protocol (MCP) Streamable HTTP
//! endpoint, usable on their own in any tower or axum service (rmcp's
//! `StreamableHttpService` included) and assembled into a pipeline by the
//! `mcp-guard` gateway.
//!
//! - [`host_origin`]: Host and Origin validation against DNS rebinding.
//! - [`jsonrpc`]: classifies a POST body (request, notification, response;
//!   method; id; tool name) in one pass, with nesting and batch limits.
//! - [`transport`]: the Streamable HTTP header rules (`Accept`, `Content-Type`).
//! - [`rejection`]: every refusal, with its HTTP status, JSON-RPC code and
//!   stable reason, in one table.
//!
//! Every layer answers a refused request itself with a JSON-RPC error body
//! and puts the [`Rejection`] in the response extensions; none of them
//! returns a service error for a bad request. They need nothing from the
//! response body type but `From<Bytes>`, which `axum::body::Body` and
//! `http_body_util::Full<Bytes>` both provide.

// Layers read hostile bytes: no panic!, no unchecked indexing (unwrap and
// expect are denied workspace-wide). Tests may use all of them.
#![cfg_attr(not(test), deny(clippy::panic, clippy::indexing_slicing))]

pub mod auth;
pub mod body_limit;
pub mod client_ip;
pub mod cors;
pub mod future;
pub mod host_origin;
pub mod identity;
pub mod inspect;
pub mod jsonrpc;
pub mod policy;
pub mod protocol_version;
pub mod rate_limit;
pub mod rejection;
pub mod request_id;
pub mod security_headers;
pub mod session_binding;
mod session_table;
pub mod sse;
pub mod transport;

pub use rejection::Rejection;
