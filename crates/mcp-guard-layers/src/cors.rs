//! CORS for browser-based MCP clients, driven by the same origin allow-list
//! as [`host_origin`](crate::host_origin).
//!
//! Built on tower-http's `CorsLayer`: a preflight from an allowed origin is
//! answered with the methods and headers the Streamable HTTP transport
//! needs, and responses expose `Mcp-Session-Id`, `MCP-Protocol-Version` and
//! `WWW-Authenticate` so a browser client can read them. Other origins get
//! no CORS headers at all (and, behind the Host/Origin layer, a 403 first).
//! Credentials are not allowed: MCP clients authenticate with a bearer
//! token, never with cookies.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use mcp_guard_layers::{cors, host_origin::HostOriginPolicy};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio_test();
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn tokio_test() {
//! let policy = HostOriginPolicy::loopback(8001).allow_origin("http://localhost:3000").unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(cors::layer(&policy))
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(String::new()))
//!     }));
//! let preflight = Request::options("/mcp")
//!     .header("origin", "http://localhost:3000")
//!     .header("access-control-request-method", "POST")
//!     .body(())
//!     .unwrap();
//! let res = svc.oneshot(preflight).await.unwrap();
//! assert_eq!(res.headers()["access-control-allow-origin"], "http://localhost:3000");
//! # }
//! ```
//!
//! # Security caveat
//!
//! The allowed origin is echoed back, never `*`, and only after the policy
//! matched it exactly. Allowing an origin lets any script on that origin
//! drive the MCP server with the user's network position: list only
//! origins you control.

use std::{sync::Arc, time::Duration};

use http::{HeaderName, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    host_origin::HostOriginPolicy,
    transport::{LAST_EVENT_ID, MCP_METHOD, MCP_PROTOCOL_VERSION, MCP_SESSION_ID},
};

/// A CORS layer for `policy`'s allowed origins.
pub fn layer(policy: &HostOriginPolicy) -> CorsLayer {
    let policy = Arc::new(policy.clone());
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| policy.origin_allowed(origin.as_bytes())))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers(allowed_request_headers())
        .expose_headers([MCP_SESSION_ID.clone(), MCP_PROTOCOL_VERSION.clone(), header::WWW_AUTHENTICATE])
        .max_age(Duration::from_secs(600))
}

/// Headers a browser client may send.
pub fn allowed_request_headers() -> [HeaderName; 7] {
    [
        header::CONTENT_TYPE,
        header::ACCEPT,
        header::AUTHORIZATION,
        MCP_SESSION_ID.clone(),
        MCP_PROTOCOL_VERSION.clone(),
        MCP_METHOD.clone(),
        LAST_EVENT_ID.clone(),
    ]
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{Request, Response, StatusCode};
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;

    #[tokio::test]
    async fn preflight_only_for_allowed_origins() {
        let policy = HostOriginPolicy::loopback(8001).allow_origin("http://localhost:3000").expect("valid");
        let cors = layer(&policy);
        for (origin, allowed) in [("http://localhost:3000", true), ("http://evil.com", false)] {
            let svc =
                cors.layer(service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) }));
            let req = Request::options("/mcp")
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type, mcp-session-id")
                .body(())
                .expect("request");
            let res = svc.oneshot(req).await.expect("infallible");
            assert_eq!(res.status(), StatusCode::OK);
            let h = res.headers();
            assert_eq!(h.get("access-control-allow-origin").is_some(), allowed, "{origin}");
            if allowed {
                let methods = h["access-control-allow-methods"].to_str().expect("ascii");
                assert!(methods.contains("POST") && methods.contains("DELETE"));
                assert!(h.get("access-control-allow-credentials").is_none());
            }
        }
        let svc =
            cors.layer(service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) }));
        let req = Request::post("/mcp").header("origin", "http://localhost:3000").body(()).expect("request");
        let res = svc.oneshot(req).await.expect("infallible");
        let exposed = res.headers()["access-control-expose-headers"].to_str().expect("ascii").to_ascii_lowercase();
        for name in ["mcp-session-id", "mcp-protocol-version", "www-authenticate"] {
            assert!(exposed.contains(name), "{exposed}");
        }
        assert_eq!(allowed_request_headers().len(), 7);
    }
}
