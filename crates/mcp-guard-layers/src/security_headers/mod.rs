//! Security headers on every response, rejections included.
//!
//! | header | value |
//! |---|---|
//! | `X-Frame-Options` | `DENY` |
//! | `X-Content-Type-Options` | `nosniff` |
//! | `Content-Security-Policy` | `default-src 'none'; frame-ancestors 'none'` |
//! | `Referrer-Policy` | `no-referrer` |
//! | `Cache-Control` | `no-store`; for SSE `no-cache, no-transform` |
//! | `Strict-Transport-Security` | only when configured, i.e. only over TLS |
//!
//! `Server` and `X-Powered-By` from an upstream are removed: a version in
//! them tells an attacker which advisories to try.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use mcp_guard_layers::security_headers::SecurityHeadersLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio_test();
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn tokio_test() {
//! let svc = ServiceBuilder::new()
//!     .layer(SecurityHeadersLayer::new())
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Bytes::from_static(b"{}")))
//!     }));
//! let res = svc.oneshot(Request::new(())).await.unwrap();
//! assert_eq!(res.headers()["x-frame-options"], "DENY");
//! assert_eq!(res.headers()["cache-control"], "no-store");
//! # }
//! ```
//!
//! # Security caveat
//!
//! HSTS pins browsers to HTTPS for `max-age`: enable it only on a host that
//! will keep serving TLS, and never on a plain-HTTP listener (this layer
//! sends it only when configured with [`SecurityHeadersLayer::with_hsts`]).
//! The CSP forbids everything because MCP endpoints serve JSON and event
//! streams, never documents; do not put this layer in front of a web UI.

mod service;

pub use service::{SecurityHeaders, SecurityHeadersLayer, SetHeaders};
