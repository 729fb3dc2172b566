//! `MCP-Protocol-Version`: which protocol revision a request speaks.
//!
//! Two layers share one [`Versions`] state:
//!
//! - [`ProtocolVersionLayer`] checks the header on every request. A value
//!   outside the supported set (or malformed, or sent twice) gets `400`
//!   `unsupported_protocol_version`. A missing header means the version
//!   negotiated for the request's session, or, with no session known,
//!   2025-03-26, as the specification says. On a session whose negotiated
//!   version is known, any other value gets `400` `protocol_version_mismatch`
//!   (or, with [`Versions::enforce_negotiated`]`(false)`, is served under the
//!   negotiated version's rules).
//!   The effective version goes into the request extensions as
//!   [`ProtocolVersion`].
//! - [`NegotiationLayer`] sits after JSON-RPC inspection. On `initialize`
//!   it refuses a header that contradicts the body's `protocolVersion`, and
//!   reads the server's answer (plain JSON or SSE, as it streams past) to
//!   learn the version negotiated for the new session. DELETE forgets it.
//!
//! Supported by default: 2025-03-26, 2025-06-18, 2025-11-25 and 2026-07-28.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use mcp_guard_layers::protocol_version::{ProtocolVersionLayer, Versions};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio_test();
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn tokio_test() {
//! let versions = Versions::default();
//! let svc = ServiceBuilder::new()
//!     .layer(ProtocolVersionLayer::new(versions.clone()))
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Bytes::new()))
//!     }));
//! let old = Request::post("/mcp").header("mcp-protocol-version", "1.0.0").body(()).unwrap();
//! assert_eq!(svc.oneshot(old).await.unwrap().status(), StatusCode::BAD_REQUEST);
//! # }
//! ```
//!
//! # Security caveat
//!
//! The session table is bounded ([`Versions::with_capacity`]); when it is
//! full, new sessions are checked against the supported set only. Learning
//! needs the initialize response to pass through this layer: a session
//! created elsewhere (another replica) is likewise checked against the
//! supported set only.

mod negotiation;
mod service;
mod state;

pub use negotiation::{NegotiationBody, NegotiationLayer, NegotiationService};
pub use service::{CheckProtocolVersion, ProtocolVersionLayer};
pub use state::{DEFAULT_VERSIONS, ProtocolVersion, Versions};
