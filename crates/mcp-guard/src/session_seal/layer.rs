//! The tower layer: sealed tokens outside, upstream session ids inside.
//!
//! In place of the in-memory session binding (pipeline step 9), right after
//! authentication so it knows the caller, and before everything that looks
//! sessions up: every later layer (protocol version, negotiation, audit,
//! policy) and the upstream see the upstream's own session id, and the
//! answer is sealed only on its way out, after negotiation learned from it.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use mcp_guard_layers::{Rejection, transport::MCP_SESSION_ID};
use tower::{Layer, Service};

use super::{
    EndedId, EndedSessions, Owner, Sealer, SessionClaims,
    seal::{OpenError, unix_now},
};

/// Replaces the upstream's session ids with sealed tokens, and back.
///
/// - A request naming a session must carry a token this gateway's keys open,
///   unexpired, for this upstream target and sealed for the request's
///   caller, and its session must not have been ended; otherwise `404`
///   `session_not_found`, as for an unknown session, without calling the
///   inner service. Else the header is replaced with the upstream's id and
///   the [`SessionClaims`] go into the request extensions.
/// - An answer carrying a new `Mcp-Session-Id` (initialize) has it replaced
///   by a token sealed for the caller; an answer echoing the session's id
///   gets the caller's own token back. A failed answer never carries the
///   upstream's id out.
/// - A successful DELETE records the session as ended until its token
///   expires ([`EndedSessions`]).
#[derive(Clone, Debug)]
pub struct SealedSessionLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    sealer: Sealer,
    ended: Arc<dyn EndedSessions>,
}

impl SealedSessionLayer {
    /// Seals with `sealer`, records DELETEs in `ended`.
    pub fn new(sealer: Sealer, ended: Arc<dyn EndedSessions>) -> Self {
        SealedSessionLayer { shared: Arc::new(Shared { sealer, ended }) }
    }
}

impl<S> Layer<S> for SealedSessionLayer {
    type Service = SealedSessions<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SealedSessions { inner, shared: Arc::clone(&self.shared) }
    }
}

/// The service of [`SealedSessionLayer`].
#[derive(Clone, Debug)]
pub struct SealedSessions<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Response future of [`SealedSessions`].
pub type SealedFuture<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

/// The session a request named, once its token opened.
struct Named {
    claims: SessionClaims,
    token: HeaderValue,
    id: EndedId,
}

impl<S, B, ResBody> Service<Request<B>> for SealedSessions<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = SealedFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let owner = Owner::of(req.extensions());
        let named = match open(&self.shared.sealer, &mut req, &owner) {
            Ok(named) => named,
            Err(why) => {
                metrics::counter!("mcp_guard_session_tokens_refused_total", "reason" => why.reason()).increment(1);
                tracing::debug!(target: "mcp_guard::sessions", reason = why.reason(), "session_token_refused");
                return Box::pin(std::future::ready(Ok(Rejection::SessionNotFound.into_response())));
            }
        };
        // The clone that was made ready is the one that takes the request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        let delete = req.method() == Method::DELETE;
        Box::pin(async move {
            if let Some(named) = &named {
                match shared.ended.is_ended(named.id).await {
                    Ok(false) => {}
                    Ok(true) => {
                        metrics::counter!("mcp_guard_session_tokens_refused_total", "reason" => "ended").increment(1);
                        tracing::debug!(target: "mcp_guard::sessions", reason = "ended", "session_token_refused");
                        return Ok(Rejection::SessionNotFound.into_response());
                    }
                    Err(e) => store_error("check", &e),
                }
            }
            let mut response = inner.call(req).await?;
            if let Err(rejection) = answer(&shared.sealer, &mut response, named.as_ref(), owner) {
                return Ok(rejection.into_response());
            }
            if let (Some(named), true) = (named, delete && response.status().is_success()) {
                let left = named.claims.expires.saturating_sub(unix_now()).max(1);
                if let Err(e) = shared.ended.end(named.id, Duration::from_secs(left)).await {
                    store_error("end", &e);
                }
            }
            Ok(response)
        })
    }
}

/// Every error is counted; at most one a minute is logged, so an outage of
/// the store (every request asks it) does not flood the log.
fn store_error(op: &'static str, error: &super::StoreError) {
    static LAST_WARNING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    metrics::counter!("mcp_guard_session_store_errors_total", "op" => op).increment(1);
    let now = unix_now();
    let last = LAST_WARNING.load(std::sync::atomic::Ordering::Relaxed);
    if now.saturating_sub(last) >= 60
        && LAST_WARNING
            .compare_exchange(last, now, std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(target: "mcp_guard::sessions", op, error = %error, "session_store_error");
    }
}

/// Opens the request's token, if any, and puts the upstream's id in its place.
fn open<B>(sealer: &Sealer, req: &mut Request<B>, owner: &Owner) -> Result<Option<Named>, OpenError> {
    let mut values = req.headers().get_all(&MCP_SESSION_ID).iter();
    let token = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(token), None) => token.clone(),
        // Two ids: which one each later layer reads would be a guess.
        (Some(_), Some(_)) => return Err(OpenError::Malformed),
    };
    let claims = sealer.open_for(token.as_bytes(), owner)?;
    // Visible ASCII, checked when the claims were decoded.
    let upstream = HeaderValue::from_str(&claims.upstream_session).map_err(|_| OpenError::Malformed)?;
    req.headers_mut().insert(&MCP_SESSION_ID, upstream);
    req.extensions_mut().insert(claims.clone());
    let id = EndedId::of(&claims);
    Ok(Some(Named { claims, token, id }))
}

/// Rewrites the answer's `Mcp-Session-Id`; `Err` when a new session cannot be sealed.
fn answer<B>(
    sealer: &Sealer,
    response: &mut Response<B>,
    named: Option<&Named>,
    owner: Owner,
) -> Result<(), Rejection> {
    let Some(value) = response.headers().get(&MCP_SESSION_ID) else { return Ok(()) };
    if let Some(named) = named
        && value.as_bytes() == named.claims.upstream_session.as_bytes()
    {
        response.headers_mut().insert(&MCP_SESSION_ID, named.token.clone());
        return Ok(());
    }
    if !response.status().is_success() {
        // No session opened; the upstream's id must not leave in the clear.
        response.headers_mut().remove(&MCP_SESSION_ID);
        return Ok(());
    }
    let sealed = value
        .to_str()
        .map_err(|_| super::SealError::Claims(super::EncodeError::SessionId))
        .and_then(|id| sealer.seal(&sealer.claims(id, owner)))
        .and_then(|token| {
            HeaderValue::try_from(token).map_err(|_| super::SealError::Claims(super::EncodeError::SessionId))
        });
    match sealed {
        Ok(token) => {
            response.headers_mut().insert(&MCP_SESSION_ID, token);
            Ok(())
        }
        Err(e) => {
            // The session exists upstream but cannot be handed out: it will idle out there.
            tracing::error!(target: "mcp_guard::sessions", error = %e, "session_seal_failed");
            Err(Rejection::UpstreamError)
        }
    }
}
