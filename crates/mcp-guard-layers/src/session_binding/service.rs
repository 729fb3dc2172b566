use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response};
use tower::{Layer, Service};

use crate::{
    future::{HookFuture, OnResponse, ResponseFuture},
    identity::CallerKey,
    rejection::Rejection,
    session_table::SessionTable,
    transport::MCP_SESSION_ID,
};

/// Who owns which session. Cheap to clone; clones share the table.
#[derive(Clone, Debug)]
pub struct SessionOwners {
    table: Arc<SessionTable<CallerKey>>,
}

impl Default for SessionOwners {
    /// Up to 100,000 sessions; entries idle for 24 h make room when full.
    fn default() -> Self {
        SessionOwners::with_capacity(100_000, Duration::from_secs(24 * 3600))
    }
}

impl SessionOwners {
    /// An explicit table size and idle expiry.
    pub fn with_capacity(capacity: usize, idle: Duration) -> Self {
        SessionOwners { table: Arc::new(SessionTable::new(capacity, idle)) }
    }

    /// True when `session` exists and belongs to `caller`.
    pub fn owned_by(&self, session: &str, caller: &CallerKey) -> bool {
        self.table.get(session).is_some_and(|owner| owner == *caller)
    }

    /// Records `caller` as the owner of a new `session`.
    pub fn bind(&self, session: &str, caller: CallerKey) -> bool {
        let bound = self.table.insert(session, caller);
        if !bound {
            tracing::warn!(target: "mcp_guard::sessions", "session_table_full");
        }
        bound
    }

    /// Forgets `session`.
    pub fn forget(&self, session: &str) {
        self.table.remove(session);
    }

    /// Sessions recorded.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when none are recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Binds sessions to their creators.
#[derive(Clone, Debug)]
pub struct SessionBindingLayer {
    owners: SessionOwners,
}

impl SessionBindingLayer {
    /// Records into and checks against `owners`.
    pub fn new(owners: SessionOwners) -> Self {
        SessionBindingLayer { owners }
    }
}

impl<S> Layer<S> for SessionBindingLayer {
    type Service = SessionBinding<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionBinding { inner, owners: self.owners.clone() }
    }
}

/// The service of [`SessionBindingLayer`].
#[derive(Clone, Debug)]
pub struct SessionBinding<S> {
    inner: S,
    owners: SessionOwners,
}

/// What to record once the response is known.
#[derive(Debug)]
pub enum Record {
    /// A request without a session: a session id in the answer is new, and the caller's.
    Creator(SessionOwners, CallerKey),
    /// A DELETE: forget the session if it succeeded.
    Delete(SessionOwners, Box<str>),
    /// Nothing.
    Nothing,
}

impl OnResponse for Record {
    fn on_response<B>(self, response: &mut Response<B>) {
        if !response.status().is_success() {
            return;
        }
        match self {
            Record::Creator(owners, caller) => {
                if let Some(session) = response.headers().get(&MCP_SESSION_ID).and_then(|v| v.to_str().ok()) {
                    owners.bind(session, caller);
                }
            }
            Record::Delete(owners, session) => owners.forget(&session),
            Record::Nothing => {}
        }
    }
}

impl<S, B, ResBody> Service<Request<B>> for SessionBinding<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<HookFuture<S::Future, Record>, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let caller = CallerKey::of(req.extensions());
        let record = match req.headers().get(&MCP_SESSION_ID) {
            None => Record::Creator(self.owners.clone(), caller),
            Some(value) => {
                let owned = value.to_str().ok().filter(|s| self.owners.owned_by(s, &caller));
                match (owned, req.method() == Method::DELETE) {
                    (None, _) => return ResponseFuture::rejected(Rejection::SessionNotFound.into_response()),
                    (Some(session), true) => Record::Delete(self.owners.clone(), session.into()),
                    (Some(_), false) => Record::Nothing,
                }
            }
        };
        ResponseFuture::inner(HookFuture::new(self.inner.call(req), record))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{HeaderValue, StatusCode};
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::identity::{AuthMethod, Principal};

    fn principal(name: &str) -> Principal {
        Principal { subject: name.into(), scopes: Arc::new([]), method: AuthMethod::ApiKey }
    }

    async fn send(owners: &SessionOwners, who: &str, method: Method, session: Option<&str>) -> StatusCode {
        let svc = SessionBindingLayer::new(owners.clone()).layer(service_fn(|req: Request<()>| async move {
            let mut res = Response::new(Bytes::new());
            if !req.headers().contains_key(&MCP_SESSION_ID) {
                res.headers_mut().insert(&MCP_SESSION_ID, HeaderValue::from_static("s-new"));
            }
            Ok::<_, Infallible>(res)
        }));
        let mut req = Request::builder().method(method).uri("/mcp");
        if let Some(s) = session {
            req = req.header(&MCP_SESSION_ID, s);
        }
        let mut req = req.body(()).expect("request");
        req.extensions_mut().insert(principal(who));
        svc.oneshot(req).await.expect("infallible").status()
    }

    #[tokio::test]
    async fn sessions_belong_to_their_creator() {
        let owners = SessionOwners::default();
        assert_eq!(send(&owners, "alice", Method::POST, None).await, StatusCode::OK, "initialize");
        assert_eq!(owners.len(), 1);
        assert_eq!(send(&owners, "alice", Method::POST, Some("s-new")).await, StatusCode::OK);
        assert_eq!(
            send(&owners, "bob", Method::POST, Some("s-new")).await,
            StatusCode::NOT_FOUND,
            "replay by another principal"
        );
        assert_eq!(send(&owners, "bob", Method::DELETE, Some("s-new")).await, StatusCode::NOT_FOUND, "nor delete it");
        assert_eq!(send(&owners, "alice", Method::GET, Some("s-new")).await, StatusCode::OK, "still alice's");
        assert_eq!(send(&owners, "alice", Method::POST, Some("guessed")).await, StatusCode::NOT_FOUND);
        assert_eq!(send(&owners, "alice", Method::DELETE, Some("s-new")).await, StatusCode::OK);
        assert_eq!(send(&owners, "alice", Method::POST, Some("s-new")).await, StatusCode::NOT_FOUND, "deleted");
        assert!(owners.is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let owners = SessionOwners::with_capacity(1, Duration::from_secs(3600));
        assert!(owners.bind("a", CallerKey::Unknown));
        assert!(!owners.bind("b", CallerKey::Unknown));
        assert!(!owners.owned_by("b", &CallerKey::Unknown), "fails closed");
    }
}
