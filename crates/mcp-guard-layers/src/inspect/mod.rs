//! JSON-RPC inspection: read a POST body once, classify it, and hand the
//! result to every later layer.
//!
//! The body is read in full (it is one JSON-RPC message or batch, bounded
//! by the body limit) within a read timeout, parsed just enough to classify
//! each message ([`crate::jsonrpc::inspect`]), and put back unchanged for
//! the upstream. The [`Inspection`](crate::jsonrpc::Inspection) goes into
//! the request extensions: rate limits, policy and the stdio upstream read
//! it there instead of parsing again.
//!
//! | problem | status | reason |
//! |---|---|---|
//! | not JSON | 400 | `parse_error` (-32700) |
//! | not a JSON-RPC 2.0 message, or an `initialize` in a batch | 400 | `invalid_jsonrpc` (-32600) |
//! | nested deeper than the limit | 400 | `nesting_too_deep` |
//! | a batch outside 2025-03-26 | 400 | `batch_not_allowed` |
//! | a batch longer than the cap | 400 | `batch_too_long` |
//! | more than the body limit | 413 | `request_too_large` |
//! | the body stalls | 408 | `request_timeout` |
//!
//! GET and DELETE requests pass untouched.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use mcp_guard_layers::{inspect::JsonRpcInspectionLayer, jsonrpc::Inspection};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio_test();
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn tokio_test() {
//! let svc = ServiceBuilder::new()
//!     .layer(JsonRpcInspectionLayer::default())
//!     .service(service_fn(|req: Request<Full<Bytes>>| async move {
//!         let method = req.extensions().get::<Inspection>().unwrap().messages[0].method.clone();
//!         Ok::<_, std::convert::Infallible>(Response::new(Bytes::from(method.unwrap().to_string())))
//!     }));
//! let body = Full::new(Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#));
//! let req = Request::post("/mcp").body(body).unwrap();
//! assert_eq!(svc.oneshot(req).await.unwrap().into_body(), "ping");
//! # }
//! ```
//!
//! # Security caveat
//!
//! Inspection classifies; it does not validate `params` against a schema.
//! The depth bound is checked by a byte scan before parsing, so hostile
//! nesting costs one linear pass. Place a body limit before this layer
//! (it also caps bodies itself) so the read can never exceed memory bounds.

mod service;

pub use service::{InspectFuture, JsonRpcInspection, JsonRpcInspectionLayer};
