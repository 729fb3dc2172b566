use std::{
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response, header};
use tower::Service;

use super::HostOriginPolicy;
use crate::{future::ResponseFuture, rejection::Rejection};

/// Middleware that refuses requests whose `Host` or `Origin` is not allowed.
///
/// See the [module docs](crate::host_origin) for the rules.
#[derive(Clone, Debug)]
pub struct HostOrigin<S> {
    pub(super) inner: S,
    pub(super) policy: Arc<HostOriginPolicy>,
}

impl<S> HostOrigin<S> {
    /// The verdict for a request's headers, without calling the inner service.
    pub fn check<B>(policy: &HostOriginPolicy, req: &Request<B>) -> Result<(), Rejection> {
        // HTTP/2 carries the authority in the URI; HTTP/1.1 in Host.
        let host = match req.uri().authority() {
            Some(authority) => Some(authority.as_str().as_bytes()),
            None => req.headers().get(header::HOST).map(|v| v.as_bytes()),
        };
        if !policy.host_allowed(host) {
            return Err(Rejection::HostNotAllowed);
        }
        let mut origins = req.headers().get_all(header::ORIGIN).iter();
        match (origins.next(), origins.next()) {
            (None, _) => Ok(()),
            (Some(origin), None) if policy.origin_allowed(origin.as_bytes()) => Ok(()),
            // Refused, or sent twice: a browser never sends two.
            _ => Err(Rejection::OriginNotAllowed),
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HostOrigin<S>
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
        match Self::check(&self.policy, &req) {
            Ok(()) => ResponseFuture::inner(self.inner.call(req)),
            Err(rejection) => ResponseFuture::rejected(rejection.into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::StatusCode;
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::host_origin::HostOriginLayer;

    /// uri, Host, Origin headers, expected status, expected rejection.
    type Case<'a> = (&'a str, Option<&'a str>, &'a [&'a str], StatusCode, Option<Rejection>);

    #[tokio::test]
    async fn table() {
        let policy = HostOriginPolicy::loopback(8001).allow_origin("http://localhost:3000").expect("valid");
        let layer = HostOriginLayer::new(policy);
        let cases: &[Case<'_>] = &[
            ("/mcp", Some("localhost:8001"), &[], StatusCode::OK, None),
            ("/mcp", Some("localhost:8001"), &["http://localhost:3000"], StatusCode::OK, None),
            (
                "/mcp",
                Some("localhost:8001"),
                &["http://evil.com"],
                StatusCode::FORBIDDEN,
                Some(Rejection::OriginNotAllowed),
            ),
            ("/mcp", Some("localhost:8001"), &["null"], StatusCode::FORBIDDEN, Some(Rejection::OriginNotAllowed)),
            (
                "/mcp",
                Some("localhost:8001"),
                &["http://localhost:3000", "http://localhost:3000"],
                StatusCode::FORBIDDEN,
                Some(Rejection::OriginNotAllowed),
            ),
            ("/mcp", Some("evil.com"), &[], StatusCode::FORBIDDEN, Some(Rejection::HostNotAllowed)),
            ("/mcp", None, &[], StatusCode::FORBIDDEN, Some(Rejection::HostNotAllowed)),
            ("http://127.0.0.1:8001/mcp", None, &[], StatusCode::OK, None),
            (
                "http://evil.com:8001/mcp",
                Some("localhost:8001"),
                &[],
                StatusCode::FORBIDDEN,
                Some(Rejection::HostNotAllowed),
            ),
        ];
        for (uri, host, origins, status, reason) in cases {
            let svc = layer.layer(service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>(Response::new(Bytes::from_static(b"passed")))
            }));
            let mut req = Request::post(*uri);
            if let Some(h) = host {
                req = req.header(header::HOST, *h);
            }
            for o in *origins {
                req = req.header(header::ORIGIN, *o);
            }
            let res = svc.oneshot(req.body(()).expect("request")).await.expect("infallible");
            assert_eq!(res.status(), *status, "{uri} {host:?} {origins:?}");
            assert_eq!(res.extensions().get::<Rejection>(), reason.as_ref(), "{uri} {host:?} {origins:?}");
        }
    }
}
