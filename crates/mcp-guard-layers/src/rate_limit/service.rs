use std::{
    num::NonZeroU32,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, header};
use tower::Service;

use super::layer::Limits;
use crate::{future::ResponseFuture, rejection::Rejection};

/// `RateLimit-Limit`: the quota per minute of the limit that refused.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: always `0` on a refusal.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: whole seconds until the request could pass.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Which limit refused a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LimitScope {
    /// The per-caller limit.
    Caller,
    /// The limit for this JSON-RPC method.
    Method(Arc<str>),
    /// The limit for `tools/call` of this tool.
    Tool(Arc<str>),
}

impl std::fmt::Display for LimitScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitScope::Caller => f.write_str("caller"),
            LimitScope::Method(m) => write!(f, "method:{m}"),
            LimitScope::Tool(t) => write!(f, "tool:{t}"),
        }
    }
}

/// A refused request: the limit that refused and how long to wait.
///
/// The 429 response carries a copy in its extensions (next to the
/// [`Rejection`]), so logs and metrics can tell which limit refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitExceeded {
    /// The limit that refused (of several, the one that frees up last).
    pub scope: LimitScope,
    /// That limit's quota per minute.
    pub per_minute: NonZeroU32,
    /// Time until the request could pass, as far as this limit is concerned.
    pub retry_after: Duration,
}

impl RateLimitExceeded {
    /// [`retry_after`](Self::retry_after) in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }

    /// The 429 answer: [`Rejection::RateLimited`] plus `Retry-After`,
    /// `RateLimit-Limit`, `RateLimit-Remaining: 0` and `RateLimit-Reset`.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let mut response = Rejection::RateLimited.into_response::<B>();
        let wait = HeaderValue::from(self.retry_after_secs());
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, wait.clone());
        headers.insert(RATELIMIT_LIMIT, HeaderValue::from(self.per_minute.get()));
        headers.insert(RATELIMIT_REMAINING, HeaderValue::from_static("0"));
        headers.insert(RATELIMIT_RESET, wait);
        response.extensions_mut().insert(self);
        response
    }
}

impl std::fmt::Display for RateLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rate limit {} ({}/min) exceeded, retry in {:?}", self.scope, self.per_minute, self.retry_after)
    }
}

