//! `WWW-Authenticate` challenges (RFC 6750 §3, RFC 9728 §5.1).

use std::sync::Arc;

use http::{HeaderValue, Response, header};

use crate::rejection::Rejection;

/// What a refusal tells the client about how to get a usable token.
#[derive(Clone, Debug)]
pub struct Challenge {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    resource_metadata: String,
    scopes: Vec<String>,
}

impl Challenge {
    /// `resource_metadata` is the URL of this resource's RFC 9728 metadata;
    /// `scopes` the scopes a client should ask for by default.
    pub fn new<I, S>(resource_metadata: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let inner =
            Inner { resource_metadata: resource_metadata.into(), scopes: scopes.into_iter().map(Into::into).collect() };
        Challenge { inner: Arc::new(inner) }
    }

    /// The refusal for `rejection`, with its challenge. `scopes` overrides
    /// the default scope hint (for `insufficient_scope`).
    pub fn respond<B: From<bytes::Bytes>>(&self, rejection: Rejection, scopes: Option<&[String]>) -> Response<B> {
        let mut response = rejection.into_response::<B>();
        let error = match rejection {
            Rejection::InvalidToken => Some("invalid_token"),
            Rejection::InsufficientScope => Some("insufficient_scope"),
            _ => None,
        };
        let scopes = scopes.unwrap_or(&self.inner.scopes);
        let mut value = String::from("Bearer");
        let mut sep = " ";
        if let Some(error) = error {
            value.push_str(&format!("{sep}error=\"{error}\""));
            sep = ", ";
        }
        value.push_str(&format!("{sep}resource_metadata=\"{}\"", quoted(&self.inner.resource_metadata)));
        if !scopes.is_empty() {
            value.push_str(&format!(", scope=\"{}\"", quoted(&scopes.join(" "))));
        }
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// A quoted-string body: configuration is validated, but never let a quote
/// or control character break the header.
fn quoted(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && *c != '\\' && !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn challenges_follow_rfc_6750_and_9728() {
        let c = Challenge::new("https://mcp.example.com/.well-known/oauth-protected-resource/mcp", ["mcp:tools"]);
        let cases = [
            (
                Rejection::Unauthorized,
                None,
                r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="mcp:tools""#,
            ),
            (
                Rejection::InvalidToken,
                None,
                r#"Bearer error="invalid_token", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="mcp:tools""#,
            ),
        ];
        for (rejection, scopes, want) in cases {
            let res: Response<Bytes> = c.respond(rejection, scopes);
            assert_eq!(res.headers()[header::WWW_AUTHENTICATE], want);
        }
        let needed = vec!["mcp:tools".to_owned(), "mcp:admin".to_owned()];
        let res: Response<Bytes> = c.respond(Rejection::InsufficientScope, Some(&needed));
        assert_eq!(res.status(), 403);
        let v = res.headers()[header::WWW_AUTHENTICATE].to_str().expect("ascii");
        assert!(
            v.starts_with(r#"Bearer error="insufficient_scope""#) && v.ends_with(r#"scope="mcp:tools mcp:admin""#),
            "{v}"
        );
    }
}
