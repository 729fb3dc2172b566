//! [`ToolCallLayer`]: a `tools/call` reaches the upstream only for a tool
//! that is not blocked by its pin, with arguments inside the tool's size
//! limit that match its `inputSchema`.

use std::task::{Context, Poll};

use http::{Method, Request, Response};
use serde_json::{Value, json};
use tower::{Layer, Service};

use super::{
    answer::{Refusing, respond},
    catalog::{ToolCatalog, Validation},
    schema::Violation,
};
use crate::{
    future::ResponseFuture,
    jsonrpc::{Inspection, MessageInfo, MessageKind},
    rejection::Refusal,
};

/// Checks tool calls against a [`ToolCatalog`]. Place it after the rate
/// limiter: validation is the most expensive check, so only calls within
/// their quota pay for it.
#[derive(Clone, Debug)]
pub struct ToolCallLayer {
    catalog: ToolCatalog,
}

impl ToolCallLayer {
    /// Checks calls against `catalog`.
    pub fn new(catalog: ToolCatalog) -> Self {
        ToolCallLayer { catalog }
    }
}

impl<S> Layer<S> for ToolCallLayer {
    type Service = ToolCallService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ToolCallService { inner, catalog: self.catalog.clone() }
    }
}

/// The service of [`ToolCallLayer`].
#[derive(Clone, Debug)]
pub struct ToolCallService<S> {
    inner: S,
    catalog: ToolCatalog,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ToolCallService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<bytes::Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if req.method() == Method::POST
            && let Some(inspection) = req.extensions().get::<Inspection>()
        {
            let refusals: Vec<Refusing> = inspection
                .messages
                .iter()
                .filter(|m| m.kind == MessageKind::Request && m.method.as_deref() == Some("tools/call"))
                .filter_map(|m| self.check(inspection, m))
                .collect();
            if !refusals.is_empty() {
                return ResponseFuture::rejected(respond(inspection, refusals));
            }
        }
        ResponseFuture::inner(self.inner.call(req))
    }
}

impl<S> ToolCallService<S> {
    fn check(&self, inspection: &Inspection, message: &MessageInfo) -> Option<Refusing> {
        let id = message.id.clone()?;
        let tool = message.tool.as_deref()?;
        let schema = match self.catalog.check_call(tool) {
            Ok(schema) => schema,
            Err(blocked) => return Some(Refusing::new(id, blocked.refusal, blocked.message)),
        };
        let limits = self.catalog.limits(tool);
        let arguments = message.arguments.as_ref().and_then(|span| inspection.text(span));
        let size = arguments.map_or(0, str::len);
        if let Some(max) = limits.max_argument_bytes
            && size > max
        {
            let text = format!("Invalid params: arguments for tool {tool} are {size} bytes; the limit is {max}");
            return Some(Refusing::new(id, Refusal::ArgumentsTooLarge, text));
        }
        let schema = schema.filter(|_| limits.validation != Validation::Off)?;
        // Absent arguments are checked as the empty object a server sees.
        let value: Value = match arguments {
            Some(text) => serde_json::from_str(text).ok()?,
            None => Value::Object(serde_json::Map::new()),
        };
        let violations = schema.violations(&value);
        if violations.is_empty() {
            return None;
        }
        if limits.validation == Validation::Log {
            let pointers: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
            tracing::warn!(event = "invalid_arguments", tool, ?pointers, "forwarded (validation = log)");
            return None;
        }
        Some(Refusing {
            data: Some(json!({ "violations": violations.iter().map(violation_json).collect::<Vec<_>>() })),
            ..Refusing::new(id, Refusal::InvalidArguments, invalid_message(tool, &violations))
        })
    }
}

fn invalid_message(tool: &str, violations: &[Violation]) -> String {
    let listed: Vec<String> = violations
        .iter()
        .map(|v| format!("{}: {}", if v.pointer.is_empty() { "/" } else { &v.pointer }, v.message))
        .collect();
    format!("Invalid params: arguments for tool {tool} do not match its inputSchema: {}", listed.join("; "))
}

fn violation_json(v: &Violation) -> Value {
    json!({ "pointer": v.pointer, "message": v.message })
}
