//! The audit log: one structured record per MCP request that reached a
//! decision, and the per-tool call metrics.
//!
//! [`AuditLayer`] sits in the MCP endpoint pipeline right after JSON-RPC
//! inspection, so it sees each request's [`Inspection`] and [`Principal`]
//! and, on the way back, every later decision: a policy refusal
//! ([`Refused`](mcp_guard_layers::policy::Refused), per request id), a
//! [`Rejection`](mcp_guard_layers::Rejection) of the whole POST, or the
//! upstream's answer. Each JSON-RPC *request* of an inspected POST gets one
//! JSON line (a batch gives several; notifications and client responses
//! none), written when the answer's body ends or is dropped, so the latency
//! of an SSE answer runs to the end of its stream:
//!
//! ```json
//! {"time":"2026-11-21T07:31:53.123Z","principal":"alice","client_ip":"127.0.0.1","session":"3f9a0c1b2d4e",
//!  "method":"tools/call","id":7,"name":"search","decision":"deny","reason":"tool_denied","status":200,
//!  "upstream_error":false,"latency_ms":0.412}
//! ```
//!
//! - `time` is when the request reached the layer; `latency_ms` runs from
//!   then to the end of the answer.
//! - `session` is the first 12 hex digits of the SHA-256 of `Mcp-Session-Id`,
//!   never the id itself (it is a bearer credential for the session).
//! - `upstream_error` is true when the gateway let the request through and
//!   the upstream failed it: the gateway's 502/504, a 5xx of the upstream's
//!   own, or an answer stream that broke off.
//! - `reason` is `null` when allowed, except after the gateway's 502/504:
//!   then it says how the upstream failed (`upstream_timeout`, …).
//! - `status` is `null` when no answer was produced (the client went away).
//! - `arguments` and `result` (or `error`) appear only for tools configured
//!   with `arguments = true` / `results = true`, with the configured keys
//!   redacted at any depth; over 64 KiB, `arguments_truncated` /
//!   `result_truncated` is set instead.
//!
//! Records go to a file (size-based rotation) or stdout through one writer
//! thread (see `writer.rs`); a request never waits on disk. Whatever the
//! output, `tools/call` requests are counted in
//! `mcp_tool_calls_total{tool,decision}` and timed in
//! `mcp_tool_call_duration_seconds{tool}`; `tool` is the name only when the
//! [`ToolCatalog`] knows it (pinned or listed), else `unknown`, so a client
//! inventing names cannot create series without bound.

mod body;
mod record;
mod writer;

#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    io,
    path::PathBuf,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime},
};

pub use body::AuditBody;
use http::{Request, Response};
use mcp_guard_layers::{
    identity::{ClientIp, Principal},
    jsonrpc::{Inspection, MessageKind},
    policy::catalog::ToolCatalog,
    transport::MCP_SESSION_ID,
};
use pin_project_lite::pin_project;
use record::{Entry, Outcome, Pending, logged, short_session};
use tower::{Layer, Service};
use writer::{Target, Writer};

use crate::config::AuditConfig;

/// Where audit records are written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AuditOutput {
    /// Nowhere (the default); only the tool-call metrics are kept.
    #[default]
    Off,
    /// Standard output, one JSON line per record.
    Stdout,
    /// A file, rotated by size.
    File(PathBuf),
}

/// What is logged of one tool's calls beyond the metadata. Both default to
/// false: arguments and results can hold personal data and secrets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ToolAudit {
    /// Log the call's `arguments` (redacted).
    pub arguments: bool,
    /// Log the call's `result` or `error` (redacted).
    pub results: bool,
}

/// Audits the requests of the wrapped MCP endpoint. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct AuditLayer {
    shared: Arc<Shared>,
}

/// What every request of the endpoint shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// `None` when `output = "off"`. Shared with the layers of later
    /// configurations (reload) as long as `[audit]` does not change.
    pub(crate) writer: Option<Arc<Writer>>,
    tools: HashMap<String, ToolAudit>,
    default_tool: ToolAudit,
    /// Lowercase keys.
    pub(crate) redact: Vec<String>,
    catalog: Option<ToolCatalog>,
}

impl AuditLayer {
    /// The layer for `config`. Opens the audit file now, so a path that
    /// cannot be written fails startup (the error names the path).
    /// `catalog` bounds the metrics' `tool` label: pass the catalog the
    /// policy layers use, so tools seen in `tools/list` are named.
    pub fn new(config: &AuditConfig, catalog: Option<ToolCatalog>) -> io::Result<AuditLayer> {
        let writer = match &config.output {
            AuditOutput::Off => None,
            AuditOutput::Stdout => Some(Arc::new(Writer::start(Target::Stdout)?)),
            AuditOutput::File(path) => Some(Arc::new(Writer::start(Target::File {
                path: path.clone(),
                max_size: config.max_file_size,
                max_files: config.max_files,
            })?)),
        };
        let shared = Shared {
            writer,
            tools: config.tools.clone(),
            default_tool: config.default_tool,
            redact: config.redact.iter().map(|k| k.to_lowercase()).collect(),
            catalog,
        };
        Ok(AuditLayer { shared: Arc::new(shared) })
    }

