use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::{
    body_limit::is_limit_error,
    jsonrpc::{Limits, inspect},
    protocol_version::ProtocolVersion,
    rejection::Rejection,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Classifies POST bodies into request extensions.
#[derive(Clone, Copy, Debug)]
pub struct JsonRpcInspectionLayer {
    limits: Limits,
    max_body: usize,
    read_timeout: Duration,
}

impl Default for JsonRpcInspectionLayer {
    /// Default nesting and batch limits, 4 MiB bodies, 30 s to send one.
    fn default() -> Self {
        JsonRpcInspectionLayer { limits: Limits::default(), max_body: 4 << 20, read_timeout: Duration::from_secs(30) }
    }
}

impl JsonRpcInspectionLayer {
    /// Explicit limits.
    pub fn new(limits: Limits, max_body: usize, read_timeout: Duration) -> Self {
        JsonRpcInspectionLayer { limits, max_body, read_timeout }
    }
}

impl<S> Layer<S> for JsonRpcInspectionLayer {
    type Service = JsonRpcInspection<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JsonRpcInspection { inner, layer: *self }
    }
}

/// The service of [`JsonRpcInspectionLayer`].
#[derive(Clone, Debug)]
pub struct JsonRpcInspection<S> {
    inner: S,
    layer: JsonRpcInspectionLayer,
}

pin_project! {
    /// Response future of [`JsonRpcInspection`]: the inner future directly
    /// for bodies it does not read, a boxed read-then-call otherwise.
    #[project = InspectProj]
    pub enum InspectFuture<F, T> {
        /// Not inspected.
        Direct { #[pin] future: F },
        /// Reading the body, then calling the inner service.
        Reading { future: Pin<Box<dyn Future<Output = T> + Send>> },
    }
}

impl<F, T> std::fmt::Debug for InspectFuture<F, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InspectFuture::Direct { .. } => "InspectFuture::Direct",
            InspectFuture::Reading { .. } => "InspectFuture::Reading",
        })
    }
}

impl<F: Future> Future for InspectFuture<F, F::Output> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            InspectProj::Direct { future } => future.poll(cx),
            InspectProj::Reading { future } => future.as_mut().poll(cx),
        }
    }
}

