//! [`AccessPolicyLayer`]: refuses what a caller may not use, and filters
//! what it may not see out of list answers.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Method, Request, Response, header};
use pin_project_lite::pin_project;
use serde_json::{Value, json};
use tower::{Layer, Service};

use super::{
    answer::{Refusing, respond},
    body::PolicyBody,
    catalog::{PinAction, ToolCatalog},
    filter::{ListFilter, ListKind, Targets},
    rules::{AccessPolicy, Kind},
};
use crate::{
    identity::Principal,
    jsonrpc::{Inspection, MessageInfo, MessageKind},
    rejection::Refusal,
    transport::is_event_stream,
};

/// Applies an [`AccessPolicy`] and tool pins. Place it after JSON-RPC
/// inspection and authentication.
#[derive(Clone, Debug)]
pub struct AccessPolicyLayer {
    policy: Option<Arc<AccessPolicy>>,
    catalog: Option<ToolCatalog>,
}

impl AccessPolicyLayer {
    /// `policy` decides access (`None`: everything allowed); `catalog`
    /// checks listed tools against their pins (`None`: no pinning).
    pub fn new(policy: Option<AccessPolicy>, catalog: Option<ToolCatalog>) -> Self {
        AccessPolicyLayer { policy: policy.map(Arc::new), catalog }
    }
}

impl<S> Layer<S> for AccessPolicyLayer {
    type Service = AccessPolicyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessPolicyService { inner, layer: self.clone() }
    }
}

/// The service of [`AccessPolicyLayer`].
#[derive(Clone, Debug)]
pub struct AccessPolicyService<S> {
    inner: S,
    layer: AccessPolicyLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AccessPolicyService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<PolicyBody<ResBody>>;
    type Error = S::Error;
    type Future = PolicyFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let layer = &self.layer;
        let denies = layer.policy.as_ref().is_some_and(|p| p.can_deny());
        // Whether anything can be hidden from a list, not just observed.
        let hides = denies || layer.catalog.as_ref().is_some_and(|c| c.action() == PinAction::Block);
        if !denies && layer.catalog.is_none() {
            return PolicyFuture::Inner { future: self.inner.call(req), filter: None };
        }
        let principal = req.extensions().get::<Principal>();
        let targets = match (req.method(), req.extensions().get::<Inspection>()) {
            (&Method::POST, Some(inspection)) => {
                if let Some(policy) = layer.policy.as_deref().filter(|_| denies) {
                    let refusals = refusals(policy, principal, inspection);
                    if !refusals.is_empty() {
                        return PolicyFuture::Refused { response: Some(respond(inspection, refusals)) };
                    }
                }
                let ids: HashMap<_, _> = inspection
                    .messages
                    .iter()
                    .filter(|m| m.kind == MessageKind::Request)
                    .filter_map(|m| Some((m.id.clone()?, ListKind::of_method(m.method.as_deref()?)?)))
                    .collect();
                (!ids.is_empty()).then_some(Targets::Ids(ids))
            }
            // A GET stream can replay answers to requests this gateway did
            // not see (a resumed stream): filter by shape, when anything is
            // to be hidden at all.
            (&Method::GET, _) if hides => Some(Targets::ByShape),
            _ => None,
        };
        let filter = targets.map(|targets| ListFilter {
            policy: layer.policy.clone().filter(|_| denies),
            catalog: layer.catalog.clone(),
            principal: principal.cloned(),
            targets,
        });
        PolicyFuture::Inner { future: self.inner.call(req), filter }
    }
}

/// Every request in the POST that names something the caller may not use.
fn refusals(policy: &AccessPolicy, principal: Option<&Principal>, inspection: &Inspection) -> Vec<Refusing> {
    let mut out = Vec::new();
    for message in inspection.messages.iter().filter(|m| m.kind == MessageKind::Request) {
        let Some(id) = &message.id else { continue };
        let denied = match message.method.as_deref() {
            Some("tools/call") => message.tool.as_deref().map(|name| (Kind::Tool, name.to_owned())),
            Some("prompts/get") => message.prompt.as_deref().map(|name| (Kind::Prompt, name.to_owned())),
            Some("resources/read" | "resources/subscribe") => {
                message.uri.as_deref().map(|uri| (Kind::Resource, uri.to_owned()))
            }
            Some("completion/complete") => completion_target(inspection, message),
            _ => None,
        };
        let Some((kind, name)) = denied.filter(|(kind, name)| !policy.allows(principal, *kind, name)) else {
            continue;
        };
        // The specification's answers for a name that does not exist.
        let refusing = match kind {
            Kind::Tool => Refusing::new(id.clone(), Refusal::ToolDenied, format!("Unknown tool: {name}")),
            Kind::Prompt => Refusing::new(id.clone(), Refusal::PromptDenied, format!("Unknown prompt: {name}")),
            Kind::Resource => Refusing {
                data: Some(json!({ "uri": name })),
                ..Refusing::new(id.clone(), Refusal::ResourceDenied, "Resource not found".to_owned())
            },
        };
        out.push(refusing);
    }
    out
}

/// The prompt or resource template a `completion/complete` completes an
/// argument of: completing a denied one's arguments would reveal it. A
/// reference of either type that is not a plain string is refused (as the
/// empty name) rather than forwarded unchecked: the upstream might read it
/// differently.
fn completion_target(inspection: &Inspection, message: &MessageInfo) -> Option<(Kind, String)> {
    let text = inspection.text(&message.span)?;
    let message: Value = serde_json::from_str(text).ok()?;
    let reference = message.get("params")?.get("ref")?;
    let (kind, field) = match reference.get("type").and_then(Value::as_str)? {
        "ref/prompt" => (Kind::Prompt, "name"),
        "ref/resource" => (Kind::Resource, "uri"),
        _ => return None,
    };
    Some((kind, reference.get(field).and_then(Value::as_str).unwrap_or_default().to_owned()))
}

pin_project! {
    /// Response future of [`AccessPolicyService`].
    #[project = FutureProj]
    pub enum PolicyFuture<F, B> {
        /// Waiting on the inner service; `filter` is set when the answer may
        /// carry list results to filter.
        Inner { #[pin] future: F, filter: Option<ListFilter> },
        /// Refused and answered by the gateway.
        Refused { response: Option<Response<B>> },
    }
}

impl<F, B> std::fmt::Debug for PolicyFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PolicyFuture::Inner { .. } => "PolicyFuture::Inner",
            PolicyFuture::Refused { .. } => "PolicyFuture::Refused",
        })
    }
}

impl<F, B, E> Future for PolicyFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<PolicyBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FutureProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response.map(PolicyBody::plain))),
                None => Poll::Pending,
            },
            FutureProj::Inner { future, filter } => {
                let mut response = std::task::ready!(future.poll(cx))?;
                let Some(filter) = filter.take().filter(|_| response.status().is_success()) else {
                    return Poll::Ready(Ok(response.map(PolicyBody::plain)));
                };
                let sse = is_event_stream(response.headers());
                let json = !sse
                    && response
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
                if sse || json {
                    // The filtered body's length differs from the upstream's.
                    response.headers_mut().remove(header::CONTENT_LENGTH);
                }
                Poll::Ready(Ok(response.map(|inner| match (sse, json) {
                    (true, _) => PolicyBody::sse(inner, filter),
                    (_, true) if !matches!(filter.targets, Targets::ByShape) => PolicyBody::json(inner, filter),
                    _ => PolicyBody::plain(inner),
                })))
            }
        }
    }
}