    /// The same log (one writer, so one file and one rotation) with another
    /// tool catalog: for a reloaded configuration whose `[audit]` is unchanged.
    pub fn with_catalog(&self, catalog: Option<ToolCatalog>) -> AuditLayer {
        let s = &self.shared;
        let shared = Shared {
            writer: s.writer.clone(),
            tools: s.tools.clone(),
            default_tool: s.default_tool,
            redact: s.redact.clone(),
            catalog,
        };
        AuditLayer { shared: Arc::new(shared) }
    }

    /// Blocks until the records of finished requests are written (at most
    /// `timeout`); false if they could not be. For tests and shutdown
    /// (from a blocking context: `tokio::task::spawn_blocking`).
    pub fn flush(&self, timeout: Duration) -> bool {
        self.shared.writer.as_ref().is_none_or(|w| w.flush(timeout))
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = Audit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Audit { inner, shared: Arc::clone(&self.shared) }
    }
}

/// The service [`AuditLayer`] builds.
#[derive(Clone, Debug)]
pub struct Audit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Audit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<AuditBody<ResBody>>;
    type Error = S::Error;
    type Future = AuditFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let pending = self.shared.pending(&req);
        AuditFuture { inner: self.inner.call(req), pending }
    }
}

impl Shared {
    /// What to record of `req`; `None` when there is nothing to record.
    fn pending<B>(self: &Arc<Self>, req: &Request<B>) -> Option<Pending> {
        let inspection = req.extensions().get::<Inspection>()?;
        let auditing = self.writer.is_some();
        let entries: Vec<Entry> = inspection
            .messages
            .iter()
            .filter(|m| m.kind == MessageKind::Request)
            .filter_map(|m| {
                let is_call = m.method.as_deref() == Some("tools/call");
                // Off: only tool calls, for their metrics.
                if !auditing && !is_call {
                    return None;
                }
                let settings = if auditing && is_call { self.tool(m.tool.as_deref()) } else { ToolAudit::default() };
                let arguments = match (&m.arguments, settings.arguments) {
                    (Some(span), true) => inspection.body.get(span.clone()).and_then(|t| logged(t, &self.redact)),
                    _ => None,
                };
                Some(Entry {
                    method: m.method.clone()?,
                    id: m.id.clone()?,
                    name: m.tool.clone().or_else(|| m.prompt.clone()).or_else(|| m.uri.clone()),
                    tool_label: is_call.then(|| self.tool_label(m.tool.as_deref())),
                    arguments,
                    want_result: settings.results,
                    answer: None,
                })
            })
            .collect();
        if entries.is_empty() {
            return None;
        }
        let extensions = req.extensions();
        Some(Pending {
            shared: Arc::clone(self),
            time: SystemTime::now(),
            start: Instant::now(),
            principal: extensions.get::<Principal>().filter(|_| auditing).map(|p| Arc::clone(&p.subject)),
            client_ip: extensions.get::<ClientIp>().filter(|_| auditing).map(|ClientIp(ip)| *ip),
            session: req.headers().get(&MCP_SESSION_ID).filter(|_| auditing).map(|v| short_session(v.as_bytes())),
            entries,
        })
    }

    fn tool(&self, name: Option<&str>) -> ToolAudit {
        name.and_then(|n| self.tools.get(n)).copied().unwrap_or(self.default_tool)
    }

    fn tool_label(&self, name: Option<&str>) -> String {
        match (name, &self.catalog) {
            (Some(n), Some(catalog)) if catalog.is_known(n) => n.to_owned(),
            _ => "unknown".to_owned(),
        }
    }
}

pin_project! {
    /// Response future of [`Audit`].
    pub struct AuditFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }

    impl<F> PinnedDrop for AuditFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before the answer: the client went away. The requests
            // still reached a decision (they were let through), so they are
            // recorded, with no status.
            if let Some(p) = this.project().pending.take() {
                p.finish(&Outcome::default());
            }
        }
    }
}

impl<F> fmt::Debug for AuditFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditFuture").field("pending", &self.pending.is_some()).finish_non_exhaustive()
    }
}

impl<F, B, E> Future for AuditFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<AuditBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let pending = this.pending.take();
        Poll::Ready(match result {
            Ok(response) => Ok(AuditBody::attach(response, pending)),
            Err(e) => {
                if let Some(p) = pending {
                    p.finish(&Outcome::default());
                }
                Err(e)
            }
        })
    }
}
