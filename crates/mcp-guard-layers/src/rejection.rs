//! Every way mcp-guard refuses a request, in one table.
//!
//! A rejection is a *response*, never a service error: each layer that refuses
//! a request answers it with [`Rejection::into_response`], which sets the HTTP
//! status, a JSON-RPC error body and a copy of the [`Rejection`] in the
//! response extensions, so logging and metrics read the stable reason without
//! parsing the body.
//!
//! The body never carries an `id`: a layer that rejects a request has not
//! (or not successfully) read the JSON-RPC id, and the specification forbids
//! guessing one.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

/// JSON-RPC error codes used in rejection bodies.
///
/// `-32000`/`-32001` follow the MCP SDKs' convention for transport-level
/// errors and unknown sessions; the others are JSON-RPC 2.0's own.
pub mod code {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i32 = -32700;
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: i32 = -32600;
    /// Internal JSON-RPC error.
    pub const INTERNAL_ERROR: i32 = -32603;
    /// A transport or policy error outside JSON-RPC's own codes.
    pub const SERVER_ERROR: i32 = -32000;
    /// The session named by `Mcp-Session-Id` does not exist (for this caller).
    pub const SESSION_NOT_FOUND: i32 = -32001;
    /// Invalid method parameters (MCP: unknown tool or prompt, bad arguments).
    pub const INVALID_PARAMS: i32 = -32602;
    /// MCP's "Resource not found".
    pub const RESOURCE_NOT_FOUND: i32 = -32002;
}

