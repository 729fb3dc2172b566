//! Per-caller rate limits, with extra limits per JSON-RPC method and per tool.
//!
//! Every request is charged to its caller ([`CallerKey`]: the authenticated
//! principal, else the client IP, else the TCP peer). A request must pass:
//!
//! - the **caller** limit ([`RateLimitConfig::per_minute`], default 60 a
//!   minute): each JSON-RPC message costs one unit, so a batch of *n* costs
//!   *n*; a request without an [`Inspection`] (a GET, a DELETE) costs one;
//! - every **method** limit ([`RateLimitConfig::per_method`]) whose method
//!   one of its messages has, at one unit per matching message;
//! - every **tool** limit ([`RateLimitConfig::per_tool`]) whose tool one of
//!   its `tools/call` messages names, at one unit per matching message.
//!
//! Method and tool come from the [`Inspection`] the JSON-RPC inspection layer
//! puts in the request extensions; without one only the caller limit applies.
//! Each limit keeps its own bucket per caller.
//!
//! A refused request is answered `429 Too Many Requests` with the JSON-RPC
//! error body of [`Rejection::RateLimited`](crate::Rejection::RateLimited)
//! (`error.data.reason` is `rate_limited`), `Retry-After` and
//! `RateLimit-Reset` (whole seconds until the request could pass, rounded up,
//! at least 1), `RateLimit-Limit` (the refusing limit's quota per minute) and
//! `RateLimit-Remaining: 0`. The response extensions carry the
//! [`Rejection`](crate::Rejection) and a [`RateLimitExceeded`] naming the limit.
//!
//! # Semantics (GCRA)
//!
//! Limits use the generic cell rate algorithm of the [`governor`] crate: a
//! limit of *r* per minute with burst *b* is a bucket of *b* units, full for a
//! caller never seen, from which each message takes one, and to which one unit
//! returns every `60 s / r`, continuously rather than at window boundaries.
//! With the defaults (60 a minute, burst 60) a caller may send 60 messages at
//! once; the 61st is refused and one more is allowed every second after that.
//! A smaller burst smooths traffic: 60 a minute with burst 1 allows one
//! message a second and never two in the same second. A request costing more
//! than a limit's burst (a batch longer than the burst) can never pass: keep
//! bursts at least as large as the longest batch you accept.
//!
//! # Checking several limits
//!
//! A request is first tested against every applicable limit without spending
//! anything; only when all agree is a unit spent from each. So a request
//! refused by one limit (say the per-tool one) costs the caller nothing in
//! the others. When several limits refuse, the response reports the one that
//! frees up last. Two requests of the same caller racing each other can still
//! both pass the test and then find one bucket empty when spending: the
//! second is refused, and what it spent from the limits before the empty one
//! stays spent. The error is always on the strict side.
//!
//! # Memory
//!
//! Buckets are created on a caller's first request. A bucket that has filled
//! up again is indistinguishable from a new one and can be dropped:
//! [`RateLimitLayer::housekeeping`] does so for every limit. The gateway calls
//! it periodically; **a standalone user must call it too** (once a minute is
//! plenty), or memory grows with the number of distinct callers ever seen.
//! [`RateLimitLayer::len`] counts the live buckets.
//!
//! # Example
//!
//! ```
//! use std::num::NonZeroU32;
//!
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use mcp_guard_layers::identity::PeerAddr;
//! use mcp_guard_layers::rate_limit::{RateLimitConfig, RateLimitLayer, RateQuota};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio_test();
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn tokio_test() {
//! let two = NonZeroU32::new(2).unwrap();
//! let config = RateLimitConfig::new(two)
//!     .limit_tool("delete_everything", RateQuota::per_minute(NonZeroU32::MIN));
//! let layer = RateLimitLayer::new(config);
//! let mut svc = ServiceBuilder::new()
//!     .layer(layer.clone())
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Bytes::from_static(b"ok")))
//!     }));
//!
//! let request = || {
//!     let mut req = Request::post("/mcp").body(()).unwrap();
//!     req.extensions_mut().insert(PeerAddr("192.0.2.1:50000".parse().unwrap()));
//!     req
//! };
//! for _ in 0..2 {
//!     let res = svc.ready().await.unwrap().call(request()).await.unwrap();
//!     assert_eq!(res.status(), StatusCode::OK);
//! }
//! let res = svc.ready().await.unwrap().call(request()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(res.headers()["retry-after"], "30");
//!
//! // Run periodically, e.g. from a `tokio::time::interval` task.
//! layer.housekeeping();
//! # }
//! ```
//!
//! # Security caveat
//!
//! A limit is only as good as its key. Behind a reverse proxy every request
//! comes from the proxy's address: unless the client IP is resolved through
//! trusted proxies only (see [`crate::client_ip`]), either all clients share
//! the proxy's bucket (one noisy client throttles everyone) or, if a
//! forwarding header is believed from anyone, each client picks its own key
//! and evades the limit. Key on authenticated principals where you can.
//! Limits are kept in this process's memory: several gateway replicas each
//! allow the full quota, and a restart refills every bucket; a shared
//! backend is needed for a global limit.
//!
//! # Shared backends
//!
//! A limiter that keeps buckets elsewhere (the gateway keeps them in Redis)
//! asks [`RateLimitLayer::charges`] what a request costs — the caller and,
//! per applicable limit, its quota, GCRA constants ([`Charge::interval`],
//! [`Charge::tolerance`]) and cost — so it enforces exactly these rules, and
//! answers a refusal with [`RateLimitExceeded::into_response`], the same 429.
//! [`RateLimitConfig::per_replica`] divides every quota among replicas for
//! when each must enforce its share alone.
//!
//! [`CallerKey`]: crate::identity::CallerKey
//! [`Inspection`]: crate::jsonrpc::Inspection

mod charge;
mod layer;
#[cfg(test)]
mod proptests;
mod service;

pub use charge::{Charge, Charges};
pub use layer::{RateLimitConfig, RateLimitLayer, RateQuota};
pub use service::{LimitScope, RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET, RateLimit, RateLimitExceeded};
