//! Authentication and scope checks for an MCP endpoint acting as an OAuth
//! 2.1 resource server (MCP authorization spec, RFC 6750, RFC 9728).
//!
//! - [`AuthLayer`] reads `Authorization: Bearer <credential>` (only the
//!   header: a credential in the query string is never looked at), asks an
//!   [`Authenticate`] implementation who it is, and puts the resulting
//!   [`Principal`](crate::identity::Principal) in the request (and response)
//!   extensions. No credential: `401` with
//!   `WWW-Authenticate: Bearer resource_metadata="…", scope="…"`; a bad one:
//!   the same with `error="invalid_token"`; scopes missing from the
//!   globally required set: `403` with `error="insufficient_scope"`; the
//!   verifier cannot reach its keys: `503`.
//! - [`ScopeLayer`] (after JSON-RPC inspection) demands extra scopes per
//!   method and per tool, answering `403 insufficient_scope` with every scope
//!   the request needs, those already held included, so a client can step up
//!   in one authorization request.
//!
//! # Example
//!
//! ```
//! use std::{future::Future, pin::Pin, sync::Arc};
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use mcp_guard_layers::auth::{AuthFailure, AuthLayer, Authenticate, Challenge};
//! use mcp_guard_layers::identity::{AuthMethod, Principal};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! struct OneKey;
//! impl Authenticate for OneKey {
//!     fn authenticate<'a>(&'a self, credential: &'a str)
//!         -> Pin<Box<dyn Future<Output = Result<Principal, AuthFailure>> + Send + 'a>> {
//!         Box::pin(async move {
//!             // Real code compares a hash in constant time; see the gateway.
//!             if credential == "let-me-in" {
//!                 Ok(Principal { subject: "alice".into(), scopes: Arc::new([]), method: AuthMethod::ApiKey })
//!             } else {
//!                 Err(AuthFailure::invalid("unknown_key"))
//!             }
//!         })
//!     }
//! }
//!
//! # tokio_test();
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn tokio_test() {
//! let challenge = Challenge::new("https://mcp.example.com/.well-known/oauth-protected-resource/mcp", ["mcp:tools"]);
//! let svc = ServiceBuilder::new()
//!     .layer(AuthLayer::new(Arc::new(OneKey), challenge))
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Bytes::new()))
//!     }));
//! let res = svc.oneshot(Request::new(())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert!(res.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer resource_metadata="));
//! # }
//! ```
//!
//! # Security caveat
//!
//! A principal authenticates a request, never a session: put
//! [`session_binding`](crate::session_binding) after this layer so a session
//! id alone opens nothing. This layer does not remove the `Authorization`
//! header; a proxy must strip it before forwarding upstream (the MCP spec
//! forbids token passthrough), as the mcp-guard gateway does.

mod challenge;
mod scope;
mod service;

pub use challenge::Challenge;
pub use scope::{ScopeLayer, ScopeRequirements, ScopeService};
pub use service::{AuthFailure, AuthLayer, AuthService, Authenticate};
