//! Request body limit, enforced before anything parses the body.
//!
//! A declared `Content-Length` over the limit is refused at once with
//! `413` (`request_too_large`), without reading a byte of the body. Every
//! other body (chunked, HTTP/2, or one whose length was not declared) is
//! wrapped in [`http_body_util::Limited`], which fails as soon as more than
//! the limit has arrived; the layer that reads the body (the JSON-RPC
//! inspection layer) answers that failure with the same `413`. Nothing past
//! the limit is ever buffered.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use mcp_guard_layers::body_limit::BodyLimitLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio_test();
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn tokio_test() {
//! let svc = ServiceBuilder::new()
//!     .layer(BodyLimitLayer::new(4 << 20))
//!     .service(service_fn(|_req: Request<_>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Bytes::new()))
//!     }));
//! let big = Request::post("/mcp").header("content-length", "5242880").body(String::new()).unwrap();
//! assert_eq!(svc.oneshot(big).await.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
//! # }
//! ```
//!
//! # Security caveat
//!
//! The limit protects memory only if whatever reads the body reads it
//! through the wrapper this layer installs: a service that swaps the body
//! for another one before reading it loses the bound. Header size and
//! count are the server's job (mcp-guard bounds both in its listener).

mod service;

pub use service::{BodyLimit, BodyLimitLayer};

/// True when `error`, from reading a body, is (or was caused by) a body
/// limit: boxed body types wrap the error, so the whole chain is searched.
pub fn is_limit_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        current = e.source();
    }
    false
}