impl<S, B, ResBody> Service<Request<B>> for JsonRpcInspection<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: From<Bytes> + Send,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = InspectFuture<S::Future, Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if req.method() != Method::POST {
            return InspectFuture::Direct { future: self.inner.call(req) };
        }
        // The ready service goes into the future; its clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let JsonRpcInspectionLayer { limits, max_body, read_timeout } = self.layer;
        InspectFuture::Reading {
            future: Box::pin(async move {
                let (mut parts, body) = req.into_parts();
                let read = tokio::time::timeout(read_timeout, Limited::new(body, max_body).collect()).await;
                let bytes = match read {
                    Ok(Ok(collected)) => collected.to_bytes(),
                    Ok(Err(e)) if is_limit_error(&*e) => return Ok(Rejection::RequestTooLarge.into_response()),
                    Ok(Err(_)) => return Ok(Rejection::BodyIncomplete.into_response()),
                    Err(_) => return Ok(Rejection::RequestTimeout.into_response()),
                };
                let mut inspection = match inspect(&bytes, limits) {
                    Ok(inspection) => inspection,
                    Err(rejection) => return Ok(rejection.into_response()),
                };
                // Without a version layer, the specification's default (2025-03-26) applies.
                let batches = parts.extensions.get::<ProtocolVersion>().is_none_or(ProtocolVersion::allows_batches);
                if inspection.batch && !batches {
                    return Ok(Rejection::BatchNotAllowed.into_response());
                }
                inspection.body = bytes.clone();
                parts.extensions.insert(inspection);
                inner.call(Request::from_parts(parts, B::from(bytes))).await
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::StatusCode;
    use http_body_util::{Full, StreamBody};
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::jsonrpc::Inspection;

    async fn echo_kind(req: Request<Full<Bytes>>) -> Result<Response<Bytes>, Infallible> {
        let n = req.extensions().get::<Inspection>().map_or(0, |i| i.messages.len());
        let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        Ok(Response::new(Bytes::from(format!("{n}:{}", body.len()))))
    }

    /// Method, body, effective version, expected status and rejection.
    type Case = (Method, String, Option<ProtocolVersion>, StatusCode, Option<Rejection>);

    #[tokio::test]
    async fn table() {
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"x"}]"#;
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let v = |s: &str| Some(ProtocolVersion { version: s.into(), declared: true });
        let cases: Vec<Case> = vec![
            (Method::POST, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.into(), None, StatusCode::OK, None),
            (Method::POST, "{oops".into(), None, StatusCode::BAD_REQUEST, Some(Rejection::ParseError)),
            (
                Method::POST,
                r#"{"jsonrpc":"2.0"}"#.into(),
                None,
                StatusCode::BAD_REQUEST,
                Some(Rejection::InvalidMessage),
            ),
            (Method::POST, deep, None, StatusCode::BAD_REQUEST, Some(Rejection::NestingTooDeep)),
            (Method::POST, batch.into(), v("2025-03-26"), StatusCode::OK, None),
            (Method::POST, batch.into(), None, StatusCode::OK, None),
            (Method::POST, batch.into(), v("2025-06-18"), StatusCode::BAD_REQUEST, Some(Rejection::BatchNotAllowed)),
            (Method::POST, "x".repeat(300), None, StatusCode::PAYLOAD_TOO_LARGE, Some(Rejection::RequestTooLarge)),
            (Method::GET, String::new(), None, StatusCode::OK, None),
        ];
        let layer = JsonRpcInspectionLayer::new(Limits::default(), 256, Duration::from_secs(1));
        for (method, body, version, status, rejection) in cases {
            let mut req = Request::builder()
                .method(method.clone())
                .uri("/mcp")
                .body(Full::new(Bytes::from(body.clone())))
                .expect("request");
            if let Some(v) = version.clone() {
                req.extensions_mut().insert(v);
            }
            let res = layer.layer(service_fn(echo_kind)).oneshot(req).await.expect("infallible");
            assert_eq!(res.status(), status, "{method} {body:.40} {version:?}");
            assert_eq!(res.extensions().get::<Rejection>(), rejection.as_ref());
            if status == StatusCode::OK && method == Method::POST {
                let want_len = body.len();
                assert!(res.body().ends_with(format!(":{want_len}").as_bytes()), "body passed on unchanged");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        let never = futures_util::stream::pending::<Result<http_body::Frame<Bytes>, Infallible>>();
        let svc = JsonRpcInspectionLayer::new(Limits::default(), 1024, Duration::from_secs(5)).layer(service_fn(
            |_req: Request<StreamBodyAdapter>| async { Ok::<_, Infallible>(Response::new(Bytes::new())) },
        ));
        let req =
            Request::post("/mcp").body(StreamBodyAdapter::Stream(StreamBody::new(Box::pin(never)))).expect("request");
        let res = svc.oneshot(req).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    }

    type PendingStream = Pin<Box<dyn futures_util::Stream<Item = Result<http_body::Frame<Bytes>, Infallible>> + Send>>;

    /// A request body that is either a stream or bytes, as the layer needs `From<Bytes>`.
    enum StreamBodyAdapter {
        Stream(StreamBody<PendingStream>),
        Bytes(Full<Bytes>),
    }

    impl From<Bytes> for StreamBodyAdapter {
        fn from(b: Bytes) -> Self {
            StreamBodyAdapter::Bytes(Full::new(b))
        }
    }

    impl Body for StreamBodyAdapter {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
            match self.get_mut() {
                StreamBodyAdapter::Stream(s) => Pin::new(s).poll_frame(cx),
                StreamBodyAdapter::Bytes(b) => Pin::new(b).poll_frame(cx),
            }
        }
    }
}
