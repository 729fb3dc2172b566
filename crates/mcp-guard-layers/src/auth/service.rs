use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response, header};
use tower::{Layer, Service};

use super::Challenge;
use crate::{identity::Principal, rejection::Rejection};

/// Turns a bearer credential into a principal. The seam between the layer
/// and whatever verifies credentials (hashed API keys, a JWT verifier).
pub trait Authenticate: Send + Sync + 'static {
    /// Who `credential` belongs to, or why it is refused.
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Principal, AuthFailure>> + Send + 'a>>;
}

/// Why a credential was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthFailure {
    /// Stable reason for logs (`token_expired`, `unknown_key`, …).
    pub reason: &'static str,
    /// True when the credential could not be checked at all (503), rather
    /// than checked and refused (401).
    pub unavailable: bool,
}

impl AuthFailure {
    /// Checked and refused.
    pub const fn invalid(reason: &'static str) -> Self {
        AuthFailure { reason, unavailable: false }
    }

    /// Could not be checked.
    pub const fn unavailable(reason: &'static str) -> Self {
        AuthFailure { reason, unavailable: true }
    }
}

/// Requires a valid bearer credential on every request.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<dyn Authenticate>,
    challenge: Challenge,
    required: Arc<[String]>,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer").field("required", &self.required).finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// Authenticates with `auth`; refusals carry `challenge`.
    pub fn new(auth: Arc<dyn Authenticate>, challenge: Challenge) -> Self {
        AuthLayer { auth, challenge, required: Arc::new([]) }
    }

    /// Scopes every request needs (`403 insufficient_scope` otherwise).
    pub fn require<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required = scopes.into_iter().map(Into::into).collect();
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, layer: self.clone() }
    }
}

/// The service of [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

/// The bearer credential of a request: exactly one `Authorization` header
/// with the `Bearer` scheme (any case) and a non-empty token.
fn bearer(req: &Request<impl Sized>) -> Result<Option<http::HeaderValue>, ()> {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return if req.headers().contains_key(header::AUTHORIZATION) { Err(()) } else { Ok(None) };
    };
    let bytes = value.as_bytes();
    match bytes.split_at_checked(7) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case(b"bearer ") && token.iter().any(|b| *b != b' ') => {
            Ok(Some(value.clone()))
        }
        _ => Err(()),
    }
}

impl<S, B, ResBody> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: Send + 'static,
    ResBody: From<Bytes> + Send,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let credential = match bearer(&req) {
                Ok(Some(value)) => value,
                Ok(None) => return Ok(layer.challenge.respond(Rejection::Unauthorized, None)),
                Err(()) => return Ok(layer.challenge.respond(Rejection::InvalidToken, None)),
            };
            // `bearer` checked the prefix; a token that is not visible ASCII is invalid.
            let Ok(token) = credential.to_str().map(|v| v[7..].trim()) else {
                return Ok(layer.challenge.respond(Rejection::InvalidToken, None));
            };
            let principal = match layer.auth.authenticate(token).await {
                Ok(principal) => principal,
                Err(failure) if failure.unavailable => {
                    tracing::warn!(target: "mcp_guard::auth", reason = failure.reason, "auth_unavailable");
                    return Ok(Rejection::AuthUnavailable.into_response());
                }
                Err(failure) => {
                    tracing::debug!(target: "mcp_guard::auth", reason = failure.reason, "credential_refused");
                    let mut response: Response<ResBody> = layer.challenge.respond(Rejection::InvalidToken, None);
                    response.extensions_mut().insert(failure);
                    return Ok(response);
                }
            };
            if let Some(needed) = missing_scopes(&principal, &layer.required) {
                let mut response: Response<ResBody> =
                    layer.challenge.respond(Rejection::InsufficientScope, Some(&needed));
                response.extensions_mut().insert(principal);
                return Ok(response);
            }
            req.extensions_mut().insert(principal.clone());
            let mut response = inner.call(req).await?;
            response.extensions_mut().insert(principal);
            Ok(response)
        })
    }
}