/// Middleware that refuses callers over their rate limits with `429`.
///
/// See the [module docs](crate::rate_limit) for the rules.
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    pub(super) inner: S,
    pub(super) limits: Arc<Limits>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match self.limits.check(req.extensions()) {
            Ok(()) => ResponseFuture::inner(self.inner.call(req)),
            Err(refusal) => {
                tracing::debug!(limit = %refusal.scope, retry_after = ?refusal.retry_after, "rate limited");
                ResponseFuture::rejected(refusal.into_response())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, net::SocketAddr};

    use http::StatusCode;
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::{
        identity::{AuthMethod, ClientIp, PeerAddr, Principal},
        jsonrpc::{Inspection, Limits as InspectLimits, inspect},
        rate_limit::{RateLimitConfig, RateLimitLayer, RateQuota},
    };

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("non-zero")
    }

    fn peer(addr: &str) -> PeerAddr {
        PeerAddr(addr.parse::<SocketAddr>().expect("socket address"))
    }

    fn call(id: u32, tool: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}"}}}}"#)
    }

    fn request(id: u32, method: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}"}}"#)
    }

    /// A POST from `from`, with the inspection of `body` in its extensions
    /// (what the JSON-RPC inspection layer inserts), or a bare request.
    fn post(from: PeerAddr, body: Option<&str>) -> Request<()> {
        let mut req = Request::post("/mcp").body(()).expect("request");
        req.extensions_mut().insert(from);
        if let Some(body) = body {
            let inspection: Inspection = inspect(body.as_bytes(), InspectLimits::default()).expect("valid JSON-RPC");
            req.extensions_mut().insert(inspection);
        }
        req
    }

    async fn send(layer: &RateLimitLayer, req: Request<()>) -> Response<Bytes> {
        let svc = layer.layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Bytes::from_static(b"passed")))
        }));
        svc.oneshot(req).await.expect("infallible")
    }

    async fn status(layer: &RateLimitLayer, req: Request<()>) -> StatusCode {
        send(layer, req).await.status()
    }

    #[tokio::test]
    async fn sixty_per_minute_refuses_the_sixty_first_with_headers() {
        let layer = RateLimitLayer::new(RateLimitConfig::default());
        let from = peer("10.0.0.1:4000");
        for i in 0..60 {
            assert_eq!(status(&layer, post(from, None)).await, StatusCode::OK, "request {i}");
        }
        let res = send(&layer, post(from, None)).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.extensions().get::<Rejection>(), Some(&Rejection::RateLimited));
        let refusal = res.extensions().get::<RateLimitExceeded>().expect("refusal in extensions");
        assert_eq!(refusal.scope, LimitScope::Caller);
        // One unit returns every second.
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        assert_eq!(res.headers()[RATELIMIT_LIMIT], "60");
        assert_eq!(res.headers()[RATELIMIT_REMAINING], "0");
        assert_eq!(res.headers()[RATELIMIT_RESET], "1");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let body: serde_json::Value = serde_json::from_slice(res.body()).expect("JSON body");
        assert_eq!(body["jsonrpc"], "2.0");
        assert_eq!(body["error"]["data"]["reason"], "rate_limited");
    }

    #[tokio::test]
    async fn burst_and_rate_table() {
        // per minute, burst, how many pass in quick succession, Retry-After of the next.
        let cases: &[(u32, Option<u32>, u32, &str)] = &[
            (60, None, 60, "1"),
            (60, Some(5), 5, "1"),
            (10, Some(3), 3, "6"),
            (1, None, 1, "60"),
            (120, Some(1), 1, "1"),
        ];
        for &(per_minute, burst, passes, retry_after) in cases {
            let mut config = RateLimitConfig::new(nz(per_minute));
            config.burst = burst.map(nz);
            let layer = RateLimitLayer::new(config);
            let from = peer("10.0.0.1:4000");
            for i in 0..passes {
                assert_eq!(status(&layer, post(from, None)).await, StatusCode::OK, "{per_minute}/{burst:?} #{i}");
            }
            let res = send(&layer, post(from, None)).await;
            assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{per_minute}/{burst:?}");
            assert_eq!(res.headers()[header::RETRY_AFTER], retry_after, "{per_minute}/{burst:?}");
            assert_eq!(res.headers()[RATELIMIT_LIMIT], per_minute.to_string().as_str());
        }
    }

    #[tokio::test]
    async fn distinct_callers_have_separate_buckets() {
        let layer = RateLimitLayer::new(RateLimitConfig::new(nz(2)));
        let principal =
            |name: &str| Principal { subject: name.into(), scopes: Arc::new([]), method: AuthMethod::Bearer };
        let shared_peer = peer("192.0.2.1:1000");
        // Each identity: requests built with its extensions on top of the same peer.
        let identities: Vec<Box<dyn Fn() -> Request<()>>> = vec![
            Box::new(move || post(shared_peer, None)),
            Box::new(|| post(peer("192.0.2.2:1000"), None)),
            Box::new(move || {
                let mut req = post(shared_peer, None);
                req.extensions_mut().insert(ClientIp("203.0.113.7".parse().expect("ip")));
                req
            }),
            Box::new(move || {
                let mut req = post(shared_peer, None);
                req.extensions_mut().insert(principal("alice"));
                req
            }),
            Box::new(move || {
                let mut req = post(shared_peer, None);
                req.extensions_mut().insert(principal("bob"));
                req
            }),
        ];
        for (i, make) in identities.iter().enumerate() {
            assert_eq!(status(&layer, make()).await, StatusCode::OK, "identity {i} first");
            assert_eq!(status(&layer, make()).await, StatusCode::OK, "identity {i} second");
            assert_eq!(status(&layer, make()).await, StatusCode::TOO_MANY_REQUESTS, "identity {i} third");
        }
        // The same peer port does not matter: the key is the IP.
        assert_eq!(status(&layer, post(peer("192.0.2.1:2000"), None)).await, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(layer.len(), identities.len());
    }

    #[tokio::test]
    async fn method_and_tool_limits_refuse_only_matching_messages() {
        let config = RateLimitConfig::new(nz(1000))
            .limit_method("tools/list", RateQuota::per_minute(nz(2)))
            .limit_tool("delete_all", RateQuota::per_minute(nz(60)).with_burst(nz(1)));
        let layer = RateLimitLayer::new(config);
        let from = peer("10.0.0.1:4000");
        let list = request(1, "tools/list");
        let ping = request(2, "ping");
        let delete = call(3, "delete_all");
        let echo = call(4, "echo");
        // body, expected status, refusing scope.
        let cases: &[(&str, StatusCode, Option<LimitScope>)] = &[
            (&list, StatusCode::OK, None),
            (&list, StatusCode::OK, None),
            (&list, StatusCode::TOO_MANY_REQUESTS, Some(LimitScope::Method("tools/list".into()))),
            (&ping, StatusCode::OK, None),
            (&delete, StatusCode::OK, None),
            (&delete, StatusCode::TOO_MANY_REQUESTS, Some(LimitScope::Tool("delete_all".into()))),
            (&echo, StatusCode::OK, None),
            (&ping, StatusCode::OK, None),
            (&list, StatusCode::TOO_MANY_REQUESTS, Some(LimitScope::Method("tools/list".into()))),
        ];
        for (i, (body, want, scope)) in cases.iter().enumerate() {
            let res = send(&layer, post(from, Some(body))).await;
            assert_eq!(res.status(), *want, "case {i}: {body}");
            assert_eq!(res.extensions().get::<RateLimitExceeded>().map(|r| &r.scope), scope.as_ref(), "case {i}");
        }
        // Another caller is not affected by the first one's method and tool use.
        assert_eq!(status(&layer, post(peer("10.0.0.2:4000"), Some(&list))).await, StatusCode::OK);
        assert_eq!(status(&layer, post(peer("10.0.0.2:4000"), Some(&delete))).await, StatusCode::OK);
    }

    #[tokio::test]
    async fn refused_request_spends_nothing() {
        // The tool limit refuses; the caller and method buckets must stay untouched.
        let config = RateLimitConfig::new(nz(60))
            .with_burst(nz(3))
            .limit_method("tools/call", RateQuota::per_minute(nz(60)).with_burst(nz(2)))
            .limit_tool("slow", RateQuota::per_minute(nz(60)).with_burst(nz(1)));
        let layer = RateLimitLayer::new(config);
        let from = peer("10.0.0.1:4000");
        assert_eq!(status(&layer, post(from, Some(&call(1, "slow")))).await, StatusCode::OK);
        for _ in 0..5 {
            let res = send(&layer, post(from, Some(&call(2, "slow")))).await;
            assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(
                res.extensions().get::<RateLimitExceeded>().map(|r| &r.scope),
                Some(&LimitScope::Tool("slow".into()))
            );
        }
        // tools/call bucket: 1 of 2 spent; caller bucket: 1 of 3 spent.
        assert_eq!(status(&layer, post(from, Some(&call(3, "fast")))).await, StatusCode::OK);
        assert_eq!(status(&layer, post(from, Some(&request(4, "ping")))).await, StatusCode::OK);
        let res = send(&layer, post(from, Some(&request(5, "ping")))).await;
        assert_eq!(res.extensions().get::<RateLimitExceeded>().map(|r| &r.scope), Some(&LimitScope::Caller));
    }

    #[tokio::test]
    async fn batch_counts_each_message() {
        let config = RateLimitConfig::new(nz(60))
            .with_burst(nz(4))
            .limit_tool("echo", RateQuota::per_minute(nz(60)).with_burst(nz(2)));
        let layer = RateLimitLayer::new(config);
        let from = peer("10.0.0.1:4000");
        let batch = |bodies: &[String]| format!("[{}]", bodies.join(","));
        // Three echo calls exceed the tool burst of 2 as a whole: refused, nothing spent.
        let three = batch(&[call(1, "echo"), call(2, "echo"), call(3, "echo")]);
        let res = send(&layer, post(from, Some(&three))).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            res.extensions().get::<RateLimitExceeded>().map(|r| &r.scope),
            Some(&LimitScope::Tool("echo".into()))
        );
        // Two echo calls and a ping: 2 tool units, 3 caller units.
        let mixed = batch(&[call(4, "echo"), call(5, "echo"), request(6, "ping")]);
        assert_eq!(status(&layer, post(from, Some(&mixed))).await, StatusCode::OK);
        // One caller unit left: a two-message batch is refused, one message passes.
        let two_pings = batch(&[request(7, "ping"), request(8, "ping")]);
        assert_eq!(status(&layer, post(from, Some(&two_pings))).await, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status(&layer, post(from, Some(&request(9, "ping")))).await, StatusCode::OK);
    }

    #[tokio::test]
    async fn refusal_reports_the_longest_wait() {
        // Both limits refuse; the caller limit frees up later (60 s vs 1 s).
        let config = RateLimitConfig::new(nz(1)).limit_method("ping", RateQuota::per_minute(nz(60)).with_burst(nz(1)));
        let layer = RateLimitLayer::new(config);
        let from = peer("10.0.0.1:4000");
        let ping = request(1, "ping");
        assert_eq!(status(&layer, post(from, Some(&ping))).await, StatusCode::OK);
        let res = send(&layer, post(from, Some(&ping))).await;
        assert_eq!(res.extensions().get::<RateLimitExceeded>().map(|r| &r.scope), Some(&LimitScope::Caller));
        assert_eq!(res.headers()[RATELIMIT_LIMIT], "1");
        let retry: u64 = res.headers()[header::RETRY_AFTER].to_str().expect("ascii").parse().expect("seconds");
        assert!((59..=60).contains(&retry), "{retry}");
    }

    #[tokio::test]
    async fn capacity_returns_over_time() {
        // 600/min: one unit every 100 ms (a margin for a slow test machine).
        let layer = RateLimitLayer::new(RateLimitConfig::new(nz(600)).with_burst(nz(1)));
        let from = peer("10.0.0.1:4000");
        assert_eq!(status(&layer, post(from, None)).await, StatusCode::OK);
        let res = send(&layer, post(from, None)).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let refusal = res.extensions().get::<RateLimitExceeded>().expect("refusal");
        assert!(refusal.retry_after <= Duration::from_millis(100), "{:?}", refusal.retry_after);
        // Sub-second waits still say 1 second.
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(status(&layer, post(from, None)).await, StatusCode::OK);
    }

    #[tokio::test]
    async fn clones_share_state() {
        let layer = RateLimitLayer::new(RateLimitConfig::new(nz(60)).with_burst(nz(1)));
        let clone = layer.clone();
        let from = peer("10.0.0.1:4000");
        assert_eq!(status(&layer, post(from, None)).await, StatusCode::OK);
        assert_eq!(status(&clone, post(from, None)).await, StatusCode::TOO_MANY_REQUESTS);
        assert!(clone.check(post(from, None).extensions()).is_err());
    }

    #[tokio::test]
    async fn housekeeping_forgets_idle_callers() {
        // 60000/min: a bucket of 1 is full again 1 ms after use.
        let config = RateLimitConfig::new(nz(60_000))
            .with_burst(nz(1))
            .limit_method("ping", RateQuota::per_minute(nz(60_000)).with_burst(nz(1)));
        let layer = RateLimitLayer::new(config);
        assert!(layer.is_empty());
        for i in 0..20u16 {
            let from = PeerAddr(SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 4000)));
            assert_eq!(status(&layer, post(from, Some(&request(1, "ping")))).await, StatusCode::OK);
        }
        // One key per caller in each of the two limits.
        assert_eq!(layer.len(), 40);
        tokio::time::sleep(Duration::from_millis(20)).await;
        layer.housekeeping();
        assert_eq!(layer.len(), 0);
        assert!(layer.is_empty());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let cases = [(0, 1), (1, 1), (999, 1), (1000, 1), (1001, 2), (59_000, 59), (59_001, 60)];
        for (millis, secs) in cases {
            let refusal = RateLimitExceeded {
                scope: LimitScope::Caller,
                per_minute: nz(1),
                retry_after: Duration::from_millis(millis),
            };
            assert_eq!(refusal.retry_after_secs(), secs, "{millis} ms");
        }
    }
}
