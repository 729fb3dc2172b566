//! The request path of the MCP endpoint, built in one place.
//!
//! Order, outermost first, and why:
//!
//! 1. **Request id and timing** (`observe`): first in, last out, so every
//!    answer, rejections included, is timed, logged and counted.
//! 2. **Security headers** (issue 3): on every response, errors included.
//! 3. **Host/Origin**: a DNS-rebinding page is refused before anything
//!    else looks at the request, let alone reads its body.
//! 4. **CORS preflight** (issue 3): answered only for origins step 3 allowed.
//! 5. **Body limit** (issue 3): before anything parses the body.
//! 6. **Authentication** (issue 4): identifies the principal.
//! 7. **MCP-Protocol-Version** (issue 3).
//! 8. **JSON-RPC inspection** (issue 3): parses the body once for everyone after.
//! 9. **Authorization** (issue 5): needs principal and method.
//! 10. **Rate limit** (issue 3): keyed by principal, so after authentication;
//!     last, so refused requests do not spend quota.
//! 11. **Transport rules and the upstream** ([`Endpoint`]).
//!
//! Cheap, request-independent checks come first so hostile traffic costs as
//! little as possible; everything that needs the principal or the parsed
//! body comes after what produces them.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Method, Request, Response};
use mcp_guard_layers::{
    Rejection,
    host_origin::{HostOriginLayer, HostOriginPolicy},
    transport,
};
use tower::{Layer, Service};

use crate::{body::BoxBody, upstream::Upstream};

/// The MCP endpoint's service: the layers above around an [`Endpoint`].
pub(crate) fn build<U: Upstream>(
    host_origin: HostOriginPolicy,
    upstream: Arc<U>,
) -> impl Service<Request<BoxBody>, Response = Response<BoxBody>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    HostOriginLayer::new(host_origin).layer(Endpoint { upstream })
}

/// Applies the Streamable HTTP method and header rules, then hands the
/// request to the upstream.
#[derive(Debug)]
pub(crate) struct Endpoint<U> {
    upstream: Arc<U>,
}

impl<U> Clone for Endpoint<U> {
    fn clone(&self) -> Self {
        Endpoint { upstream: Arc::clone(&self.upstream) }
    }
}

impl<U: Upstream> Service<Request<BoxBody>> for Endpoint<U> {
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<BoxBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<BoxBody>) -> Self::Future {
        let upstream = Arc::clone(&self.upstream);
        Box::pin(async move {
            let checked = match *req.method() {
                Method::POST => transport::check_post(req.headers()),
                Method::GET => transport::check_get(req.headers()),
                Method::DELETE => Ok(()),
                _ => Err(Rejection::MethodNotAllowed),
            };
            Ok(match checked {
                Ok(()) => upstream.handle(req).await,
                Err(rejection) => rejection.into_response(),
            })
        })
    }
}
