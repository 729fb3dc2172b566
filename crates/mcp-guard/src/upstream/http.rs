//! A Streamable HTTP upstream, reverse-proxied with a pooled hyper client.
//!
//! Requests and responses stream in both directions: an SSE response is
//! passed on frame by frame as the upstream writes it, so a progress
//! notification reaches the client before the result. Hop-by-hop headers
//! (RFC 9110 §7.6.1) are dropped both ways; `Host` is the upstream's.
//! Unreachable gives 502, no response headers within the timeout 504.

use std::time::Duration;

use http::{HeaderMap, HeaderName, Request, Response, Uri, header};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use mcp_guard_layers::{Rejection, transport};

use super::Upstream;
use crate::{body::BoxBody, config::HttpUpstreamConfig, sse};

/// The reverse proxy to one upstream MCP endpoint.
#[derive(Clone, Debug)]
pub struct HttpUpstream {
    client: Client<HttpConnector, BoxBody>,
    url: Uri,
    timeout: Duration,
    /// The gateway's own credentials for the upstream.
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl HttpUpstream {
    /// A proxy to `config.url` with a connection pool.
    pub fn new(config: &HttpUpstreamConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).build(connector);
        let headers = config
            .headers
            .iter()
            .filter_map(|(name, value)| {
                let mut value = http::HeaderValue::from_str(value.expose()).ok()?;
                value.set_sensitive(true);
                Some((name.clone(), value))
            })
            .collect();
        HttpUpstream { client, url: config.url.clone(), timeout: config.limits.request_timeout, headers }
    }

    async fn forward(&self, req: Request<BoxBody>) -> Result<Response<BoxBody>, Rejection> {
        let (mut parts, body) = req.into_parts();
        // Always exactly the configured URL: the client's path was matched
        // by the router and its query string is not passed on.
        parts.uri = self.url.clone();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::HOST);
        for (name, value) in &self.headers {
            parts.headers.insert(name, value.clone());
        }
        parts.version = http::Version::HTTP_11;
        let request = Request::from_parts(parts, body);

        let response = match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Err(_) => return Err(Rejection::UpstreamTimeout),
            Ok(Err(e)) if e.is_connect() => {
                tracing::warn!(target: "mcp_guard::upstream", error = %e, "upstream_unreachable");
                return Err(Rejection::UpstreamUnavailable);
            }
            Ok(Err(e)) => {
                tracing::warn!(target: "mcp_guard::upstream", error = %e, "upstream_error");
                return Err(Rejection::UpstreamError);
            }
            Ok(Ok(response)) => response,
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if transport::is_event_stream(&parts.headers) {
            sse::set_stream_headers(&mut parts.headers);
        }
        Ok(Response::from_parts(parts, BoxBody::new(body)))
    }
}

impl Upstream for HttpUpstream {
    fn kind(&self) -> &'static str {
        "http"
    }

    async fn handle(&self, req: Request<BoxBody>) -> Response<BoxBody> {
        self.forward(req).await.unwrap_or_else(Rejection::into_response)
    }

    async fn ready(&self) -> Result<(), String> {
        // Reachability, not health: a TCP connect within the connect timeout.
        let authority = self.url.authority().map(|a| a.as_str()).unwrap_or_default();
        let port = self.url.port_u16().unwrap_or(80);
        let host = self.url.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect((host, port))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("upstream {authority} unreachable: {e}")),
            Err(_) => Err(format!("upstream {authority} did not accept a connection within 2s")),
        }
    }

    async fn shutdown(&self) {}
}

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers, including any a `Connection` header names.
/// `Transfer-Encoding` goes too: hyper frames the body for its own hop.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("mcp-session-id", "abc"),
            ("last-event-id", "7"),
            ("content-type", "application/json"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "last-event-id", "mcp-session-id"]);
    }
}
