//! The response future shared by every guard layer: either the inner
//! service's future, or a rejection decided before the inner service ran.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::Response;
use pin_project_lite::pin_project;

pin_project! {
    /// Response future of the guard layers.
    #[project = Proj]
    #[derive(Debug)]
    pub enum ResponseFuture<F, B> {
        /// The request passed; waiting on the inner service.
        Inner { #[pin] future: F },
        /// The request was refused; the response is ready.
        Rejected { response: Option<Response<B>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn inner(future: F) -> Self {
        ResponseFuture::Inner { future }
    }

    pub(crate) fn rejected(response: Response<B>) -> Self {
        ResponseFuture::Rejected { response: Some(response) }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Proj::Inner { future } => future.poll(cx),
            Proj::Rejected { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after completion: a caller bug, but never a panic
                // on the request path.
                None => Poll::Pending,
            },
        }
    }
}

/// Something done to a response once the inner service produced it.
pub trait OnResponse {
    /// Edits the response in place.
    fn on_response<B>(self, response: &mut Response<B>);
}

pin_project! {
    /// Runs an [`OnResponse`] hook on the inner service's response.
    #[derive(Debug)]
    pub struct HookFuture<F, H> {
        #[pin]
        inner: F,
        hook: Option<H>,
    }
}

impl<F, H> HookFuture<F, H> {
    /// Runs `hook` on the response `inner` produces.
    pub fn new(inner: F, hook: H) -> Self {
        HookFuture { inner, hook: Some(hook) }
    }
}

impl<F, H, B, E> Future for HookFuture<F, H>
where
    F: Future<Output = Result<Response<B>, E>>,
    H: OnResponse,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), Some(hook)) = (&mut result, this.hook.take()) {
            hook.on_response(response);
        }
        Poll::Ready(result)
    }
}
