//! The client's IP address, for rate limits and logs, without letting the
//! client choose it.
//!
//! `X-Forwarded-For` and `Forwarded` (RFC 7239) are read only when the TCP
//! peer is a configured trusted proxy. Then the hops are read right to
//! left, skipping trusted proxies, and the first untrusted address is the
//! client. Anything a client writes to the left of that is ignored: a
//! client can prepend whatever it likes, but cannot forge what a trusted
//! proxy appended. With no trusted proxies configured, both headers are
//! ignored and the peer address is the client.
//!
//! The result is a [`ClientIp`](crate::identity::ClientIp) in the request
//! extensions. The server must have inserted a
//! [`PeerAddr`](crate::identity::PeerAddr); without one nothing is set.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use mcp_guard_layers::client_ip::{ClientIpLayer, TrustedProxies};
//! use mcp_guard_layers::identity::{ClientIp, PeerAddr};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio_test();
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn tokio_test() {
//! let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(ClientIpLayer::new(trusted))
//!     .service(service_fn(|req: Request<()>| async move {
//!         let ClientIp(ip) = req.extensions().get::<ClientIp>().copied().unwrap();
//!         Ok::<_, std::convert::Infallible>(Response::new(Bytes::from(ip.to_string())))
//!     }));
//! let mut req = Request::new(());
//! req.headers_mut().insert("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
//! req.extensions_mut().insert(PeerAddr("10.1.2.3:4000".parse().unwrap()));
//! assert_eq!(svc.oneshot(req).await.unwrap().into_body(), "203.0.113.7");
//! # }
//! ```
//!
//! # Security caveat
//!
//! List only proxies you run. A trusted range that includes addresses
//! clients control (a shared cloud NAT, a public CDN you do not own) lets
//! those clients pick their own rate-limit key.

mod parse;
mod service;

pub use parse::{InvalidProxy, TrustedProxies};
pub use service::{ClientIpLayer, ResolveClientIp};
