use std::{
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderValue, Request, Response, header};
use tower::{Layer, Service};

use crate::future::{HookFuture, OnResponse};

/// Adds the security headers to every response.
#[derive(Clone, Debug, Default)]
pub struct SecurityHeadersLayer {
    hsts: Option<HeaderValue>,
}

impl SecurityHeadersLayer {
    /// The headers, without HSTS.
    pub fn new() -> Self {
        SecurityHeadersLayer::default()
    }

    /// Also `Strict-Transport-Security: max-age=<secs>; includeSubDomains`.
    /// For TLS listeners only.
    pub fn with_hsts(mut self, max_age: Duration) -> Self {
        let value = format!("max-age={}; includeSubDomains", max_age.as_secs());
        self.hsts = HeaderValue::from_str(&value).ok();
        self
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders { inner, hsts: self.hsts.clone() }
    }
}

/// The service of [`SecurityHeadersLayer`].
#[derive(Clone, Debug)]
pub struct SecurityHeaders<S> {
    inner: S,
    hsts: Option<HeaderValue>,
}

/// The hook that writes the headers.
#[derive(Debug)]
pub struct SetHeaders {
    hsts: Option<HeaderValue>,
}

static X_FRAME_OPTIONS: HeaderValue = HeaderValue::from_static("DENY");
static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
static CSP: HeaderValue = HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'");
static NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
static NO_CACHE_STREAM: HeaderValue = HeaderValue::from_static("no-cache, no-transform");

impl OnResponse for SetHeaders {
    fn on_response<B>(self, response: &mut Response<B>) {
        let headers = response.headers_mut();
        let event_stream = crate::transport::is_event_stream(headers);
        headers.insert(header::X_FRAME_OPTIONS, X_FRAME_OPTIONS.clone());
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone());
        headers.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
        headers.insert(header::REFERRER_POLICY, NO_REFERRER.clone());
        let cache = if event_stream { &NO_CACHE_STREAM } else { &NO_STORE };
        headers.insert(header::CACHE_CONTROL, cache.clone());
        if let Some(hsts) = self.hsts {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts);
        }
        headers.remove(header::SERVER);
        headers.remove("x-powered-by");
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SecurityHeaders<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = HookFuture<S::Future, SetHeaders>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        HookFuture::new(self.inner.call(req), SetHeaders { hsts: self.hsts.clone() })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::StatusCode;
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::Rejection;

    async fn respond(layer: &SecurityHeadersLayer, res: Response<Bytes>) -> Response<Bytes> {
        let svc = layer.layer(service_fn(move |_req: Request<()>| {
            let res = res.clone();
            async move { Ok::<_, std::convert::Infallible>(res) }
        }));
        svc.oneshot(Request::new(())).await.expect("infallible")
    }

    #[tokio::test]
    async fn every_response_gets_the_headers() {
        let mut upstream = Response::new(Bytes::new());
        upstream.headers_mut().insert(header::SERVER, HeaderValue::from_static("leaky/1.2.3"));
        upstream.headers_mut().insert("x-powered-by", HeaderValue::from_static("Express"));
        upstream.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=600"));
        let mut sse = Response::new(Bytes::new());
        sse.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
        let rejected: Response<Bytes> = Rejection::OriginNotAllowed.into_response();
        let cases = [
            (upstream, "no-store", StatusCode::OK),
            (sse, "no-cache, no-transform", StatusCode::OK),
            (rejected, "no-store", StatusCode::FORBIDDEN),
        ];
        let layer = SecurityHeadersLayer::new();
        for (res, cache, status) in cases {
            let res = respond(&layer, res).await;
            let h = res.headers();
            assert_eq!(res.status(), status);
            assert_eq!(h["x-frame-options"], "DENY");
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert_eq!(h["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
            assert_eq!(h["referrer-policy"], "no-referrer");
            assert_eq!(h["cache-control"], cache);
            assert!(h.get("server").is_none() && h.get("x-powered-by").is_none());
            assert!(h.get("strict-transport-security").is_none(), "no HSTS without TLS");
        }
        let tls = SecurityHeadersLayer::new().with_hsts(Duration::from_secs(31_536_000));
        let res = respond(&tls, Response::new(Bytes::new())).await;
        assert_eq!(res.headers()["strict-transport-security"], "max-age=31536000; includeSubDomains");
    }
}
