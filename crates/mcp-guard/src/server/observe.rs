//! Timing, metrics and the one log line per rejection, for every request.
//!
//! Rejections are read from the response extensions, where every layer
//! puts its [`Rejection`]: no layer logs for itself, so each refusal is
//! logged and counted exactly once, here. Metric labels come from closed
//! sets (HTTP method, status code, rejection event), never from client
//! input, so a client cannot blow up the series count.

use std::{
    task::{Context, Poll},
    time::Instant,
};

use http::{Method, Request, Response};
use mcp_guard_layers::{
    Rejection,
    future::{HookFuture, OnResponse},
    identity::{ClientIp, Principal},
    policy::Refused,
    request_id::RequestId,
};
use tower::{Layer, Service};

/// Observes every request of the wrapped service.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Observe<S> {
    inner: S,
}

/// What is known of a request before it is answered.
#[derive(Debug)]
pub(crate) struct Seen {
    start: Instant,
    method: &'static str,
    path_is_mcp: bool,
    client: Option<ClientIp>,
    request_id: Option<RequestId>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Observe<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = HookFuture<S::Future, Seen>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let seen = Seen {
            start: Instant::now(),
            method: method_label(req.method()),
            path_is_mcp: !matches!(req.uri().path(), "/health" | "/ready" | "/metrics"),
            client: req.extensions().get::<ClientIp>().copied(),
            request_id: req.extensions().get::<RequestId>().cloned(),
        };
        HookFuture::new(self.inner.call(req), seen)
    }
}

impl OnResponse for Seen {
    fn on_response<B>(self, response: &mut Response<B>) {
        record(&self, response);
    }
}

fn record<B>(seen: &Seen, response: &Response<B>) {
    let elapsed = seen.start.elapsed();
    let status = response.status().as_u16();
    if seen.path_is_mcp {
        metrics::counter!("http_requests_total", "method" => seen.method, "status_code" => status_label(status))
            .increment(1);
        metrics::histogram!("http_request_duration_seconds", "method" => seen.method).record(elapsed.as_secs_f64());
    }
    let client = seen.client.map(|ClientIp(ip)| ip);
    let request_id = seen.request_id.as_ref().and_then(|RequestId(v)| v.to_str().ok());
    let principal = response.extensions().get::<Principal>().map(|p| &*p.subject);
    match response.extensions().get::<Rejection>() {
        Some(rejection) => {
            let event = rejection.security_event();
            metrics::counter!("mcp_guard_security_events_total", "event" => event).increment(1);
            tracing::warn!(
                target: "mcp_guard::security",
                event,
                reason = rejection.reason(),
                status,
                method = seen.method,
                client = ?client,
                principal,
                request_id,
                micros = elapsed.as_micros() as u64,
                "{event}"
            );
        }
        None if response.extensions().get::<Refused>().is_some_and(|r| !r.0.is_empty()) => {
            // Refused inside the protocol (HTTP 200): one event per request.
            for (id, refusal) in response.extensions().get::<Refused>().map_or(&[][..], |r| &r.0) {
                let event = refusal.reason();
                metrics::counter!("mcp_guard_security_events_total", "event" => event).increment(1);
                tracing::warn!(
                    target: "mcp_guard::security",
                    event,
                    reason = event,
                    status,
                    method = seen.method,
                    client = ?client,
                    principal,
                    request_id,
                    jsonrpc_id = id.as_json(),
                    micros = elapsed.as_micros() as u64,
                    "{event}"
                );
            }
        }
        None => tracing::debug!(
            target: "mcp_guard::access",
            status,
            method = seen.method,
            client = ?client,
            principal,
            request_id,
            micros = elapsed.as_micros() as u64,
            "request"
        ),
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        _ => "other",
    }
}

/// Status codes as static labels: the codes the gateway and MCP servers
/// answer with; anything else is grouped by class.
fn status_label(code: u16) -> &'static str {
    match code {
        200 => "200",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        406 => "406",
        408 => "408",
        409 => "409",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => match code / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_closed_sets() {
        assert_eq!(status_label(429), "429");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(999), "5xx");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").expect("method")), "other");
    }
}
