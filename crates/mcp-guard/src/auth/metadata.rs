//! OAuth 2.0 Protected Resource Metadata (RFC 9728): where a client learns
//! which authorization server issues tokens for this gateway.

use bytes::Bytes;
use http::Uri;

/// The metadata document and the URLs it is served at.
#[derive(Clone, Debug)]
pub struct ResourceMetadata {
    document: Bytes,
    url: String,
    paths: Vec<String>,
}

const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

impl ResourceMetadata {
    /// The document for `resource` (this gateway's canonical URL).
    pub fn new(resource: &str, authorization_servers: &[String], scopes_supported: &[String]) -> Result<Self, String> {
        let uri: Uri = resource.parse().map_err(|_| format!("`{resource}` is not a URL"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(format!("`{resource}` is not an absolute URL"));
        };
        let path = uri.path().trim_end_matches('/');
        // RFC 9728 §3.1: the well-known path goes between host and the resource's path.
        let inserted = format!("{WELL_KNOWN}{path}");
        let mut paths = vec![WELL_KNOWN.to_owned()];
        if inserted != WELL_KNOWN {
            paths.push(inserted.clone());
        }
        let document = serde_json::json!({
            "resource": resource,
            "authorization_servers": authorization_servers,
            "scopes_supported": scopes_supported,
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-guard",
        });
        Ok(ResourceMetadata {
            document: Bytes::from(document.to_string()),
            url: format!("{scheme}://{authority}{inserted}"),
            paths,
        })
    }

    /// The URL clients are pointed at in `WWW-Authenticate`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The paths the document is served at: the root form and the path-inserted form.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// The JSON document.
    pub fn document(&self) -> Bytes {
        self.document.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_inserted_form() {
        let m = ResourceMetadata::new(
            "https://mcp.example.com/mcp",
            &["https://auth.example.com".into()],
            &["mcp:tools".into()],
        )
        .expect("valid");
        assert_eq!(m.url(), "https://mcp.example.com/.well-known/oauth-protected-resource/mcp");
        assert_eq!(m.paths(), ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]);
        let v: serde_json::Value = serde_json::from_slice(&m.document()).expect("json");
        assert_eq!(v["resource"], "https://mcp.example.com/mcp");
        assert_eq!(v["authorization_servers"][0], "https://auth.example.com");
        assert_eq!(v["bearer_methods_supported"][0], "header");
        let root = ResourceMetadata::new("https://mcp.example.com", &[], &[]).expect("valid");
        assert_eq!(root.paths().len(), 1);
        assert_eq!(root.url(), "https://mcp.example.com/.well-known/oauth-protected-resource");
    }
}
