//! MCP-aware protection: who may use which tool, resource and prompt; what
//! each caller gets to see; and whether the tools still say what was approved.
//!
//! Two layers share a compiled [`AccessPolicy`] and a [`ToolCatalog`]:
//!
//! - [`AccessPolicyLayer`] refuses `tools/call`, `resources/read`,
//!   `resources/subscribe`, `prompts/get` and `completion/complete` for
//!   anything the caller's policy denies, and filters `tools/list`,
//!   `resources/list`, `resources/templates/list` and `prompts/list` answers
//!   on the way back (JSON or SSE, pagination cursors untouched). The same
//!   pass checks every listed tool against its pin ([`catalog`]) and hides
//!   the ones a `block` action covers.
//! - [`ToolCallLayer`] refuses calls to blocked tools, and checks each call's
//!   arguments against a size limit and the tool's `inputSchema`.
//!
//! A refused request is answered by the gateway itself, inside the protocol:
//! HTTP 200 with a JSON-RPC error carrying the request's id (see
//! [`Refusal`](crate::rejection::Refusal)), and is never forwarded. A denied
//! name gets the answer the specification gives for a name that does not
//! exist, so what a caller may not use cannot be discovered. The refusals are
//! put in the response extensions as [`Refused`] for logs and the audit log.
//!
//! Both layers read the [`Inspection`](crate::jsonrpc::Inspection) and the
//! [`Principal`](crate::identity::Principal), so they go after JSON-RPC
//! inspection and authentication.
//!
//! # Example
//!
//! ```
//! use std::collections::HashMap;
//! use mcp_guard_layers::policy::{
//!     AccessPolicyLayer, ToolCallLayer,
//!     catalog::{CatalogConfig, ToolCatalog},
//!     rules::{AccessPolicy, Effect, RuleSpec},
//! };
//!
//! let readers = RuleSpec {
//!     principals: vec!["*".into()],
//!     effect: Effect::Allow,
//!     tools: vec!["get_*".into()],
//!     resources: vec!["file:///public/*".into()],
//!     prompts: vec![],
//! };
//! let policy = AccessPolicy::compile(Effect::Deny, &HashMap::new(), &[readers]).unwrap();
//! let catalog = ToolCatalog::new(CatalogConfig::default());
//! let stack = tower::ServiceBuilder::new()
//!     .layer(AccessPolicyLayer::new(Some(policy), Some(catalog.clone())))
//!     .layer(ToolCallLayer::new(catalog))
//!     .service(tower::service_fn(|_req: http::Request<http_body_util::Full<bytes::Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
//!     }));
//! # drop(stack);
//! ```
//!
//! # Security caveats
//!
//! - Policy names what the upstream *calls* a thing. A server that exposes
//!   the same action under two names, or a tool that reads any resource it
//!   is given, needs both named.
//! - Filtering covers the four list methods and the resources a request
//!   names. It does not rewrite `resource_link`s or embedded resources inside
//!   tool results.
//! - In a 2025-03-26 JSON-RPC batch, one refused request refuses the whole
//!   batch (each request gets an error), so there a refusal is visible as
//!   such.
//! - Pins cover `name`, `description`, `inputSchema` and `annotations`, the
//!   text a model reads; `title`, `outputSchema` and `_meta` do not count.

mod access;
mod answer;
mod body;
pub mod catalog;
mod filter;
pub mod pins;
#[cfg(test)]
mod proptests;
pub mod rules;
pub mod schema;
mod tool_call;

pub use access::{AccessPolicyLayer, AccessPolicyService};
pub use answer::Refused;
pub use body::PolicyBody;
pub use tool_call::{ToolCallLayer, ToolCallService};

#[cfg(test)]
mod tests;
