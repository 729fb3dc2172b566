//! Host and Origin validation: the defence against DNS rebinding.
//!
//! A web page the user visits can resolve its own domain to `127.0.0.1`
//! and then drive a "local" MCP server from the browser. The MCP transport
//! specification therefore requires servers to validate `Origin`, and to
//! bind to loopback when run locally. This layer checks both headers a
//! rebinding attack cannot forge from a browser:
//!
//! - **Host** (or the HTTP/2 `:authority`) must name an allowed authority.
//!   By default: `localhost`, `127.0.0.1` and `[::1]` with the listening port.
//! - **Origin**, when present, must match an allowed origin exactly on
//!   scheme, host and port (RFC 6454 serialization, default ports
//!   normalised). `Origin: null` is refused unless allowed explicitly. A
//!   missing Origin passes: non-browser clients send none.
//!
//! Both failures answer `403` with a JSON-RPC error body whose
//! `error.data.reason` is `host_not_allowed` or `origin_not_allowed`.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use mcp_guard_layers::host_origin::{HostOriginLayer, HostOriginPolicy};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio_test();
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn tokio_test() {
//! let policy = HostOriginPolicy::loopback(8001)
//!     .allow_origin("http://localhost:3000")
//!     .expect("a valid origin");
//! let svc = ServiceBuilder::new()
//!     .layer(HostOriginLayer::new(policy))
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Bytes::from_static(b"ok")))
//!     }));
//!
//! let evil = Request::post("/mcp")
//!     .header("host", "localhost:8001")
//!     .header("origin", "http://evil.example")
//!     .body(())
//!     .unwrap();
//! assert_eq!(svc.oneshot(evil).await.unwrap().status(), StatusCode::FORBIDDEN);
//! # }
//! ```
//!
//! # Security caveat
//!
//! Host validation only helps if the names you allow cannot be pointed at
//! you by an attacker: never allow a wildcard host on a server that also
//! listens on loopback. When mcp-guard runs behind a reverse proxy, the
//! proxy must pass the original `Host` through (or you must allow the name
//! the proxy uses). A wildcard origin (`*`) turns the Origin check off and
//! is for development only.

mod layer;
mod policy;
mod service;

pub use layer::HostOriginLayer;
pub use policy::{HostOriginPolicy, InvalidOrigin};
pub use service::HostOrigin;