macro_rules! rejections {
    ($( $(#[$doc:meta])* $variant:ident => ($status:ident, $code:expr, $reason:literal, $message:literal), )*) => {
        /// A refused request: its HTTP status, JSON-RPC code, stable reason and message.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Rejection {
            $( $(#[$doc])* $variant, )*
        }

        impl Rejection {
            /// Every rejection, for documentation and exhaustive tests.
            pub const ALL: &'static [Rejection] = &[$(Rejection::$variant,)*];

            /// The HTTP status this rejection is answered with.
            pub const fn status(self) -> StatusCode {
                match self { $(Rejection::$variant => StatusCode::$status,)* }
            }

            /// The JSON-RPC error code in the body.
            pub const fn code(self) -> i32 {
                match self { $(Rejection::$variant => $code,)* }
            }

            /// Stable machine-readable reason, sent as `error.data.reason`,
            /// logged and counted. Never changes once released.
            pub const fn reason(self) -> &'static str {
                match self { $(Rejection::$variant => $reason,)* }
            }

            /// Human-readable message, sent as `error.message`.
            pub const fn message(self) -> &'static str {
                match self { $(Rejection::$variant => $message,)* }
            }
        }
    };
}

rejections! {
    /// `Host` names an authority this endpoint does not serve (DNS rebinding).
    HostNotAllowed => (FORBIDDEN, code::SERVER_ERROR, "host_not_allowed", "Forbidden: Host header is not allowed"),
    /// `Origin` is present and not in the allow-list (DNS rebinding, CSRF).
    OriginNotAllowed => (FORBIDDEN, code::SERVER_ERROR, "origin_not_allowed", "Forbidden: Origin is not allowed"),
    /// `Accept` does not list the media types the transport requires.
    NotAcceptable => (NOT_ACCEPTABLE, code::SERVER_ERROR, "not_acceptable", "Not Acceptable: Accept must list application/json and text/event-stream"),
    /// A POST body that is not `application/json`.
    UnsupportedMediaType => (UNSUPPORTED_MEDIA_TYPE, code::SERVER_ERROR, "unsupported_media_type", "Unsupported Media Type: Content-Type must be application/json"),
    /// A method the MCP endpoint does not serve.
    MethodNotAllowed => (METHOD_NOT_ALLOWED, code::SERVER_ERROR, "method_not_allowed", "Method Not Allowed"),
    /// A GET that asks for a server-sent event stream where none is offered.
    StreamNotSupported => (METHOD_NOT_ALLOWED, code::SERVER_ERROR, "sse_stream_not_supported", "Method Not Allowed: this endpoint offers no standalone SSE stream"),
    /// A path other than the MCP endpoint and the health routes.
    NotFound => (NOT_FOUND, code::SERVER_ERROR, "not_found", "Not Found"),
    /// The body is not JSON.
    ParseError => (BAD_REQUEST, code::PARSE_ERROR, "parse_error", "Parse error: body is not valid JSON"),
    /// The body is JSON but not a JSON-RPC 2.0 message (or batch of them).
    InvalidMessage => (BAD_REQUEST, code::INVALID_REQUEST, "invalid_jsonrpc", "Invalid Request: body is not a JSON-RPC 2.0 message"),
    /// JSON nested deeper than the inspection limit.
    NestingTooDeep => (BAD_REQUEST, code::INVALID_REQUEST, "nesting_too_deep", "Invalid Request: JSON nesting is too deep"),
    /// A JSON-RPC batch where the negotiated protocol version forbids batches.
    BatchNotAllowed => (BAD_REQUEST, code::INVALID_REQUEST, "batch_not_allowed", "Invalid Request: JSON-RPC batches are not allowed in this protocol version"),
    /// A JSON-RPC batch longer than the configured cap.
    BatchTooLong => (BAD_REQUEST, code::INVALID_REQUEST, "batch_too_long", "Invalid Request: JSON-RPC batch is too long"),
    /// A request id already in flight in this session.
    DuplicateRequestId => (BAD_REQUEST, code::INVALID_REQUEST, "duplicate_request_id", "Invalid Request: a request with this id is already in flight"),
    /// A non-initialize message without `Mcp-Session-Id` on a stateful upstream.
    SessionRequired => (BAD_REQUEST, code::SERVER_ERROR, "session_required", "Bad Request: Mcp-Session-Id header is required"),
    /// An `initialize` sent with an `Mcp-Session-Id`.
    InitializeInSession => (BAD_REQUEST, code::INVALID_REQUEST, "initialize_in_session", "Invalid Request: initialize must not carry Mcp-Session-Id"),
    /// `MCP-Protocol-Version` differs from the session's negotiated version,
    /// or from the `protocolVersion` in the initialize body it travels with.
    ProtocolVersionMismatch => (BAD_REQUEST, code::SERVER_ERROR, "protocol_version_mismatch", "Bad Request: MCP-Protocol-Version does not match the negotiated protocol version"),
    /// The request body stopped arriving (client went away mid-body).
    BodyIncomplete => (BAD_REQUEST, code::SERVER_ERROR, "body_incomplete", "Bad Request: the request body could not be read"),
    /// The request body did not arrive within the body read timeout.
    RequestTimeout => (REQUEST_TIMEOUT, code::SERVER_ERROR, "request_timeout", "Request Timeout: the request body did not arrive in time"),
    /// A protocol revision this upstream cannot serve.
    UnsupportedProtocolVersion => (BAD_REQUEST, code::SERVER_ERROR, "unsupported_protocol_version", "Bad Request: unsupported MCP-Protocol-Version"),
    /// Unknown, expired, ended, or another principal's session: all look alike.
    SessionNotFound => (NOT_FOUND, code::SESSION_NOT_FOUND, "session_not_found", "Session not found"),
    /// A second standalone SSE stream for a session that already has one.
    StreamConflict => (CONFLICT, code::SERVER_ERROR, "sse_stream_conflict", "Conflict: this session already has an open SSE stream"),
    /// No credentials were sent.
    Unauthorized => (UNAUTHORIZED, code::SERVER_ERROR, "unauthorized", "Unauthorized: a bearer token is required"),
    /// The credentials sent are not valid (unknown key, bad or expired token, wrong audience).
    InvalidToken => (UNAUTHORIZED, code::SERVER_ERROR, "invalid_token", "Unauthorized: the bearer token is not valid"),
    /// Valid credentials without the scopes this request needs.
    InsufficientScope => (FORBIDDEN, code::SERVER_ERROR, "insufficient_scope", "Forbidden: the token lacks a required scope"),
    /// Credentials cannot be checked right now (the key set is unreachable).
    AuthUnavailable => (SERVICE_UNAVAILABLE, code::SERVER_ERROR, "auth_unavailable", "Service Unavailable: credentials cannot be verified right now"),
    /// The body is larger than the configured limit.
    RequestTooLarge => (PAYLOAD_TOO_LARGE, code::SERVER_ERROR, "request_too_large", "Payload Too Large"),
    /// The caller exceeded its rate limit.
    RateLimited => (TOO_MANY_REQUESTS, code::SERVER_ERROR, "rate_limited", "Too Many Requests"),
    /// The shared rate-limit backend is unreachable and configured to fail closed.
    RateLimitUnavailable => (SERVICE_UNAVAILABLE, code::SERVER_ERROR, "rate_limit_unavailable", "Service Unavailable: the rate limit cannot be checked right now"),
    /// The concurrent session cap is reached.
    TooManySessions => (SERVICE_UNAVAILABLE, code::SERVER_ERROR, "too_many_sessions", "Service Unavailable: too many concurrent sessions"),
    /// The gateway is shutting down and takes no new sessions or streams.
    ShuttingDown => (SERVICE_UNAVAILABLE, code::SERVER_ERROR, "shutting_down", "Service Unavailable: the gateway is shutting down"),
    /// The upstream server could not be started (stdio) or reached (HTTP).
    UpstreamUnavailable => (BAD_GATEWAY, code::INTERNAL_ERROR, "upstream_unavailable", "Bad Gateway: the upstream MCP server is unavailable"),
    /// The upstream failed mid-exchange (connection reset, protocol error).
    UpstreamError => (BAD_GATEWAY, code::INTERNAL_ERROR, "upstream_error", "Bad Gateway: the upstream MCP server failed"),
    /// The upstream did not answer in time.
    UpstreamTimeout => (GATEWAY_TIMEOUT, code::INTERNAL_ERROR, "upstream_timeout", "Gateway Timeout: the upstream MCP server did not answer in time"),
    /// The session already has as many requests waiting on the upstream as
    /// it may (`upstream.max_pending_per_session`): one session cannot tie
    /// up an upstream that stopped answering.
    TooManyPendingRequests => (TOO_MANY_REQUESTS, code::SERVER_ERROR, "too_many_pending_requests", "Too Many Requests: too many requests of this session are waiting on the upstream"),
    /// The upstream's answer is larger than `upstream.max_response_size`.
    UpstreamResponseTooLarge => (BAD_GATEWAY, code::INTERNAL_ERROR, "upstream_response_too_large", "Bad Gateway: the upstream MCP server's answer is too large"),
    /// The upstream answered with something that is not a JSON-RPC answer
    /// to this request.
    UpstreamInvalidResponse => (BAD_GATEWAY, code::INTERNAL_ERROR, "upstream_invalid_response", "Bad Gateway: the upstream MCP server's answer is not valid JSON-RPC"),
}

/// A request refused *inside* the protocol: the gateway answers it itself
/// with HTTP 200 and a JSON-RPC error response carrying the request's `id`,
/// as the upstream would, and never forwards it.
///
/// The wire answer ([`Refusal::code`], [`Refusal::message`]) of a denied
/// tool, resource or prompt is the specification's answer for one that does
/// not exist, so a caller cannot discover what it may not use; only the
/// [`Refusal::reason`], which is logged, audited and counted but never sent,
/// tells them apart. See [`crate::policy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// A `tools/call` of a tool the caller's policy denies.
    ToolDenied,
    /// A `resources/read` or `resources/subscribe` of a denied resource.
    ResourceDenied,
    /// A `prompts/get` of a denied prompt.
    PromptDenied,
    /// A call to a tool whose definition differs from its pin (`block`).
    ToolDefinitionChanged,
    /// A call to a tool that has no pin while pins are enforced (`block`).
    ToolNotPinned,
    /// A call to a tool neither pinned nor ever listed, while pins are
    /// enforced (`block`): answered like a denied tool, as the gateway
    /// knows no such tool.
    UnknownTool,
    /// `tools/call` arguments that do not match the tool's `inputSchema`.
    InvalidArguments,
    /// `tools/call` arguments larger than the tool's limit.
    ArgumentsTooLarge,
    /// Another request in the same JSON-RPC batch was refused, so none of
    /// the batch was forwarded.
    BatchRefused,
}

