use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Limited;
use tower::{Layer, Service};

use crate::{future::ResponseFuture, rejection::Rejection};

/// Limits request bodies to `limit` bytes.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimitLayer {
    limit: usize,
}

impl BodyLimitLayer {
    /// At most `limit` bytes per request body.
    pub fn new(limit: usize) -> Self {
        BodyLimitLayer { limit }
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyLimit { inner, limit: self.limit }
    }
}

/// The service of [`BodyLimitLayer`].
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit<S> {
    inner: S,
    limit: usize,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BodyLimit<S>
where
    S: Service<Request<Limited<ReqBody>>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        match declared {
            Some(n) if n > self.limit as u64 => ResponseFuture::rejected(Rejection::RequestTooLarge.into_response()),
            _ => {
                let limit = self.limit;
                ResponseFuture::inner(self.inner.call(req.map(|body| Limited::new(body, limit))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::StatusCode;
    use http_body_util::{BodyExt, Full, StreamBody};
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::body_limit::is_limit_error;

    /// Reads the body the way the inspection layer does and reports what happened.
    async fn read<B>(req: Request<Limited<B>>) -> Result<Response<Bytes>, Infallible>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Ok(match req.into_body().collect().await {
            Ok(c) => Response::new(Bytes::from(c.to_bytes().len().to_string())),
            Err(e) if is_limit_error(&*e) => Rejection::RequestTooLarge.into_response(),
            Err(_) => Response::new(Bytes::from_static(b"other error")),
        })
    }

    #[tokio::test]
    async fn declared_lengths_are_checked_up_front() {
        let layer = BodyLimitLayer::new(10);
        let cases = [
            (Some("10"), 10, StatusCode::OK),
            (Some("11"), 11, StatusCode::PAYLOAD_TOO_LARGE),
            (None, 11, StatusCode::PAYLOAD_TOO_LARGE),
            (None, 3, StatusCode::OK),
        ];
        for (declared, actual, status) in cases {
            let mut req = Request::post("/").body(Full::new(Bytes::from(vec![b'x'; actual]))).expect("request");
            if let Some(n) = declared {
                req.headers_mut().insert(header::CONTENT_LENGTH, n.parse().expect("value"));
            }
            let res = layer.layer(service_fn(read)).oneshot(req).await.expect("infallible");
            assert_eq!(res.status(), status, "{declared:?} {actual}");
        }
    }

    #[tokio::test]
    async fn a_stream_is_cut_off_at_the_limit_without_buffering_the_rest() {
        // A chunked body that never ends: the limit must stop reading it.
        let chunks = futures_util::stream::iter(std::iter::repeat_with(|| {
            Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(&[b'x'; 1024])))
        }));
        let req = Request::post("/").body(StreamBody::new(chunks)).expect("request");
        let res = BodyLimitLayer::new(64 * 1024).layer(service_fn(read)).oneshot(req).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(res.extensions().get::<Rejection>(), Some(&Rejection::RequestTooLarge));
    }
}
