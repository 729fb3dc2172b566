//! Where keys and metadata may be fetched from: the HTTPS rule, and the
//! metadata locations discovery tries for an issuer.

use std::net::IpAddr;

use reqwest::Url;

/// A URL the gateway may fetch keys or metadata from: HTTPS, or plain HTTP
/// to a loopback host (a sidecar IdP or a test).
pub(crate) fn remote_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    check_transport(&url)?;
    Ok(url)
}

pub(super) fn check_transport(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(format!("{url}: plain http is only allowed to a loopback host; use https")),
        other => Err(format!("{url}: scheme {other:?} is not supported; use https")),
    }
}

fn is_loopback(url: &Url) -> bool {
    // `Url` has already normalised the host (`0x7f.1` is `127.0.0.1`, IPv6 is bracketed).
    let host = url.host_str().unwrap_or_default();
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// The metadata documents to try for `Discovery(text)`: the URL itself if it
/// is a `/.well-known/` URL, else the issuer's locations in the order the MCP
/// authorization spec gives (RFC 8414 path insertion first).
pub(crate) fn discovery_urls(text: &str) -> Result<Vec<Url>, String> {
    let url = remote_url(text)?;
    if url.path().contains("/.well-known/") {
        return Ok(vec![url]);
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{url}: an issuer identifier has no query or fragment (RFC 8414)"));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    let at = |p: String| {
        let mut u = url.clone();
        u.set_path(&p);
        u
    };
    Ok(if path.is_empty() {
        vec![at("/.well-known/oauth-authorization-server".into()), at("/.well-known/openid-configuration".into())]
    } else {
        vec![
            at(format!("/.well-known/oauth-authorization-server{path}")),
            at(format!("/.well-known/openid-configuration{path}")),
            at(format!("{path}/.well-known/openid-configuration")),
        ]
    })
}
