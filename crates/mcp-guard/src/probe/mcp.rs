//! The MCP side of the probe: JSON-RPC messages and Streamable HTTP requests.

use bytes::Bytes;
use http::{HeaderValue, Method, header};
use mcp_guard_layers::transport::{MCP_PROTOCOL_VERSION, MCP_SESSION_ID};
use serde_json::{Value, json};

use super::{
    Target,
    client::{Body, Req},
};
use crate::secret::Secret;

/// An MCP session: its id (none from a stateless server) and negotiated version.
#[derive(Clone, Debug, Default)]
pub(crate) struct Session {
    pub(crate) id: Option<HeaderValue>,
    pub(crate) version: String,
}

/// A JSON-RPC request.
pub(crate) fn request(id: u64, method: &str, params: Option<Value>) -> Value {
    match params {
        Some(params) => json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        None => json!({"jsonrpc": "2.0", "id": id, "method": method}),
    }
}

/// An `initialize` request asking for `version`.
pub(crate) fn initialize(id: u64, version: &str) -> Value {
    let params = json!({
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "mcp-guard-probe", "version": env!("CARGO_PKG_VERSION")},
    });
    request(id, "initialize", Some(params))
}

/// The `notifications/initialized` notification.
pub(crate) fn initialized() -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
}

/// A JSON body sent with `Content-Length`.
pub(crate) fn json_body(message: &Value) -> Body {
    Body::Full(Bytes::from(message.to_string()))
}

/// A POST to the endpoint as the transport spec has clients send it.
pub(crate) fn post(target: &Target, body: Body, label: impl Into<String>) -> Req {
    Req::new(Method::POST, target.url.clone(), body, label)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
}

/// Adds `Authorization: Bearer <token>` when there is a token.
pub(crate) fn bearer(req: Req, token: Option<&Secret>) -> Req {
    match token {
        Some(token) => req.header(header::AUTHORIZATION, &format!("Bearer {}", token.expose())),
        None => req,
    }
}

/// Adds the session's `Mcp-Session-Id` and `MCP-Protocol-Version`.
pub(crate) fn in_session(req: Req, session: &Session) -> Req {
    let req = match &session.id {
        Some(id) => req.header_value(&MCP_SESSION_ID, id.clone()),
        None => req,
    };
    if session.version.is_empty() { req } else { req.header(&MCP_PROTOCOL_VERSION, &session.version) }
}

/// A session id as evidence shows it: visible ASCII as is (ids are not
/// secrets once the session is gone, but long ones are cut), others escaped.
pub(crate) fn show_id(id: &HeaderValue) -> String {
    let text: String = id.as_bytes().iter().flat_map(|b| std::ascii::escape_default(*b)).map(char::from).collect();
    super::client::shorten(&text, 48)
}

/// `bearer` token with its last characters changed: same length and
/// alphabet, so only its validation can tell it apart.
pub(crate) fn tampered(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let from = chars.len().saturating_sub(4);
    for c in &mut chars[from..] {
        *c = match *c {
            'a'..='y' | 'A'..='Y' | '0'..='8' => char::from(*c as u8 + 1),
            'z' => 'a',
            'Z' => 'A',
            '9' => '0',
            '-' => '_',
            '_' => '-',
            _ => 'x',
        };
    }
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampered_tokens_differ_in_the_tail_only() {
        let token = "mcpk_0123456789abcdefXYZ9";
        let bad = tampered(token);
        assert_eq!(bad.len(), token.len());
        assert_eq!(&bad[..token.len() - 4], &token[..token.len() - 4]);
        assert!(bad.chars().zip(token.chars()).skip(token.len() - 4).all(|(a, b)| a != b));
        assert_eq!(tampered("ab"), "bc");
        assert_ne!(tampered("é€"), "é€");
    }

    #[test]
    fn session_ids_are_shown_safely() {
        let id = HeaderValue::from_bytes(b"abc\xff def").unwrap();
        assert_eq!(show_id(&id), "abc\\xff def");
    }
}
