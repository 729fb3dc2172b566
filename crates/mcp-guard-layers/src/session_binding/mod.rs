//! Sessions belong to the caller that created them.
//!
//! MCP session ids travel in a header, and SDKs have shipped servers where
//! anyone holding an id could use the session. This layer records who
//! created each session (the [`CallerKey`](crate::identity::CallerKey): the
//! authenticated principal, else the client IP) when a response hands out a
//! new `Mcp-Session-Id`, and refuses any later request that names the
//! session from someone else with `404`, exactly like an unknown id, so ids
//! cannot be probed. A DELETE that succeeds forgets the session; a DELETE by
//! someone else is refused like any other request.
//!
//! Place it right after authentication: before anything whose answer could
//! differ between a known and an unknown session (the protocol-version check
//! looks sessions up).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use mcp_guard_layers::session_binding::{SessionBindingLayer, SessionOwners};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio_test();
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn tokio_test() {
//! let svc = ServiceBuilder::new()
//!     .layer(SessionBindingLayer::new(SessionOwners::default()))
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Bytes::new()))
//!     }));
//! let guessed = Request::post("/mcp").header("mcp-session-id", "guessed").body(()).unwrap();
//! assert_eq!(svc.oneshot(guessed).await.unwrap().status(), StatusCode::NOT_FOUND);
//! # }
//! ```
//!
//! # Security caveat
//!
//! Ownership is kept in this process: sessions created through another
//! replica are unknown here (404). The table is bounded; when it is full of
//! live sessions a new session cannot be recorded and is unusable, which
//! fails closed.

mod service;

pub use service::{SessionBinding, SessionBindingLayer, SessionOwners};
