use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};
use tower::{Layer, Service};

use super::{ProtocolVersion, Versions};
use crate::{
    future::{HookFuture, OnResponse, ResponseFuture},
    rejection::Rejection,
    transport::{MCP_PROTOCOL_VERSION, MCP_SESSION_ID},
};

/// Checks `MCP-Protocol-Version` on every request.
#[derive(Clone, Debug)]
pub struct ProtocolVersionLayer {
    versions: Versions,
}

impl ProtocolVersionLayer {
    /// Checks against `versions` (share it with the [`NegotiationLayer`](super::NegotiationLayer)).
    pub fn new(versions: Versions) -> Self {
        ProtocolVersionLayer { versions }
    }
}

impl<S> Layer<S> for ProtocolVersionLayer {
    type Service = CheckProtocolVersion<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CheckProtocolVersion { inner, versions: self.versions.clone() }
    }
}

/// The service of [`ProtocolVersionLayer`].
#[derive(Clone, Debug)]
pub struct CheckProtocolVersion<S> {
    inner: S,
    versions: Versions,
}

/// Forgets a session's version once its DELETE succeeded.
#[derive(Debug)]
pub struct ForgetOnDelete(Option<(Versions, Box<str>)>);

impl OnResponse for ForgetOnDelete {
    fn on_response<B>(self, response: &mut Response<B>) {
        if let (Some((versions, session)), true) = (self.0, response.status().is_success()) {
            versions.forget(&session);
        }
    }
}

impl Versions {
    /// The effective version of a request with these headers.
    pub fn check(&self, headers: &http::HeaderMap) -> Result<ProtocolVersion, Rejection> {
        let negotiated = headers.get(&MCP_SESSION_ID).and_then(|s| s.to_str().ok()).and_then(|s| self.negotiated(s));
        let mut values = headers.get_all(&MCP_PROTOCOL_VERSION).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => {
                let version = self.find(value.as_bytes()).ok_or(Rejection::UnsupportedProtocolVersion)?;
                match negotiated {
                    Some(n) if n != version && self.strict() => Err(Rejection::ProtocolVersionMismatch),
                    // Lenient: the session's rules, not the header's, apply.
                    Some(n) if n != version => Ok(ProtocolVersion { version: n, declared: true }),
                    _ => Ok(ProtocolVersion { version, declared: true }),
                }
            }
            (None, _) => negotiated
                .or_else(|| self.assumed())
                .map(|version| ProtocolVersion { version, declared: false })
                .ok_or(Rejection::UnsupportedProtocolVersion),
            (Some(_), Some(_)) => Err(Rejection::UnsupportedProtocolVersion),
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CheckProtocolVersion<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<HookFuture<S::Future, ForgetOnDelete>, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        match self.versions.check(req.headers()) {
            Ok(version) => {
                let forget = (req.method() == Method::DELETE)
                    .then(|| req.headers().get(&MCP_SESSION_ID).and_then(|s| s.to_str().ok()))
                    .flatten()
                    .map(|s| (self.versions.clone(), Box::from(s)));
                req.extensions_mut().insert(version);
                ResponseFuture::inner(HookFuture::new(self.inner.call(req), ForgetOnDelete(forget)))
            }
            Err(rejection) => ResponseFuture::rejected(rejection.into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::StatusCode;
    use tower::{ServiceExt, service_fn};

    use super::*;

    /// Status, rejection, and the effective version (`?` when inferred) on success.
    type Outcome = (StatusCode, Option<Rejection>, Option<String>);

    async fn send(versions: &Versions, method: Method, headers: &[(&str, &str)]) -> Outcome {
        let svc = ProtocolVersionLayer::new(versions.clone()).layer(service_fn(|req: Request<()>| async move {
            let v = req
                .extensions()
                .get::<ProtocolVersion>()
                .map(|v| format!("{}{}", v.version, if v.declared { "" } else { "?" }));
            Ok::<_, Infallible>(Response::new(Bytes::from(v.unwrap_or_default())))
        }));
        let mut req = Request::builder().method(method).uri("/mcp");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = svc.oneshot(req.body(()).expect("request")).await.expect("infallible");
        let body = String::from_utf8(res.body().to_vec()).expect("utf8");
        (res.status(), res.extensions().get::<Rejection>().copied(), (res.status() == StatusCode::OK).then_some(body))
    }

    /// Request headers, expected status, rejection and effective version.
    type Case = (&'static [(&'static str, &'static str)], StatusCode, Option<Rejection>, Option<&'static str>);

    #[tokio::test]
    async fn table() {
        let versions = Versions::default();
        let v = versions.find(b"2025-06-18").expect("supported");
        versions.learn("known", v);
        let bad = Some(Rejection::UnsupportedProtocolVersion);
        let mismatch = Some(Rejection::ProtocolVersionMismatch);
        let cases: [Case; 9] = [
            (&[("mcp-protocol-version", "2025-11-25")], StatusCode::OK, None, Some("2025-11-25")),
            (&[("mcp-protocol-version", "2026-07-28")], StatusCode::OK, None, Some("2026-07-28")),
            (&[], StatusCode::OK, None, Some("2025-03-26?")),
            (&[("mcp-protocol-version", "1.0.0")], StatusCode::BAD_REQUEST, bad, None),
            (&[("mcp-protocol-version", "2024-11-05")], StatusCode::BAD_REQUEST, bad, None),
            (
                &[("mcp-protocol-version", "2025-06-18"), ("mcp-protocol-version", "2025-06-18")],
                StatusCode::BAD_REQUEST,
                bad,
                None,
            ),
            (&[("mcp-session-id", "known")], StatusCode::OK, None, Some("2025-06-18?")),
            (
                &[("mcp-session-id", "known"), ("mcp-protocol-version", "2025-06-18")],
                StatusCode::OK,
                None,
                Some("2025-06-18"),
            ),
            (
                &[("mcp-session-id", "known"), ("mcp-protocol-version", "2025-11-25")],
                StatusCode::BAD_REQUEST,
                mismatch,
                None,
            ),
        ];
        for (headers, status, rejection, version) in cases {
            let got = send(&versions, Method::POST, headers).await;
            assert_eq!(got, (status, rejection, version.map(str::to_owned)), "{headers:?}");
        }
        // Lenient: a different supported header is served under the negotiated version.
        let lenient = Versions::default().enforce_negotiated(false);
        lenient.learn("known", lenient.find(b"2025-06-18").expect("supported"));
        let got =
            send(&lenient, Method::POST, &[("mcp-session-id", "known"), ("mcp-protocol-version", "2025-03-26")]).await;
        assert_eq!(got, (StatusCode::OK, None, Some("2025-06-18".to_owned())));
        // Only 2025-06-18 configured: a missing header cannot be assumed to be 2025-03-26.
        let only = Versions::new(["2025-06-18"]);
        assert_eq!(send(&only, Method::POST, &[]).await.1, bad);
    }

    #[tokio::test]
    async fn a_successful_delete_forgets_the_session() {
        let versions = Versions::default();
        versions.learn("s", versions.find(b"2025-11-25").expect("supported"));
        send(&versions, Method::DELETE, &[("mcp-session-id", "s")]).await;
        assert!(versions.negotiated("s").is_none());
    }
}
