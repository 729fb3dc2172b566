//! Scope step-up per JSON-RPC method and per tool.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, Service};

use super::{Challenge, service::missing_scopes};
use crate::{future::ResponseFuture, identity::Principal, jsonrpc::Inspection, rejection::Rejection};

/// Scopes needed beyond the global ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeRequirements {
    /// Per JSON-RPC method, e.g. `("tools/call", ["mcp:tools"])`.
    pub per_method: Vec<(String, Vec<String>)>,
    /// Per tool of `tools/call`, e.g. `("delete_everything", ["mcp:admin"])`.
    pub per_tool: Vec<(String, Vec<String>)>,
}

impl ScopeRequirements {
    fn needed(&self, inspection: &Inspection) -> Vec<String> {
        let mut needed: Vec<String> = Vec::new();
        for message in &inspection.messages {
            let by_method = self.per_method.iter().filter(|(m, _)| Some(m.as_str()) == message.method.as_deref());
            let by_tool = self.per_tool.iter().filter(|(t, _)| Some(t.as_str()) == message.tool.as_deref());
            for (_, scopes) in by_method.chain(by_tool) {
                for s in scopes {
                    if !needed.contains(s) {
                        needed.push(s.clone());
                    }
                }
            }
        }
        needed
    }
}

/// Refuses requests whose principal lacks a method's or tool's scopes.
#[derive(Clone, Debug)]
pub struct ScopeLayer {
    requirements: Arc<ScopeRequirements>,
    challenge: Challenge,
}

impl ScopeLayer {
    /// Enforces `requirements`; refusals carry `challenge`.
    pub fn new(requirements: ScopeRequirements, challenge: Challenge) -> Self {
        ScopeLayer { requirements: Arc::new(requirements), challenge }
    }
}

impl<S> Layer<S> for ScopeLayer {
    type Service = ScopeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ScopeService { inner, layer: self.clone() }
    }
}

/// The service of [`ScopeLayer`].
#[derive(Clone, Debug)]
pub struct ScopeService<S> {
    inner: S,
    layer: ScopeLayer,
}

impl<S, B, ResBody> Service<Request<B>> for ScopeService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let verdict = match (req.extensions().get::<Principal>(), req.extensions().get::<Inspection>()) {
            (Some(principal), Some(inspection)) => {
                missing_scopes(principal, &self.layer.requirements.needed(inspection)).map(|n| (n, principal.clone()))
            }
            _ => None,
        };
        match verdict {
            None => ResponseFuture::inner(self.inner.call(req)),
            Some((needed, principal)) => {
                let mut response: Response<ResBody> =
                    self.layer.challenge.respond(Rejection::InsufficientScope, Some(&needed));
                response.extensions_mut().insert(principal);
                ResponseFuture::rejected(response)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{StatusCode, header};
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::{
        identity::AuthMethod,
        jsonrpc::{Limits, inspect},
    };

    #[tokio::test]
    async fn step_up_lists_every_needed_scope() {
        let requirements = ScopeRequirements {
            per_method: vec![("tools/call".into(), vec!["mcp:tools".into()])],
            per_tool: vec![("wipe".into(), vec!["mcp:admin".into()])],
        };
        let layer = ScopeLayer::new(
            requirements,
            Challenge::new("http://x/.well-known/oauth-protected-resource", ["mcp:tools"]),
        );
        let call =
            |tool: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}"}}}}"#);
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_owned();
        let cases = [
            (list.clone(), &["mcp:read"][..], StatusCode::OK, None),
            (call("echo"), &["mcp:tools"][..], StatusCode::OK, None),
            (call("echo"), &["mcp:read"][..], StatusCode::FORBIDDEN, Some("mcp:read mcp:tools")),
            (call("wipe"), &["mcp:tools"][..], StatusCode::FORBIDDEN, Some("mcp:tools mcp:admin")),
            (call("wipe"), &["mcp:tools", "mcp:admin"][..], StatusCode::OK, None),
        ];
        for (body, held, status, scope) in cases {
            let svc =
                layer.layer(service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(Bytes::new())) }));
            let mut req = Request::post("/mcp").body(()).expect("request");
            req.extensions_mut().insert(inspect(body.as_bytes(), Limits::default()).expect("valid"));
            let scopes: Arc<[String]> = held.iter().map(|s| (*s).to_owned()).collect();
            req.extensions_mut().insert(Principal { subject: "p".into(), scopes, method: AuthMethod::Bearer });
            let res = svc.oneshot(req).await.expect("infallible");
            assert_eq!(res.status(), status, "{body} {held:?}");
            if let Some(scope) = scope {
                let www = res.headers()[header::WWW_AUTHENTICATE].to_str().expect("ascii");
                assert!(www.contains(&format!("scope=\"{scope}\"")), "{www}");
            }
        }
    }
}