/// When `principal` lacks some of `required`: every scope the request needs,
/// held ones first, for a single step-up request.
pub(super) fn missing_scopes(principal: &Principal, required: &[String]) -> Option<Vec<String>> {
    if required.iter().all(|r| principal.scopes.contains(r)) {
        return None;
    }
    let mut needed: Vec<String> = principal.scopes.iter().cloned().collect();
    for r in required {
        if !needed.contains(r) {
            needed.push(r.clone());
        }
    }
    Some(needed)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::StatusCode;
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::identity::AuthMethod;

    struct Keys;

    impl Authenticate for Keys {
        fn authenticate<'a>(
            &'a self,
            credential: &'a str,
        ) -> Pin<Box<dyn Future<Output = Result<Principal, AuthFailure>> + Send + 'a>> {
            Box::pin(async move {
                let scopes: Arc<[String]> = match credential {
                    "reader" => Arc::new(["mcp:read".to_owned()]),
                    "writer" => Arc::new(["mcp:read".to_owned(), "mcp:tools".to_owned()]),
                    "down" => return Err(AuthFailure::unavailable("jwks_unreachable")),
                    _ => return Err(AuthFailure::invalid("unknown_key")),
                };
                Ok(Principal { subject: credential.into(), scopes, method: AuthMethod::Bearer })
            })
        }
    }

    /// Authorization headers, expected status, challenge fragment, principal served.
    type Case = (&'static [&'static str], StatusCode, Option<&'static str>, Option<&'static str>);

    #[tokio::test]
    async fn table() {
        let challenge = Challenge::new("http://127.0.0.1:8001/.well-known/oauth-protected-resource/mcp", ["mcp:tools"]);
        let layer = AuthLayer::new(Arc::new(Keys), challenge).require(["mcp:tools"]);
        let cases: [Case; 10] = [
            (&[], StatusCode::UNAUTHORIZED, Some("Bearer resource_metadata="), None),
            (&["Bearer writer"], StatusCode::OK, None, Some("writer")),
            (&["bearer writer"], StatusCode::OK, None, Some("writer")),
            (&["Bearer nobody"], StatusCode::UNAUTHORIZED, Some("Bearer error=\"invalid_token\""), None),
            (&["Basic d3JpdGVyOg=="], StatusCode::UNAUTHORIZED, Some("error=\"invalid_token\""), None),
            (&["Bearer "], StatusCode::UNAUTHORIZED, Some("error=\"invalid_token\""), None),
            (&["Bearer writer", "Bearer writer"], StatusCode::UNAUTHORIZED, Some("error=\"invalid_token\""), None),
            (&["Bearer reader"], StatusCode::FORBIDDEN, Some("scope=\"mcp:read mcp:tools\""), None),
            (&["Bearer down"], StatusCode::SERVICE_UNAVAILABLE, None, None),
            (&["Bearerwriter"], StatusCode::UNAUTHORIZED, Some("error=\"invalid_token\""), None),
        ];
        for (headers, status, challenge, subject) in cases {
            let svc = layer.layer(service_fn(|req: Request<()>| async move {
                let who = req.extensions().get::<Principal>().map(|p| p.subject.to_string()).unwrap_or_default();
                Ok::<_, Infallible>(Response::new(Bytes::from(who)))
            }));
            let mut req = Request::post("/mcp");
            for h in headers {
                req = req.header(header::AUTHORIZATION, *h);
            }
            let res = svc.oneshot(req.body(()).expect("request")).await.expect("infallible");
            assert_eq!(res.status(), status, "{headers:?}");
            let www = res.headers().get(header::WWW_AUTHENTICATE).map(|v| v.to_str().expect("ascii").to_owned());
            match challenge {
                Some(c) => assert!(www.as_deref().is_some_and(|w| w.contains(c)), "{headers:?}: {www:?}"),
                None => assert!(www.is_none(), "{headers:?}: {www:?}"),
            }
            if let Some(subject) = subject {
                assert_eq!(res.body(), subject.as_bytes());
                assert_eq!(res.extensions().get::<Principal>().map(|p| &*p.subject), Some(subject), "for the log line");
            }
        }
    }
}