impl Refusal {
    /// Every refusal, for documentation and exhaustive tests.
    pub const ALL: &'static [Refusal] = &[
        Refusal::ToolDenied,
        Refusal::ResourceDenied,
        Refusal::PromptDenied,
        Refusal::ToolDefinitionChanged,
        Refusal::ToolNotPinned,
        Refusal::UnknownTool,
        Refusal::InvalidArguments,
        Refusal::ArgumentsTooLarge,
        Refusal::BatchRefused,
    ];

    /// The JSON-RPC error code sent.
    pub const fn code(self) -> i32 {
        match self {
            Refusal::ResourceDenied => code::RESOURCE_NOT_FOUND,
            Refusal::ToolDefinitionChanged | Refusal::ToolNotPinned => code::SERVER_ERROR,
            Refusal::BatchRefused => code::INVALID_REQUEST,
            Refusal::ToolDenied
            | Refusal::UnknownTool
            | Refusal::PromptDenied
            | Refusal::InvalidArguments
            | Refusal::ArgumentsTooLarge => code::INVALID_PARAMS,
        }
    }

    /// Stable machine-readable reason for logs, the audit log and metrics.
    /// Sent to the client only where it reveals nothing the message does not
    /// (never for the `*_denied` refusals).
    pub const fn reason(self) -> &'static str {
        match self {
            Refusal::ToolDenied => "tool_denied",
            Refusal::ResourceDenied => "resource_denied",
            Refusal::PromptDenied => "prompt_denied",
            Refusal::ToolDefinitionChanged => "tool_definition_changed",
            Refusal::ToolNotPinned => "tool_not_pinned",
            Refusal::UnknownTool => "unknown_tool",
            Refusal::InvalidArguments => "invalid_arguments",
            Refusal::ArgumentsTooLarge => "arguments_too_large",
            Refusal::BatchRefused => "batch_refused",
        }
    }

    /// True when the reason may be sent as `error.data.reason`.
    pub const fn reason_is_public(self) -> bool {
        !matches!(self, Refusal::ToolDenied | Refusal::ResourceDenied | Refusal::PromptDenied)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl Rejection {
    /// The JSON-RPC error body for this rejection, without an `id`.
    pub fn body(self) -> Bytes {
        // Every part is a compile-time constant without characters that need
        // escaping, so the body is assembled without a serializer.
        Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","error":{{"code":{},"message":"{}","data":{{"reason":"{}"}}}}}}"#,
            self.code(),
            self.message(),
            self.reason()
        ))
    }

    /// The security event this rejection is logged and counted as
    /// (`mcp_guard_security_events_total{event=...}`).
    pub const fn security_event(self) -> &'static str {
        match self {
            Rejection::HostNotAllowed | Rejection::OriginNotAllowed => "dns_rebinding_attempt_blocked",
            other => other.reason(),
        }
    }

    /// This rejection as a complete response.
    ///
    /// Works with any body type that can be built from [`Bytes`], such as
    /// `axum::body::Body` or `http_body_util::Full<Bytes>`.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let mut response = Response::new(B::from(self.body()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        match self {
            Rejection::MethodNotAllowed | Rejection::StreamNotSupported => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            }
            Rejection::TooManySessions
            | Rejection::ShuttingDown
            | Rejection::AuthUnavailable
            | Rejection::RateLimitUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response.extensions_mut().insert(self);
        response
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn reasons_are_unique_snake_case() {
        let mut seen = HashSet::new();
        for r in Rejection::ALL {
            assert!(seen.insert(r.reason()), "duplicate reason {}", r.reason());
            assert!(r.reason().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }

    #[test]
    fn refusal_reasons_are_unique_across_both_tables() {
        let mut seen: HashSet<&str> = Rejection::ALL.iter().map(|r| r.reason()).collect();
        for r in Refusal::ALL {
            assert!(seen.insert(r.reason()), "duplicate reason {}", r.reason());
        }
    }

    #[test]
    fn every_body_is_a_jsonrpc_error_without_id() {
        for r in Rejection::ALL {
            let v: serde_json::Value = serde_json::from_slice(&r.body()).expect("valid JSON");
            assert_eq!(v["jsonrpc"], "2.0");
            assert_eq!(v["error"]["code"], r.code());
            assert_eq!(v["error"]["message"], r.message());
            assert_eq!(v["error"]["data"]["reason"], r.reason());
            assert!(v.get("id").is_none());
            assert!(r.status().is_client_error() || r.status().is_server_error());
        }
    }

    #[test]
    fn response_carries_status_reason_and_headers() {
        let res: Response<Bytes> = Rejection::TooManySessions.into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
        assert_eq!(res.extensions().get::<Rejection>(), Some(&Rejection::TooManySessions));
        let res: Response<Bytes> = Rejection::RateLimitUnavailable.into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
        let res: Response<Bytes> = Rejection::MethodNotAllowed.into_response();
        assert_eq!(res.headers()[header::ALLOW], "GET, POST, DELETE");
    }
}
