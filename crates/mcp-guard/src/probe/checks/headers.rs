//! Security headers, judged on answers the other checks already got: the
//! first success and the first error from the endpoint (errors are where
//! servers most often forget them), and every answer's `Server` and
//! `X-Powered-By`. No requests of its own.

use http::{HeaderMap, header};

use super::{Checked, Ctx, NotRun};
use crate::probe::{Rule, client::Seen};

pub(super) fn check(ctx: &mut Ctx) -> Checked {
    let endpoint: Vec<&Seen> = ctx
        .client
        .seen
        .iter()
        .filter(|s| s.method == http::Method::POST && s.url.path() == ctx.target.url.path())
        .collect();
    let success = endpoint.iter().find(|s| s.status.is_success());
    let error = endpoint.iter().find(|s| s.status.is_client_error() || s.status.is_server_error());
    let mut lacking = Vec::new();
    let mut judged = Vec::new();
    for seen in [success, error].into_iter().flatten() {
        let which = format!("the {} to {}", seen.status.as_u16(), seen.label);
        let missing = missing(&seen.headers);
        if !missing.is_empty() {
            lacking.push(format!("{which} lacks {}", missing.join(", ")));
        }
        judged.push(which);
    }
    let mut versions = Vec::new();
    for seen in &ctx.client.seen {
        for name in [header::SERVER, http::HeaderName::from_static("x-powered-by")] {
            let Some(value) = seen.headers.get(&name).and_then(|v| v.to_str().ok()) else { continue };
            let shown = format!("{}: {value}", if name == header::SERVER { "Server" } else { "X-Powered-By" });
            if value.chars().any(|c| c.is_ascii_digit()) && !versions.iter().any(|v: &String| v.starts_with(&shown)) {
                versions.push(format!("{shown} on the {} to {}", seen.status.as_u16(), seen.label));
            }
        }
    }
    if judged.is_empty() {
        return Err(NotRun::Skipped("no answers from the endpoint to judge".into()));
    }
    if !lacking.is_empty() {
        ctx.report(Rule::HeadersMissing, &lacking.join("; "));
    }
    if !versions.is_empty() {
        ctx.report(Rule::ServerVersion, &versions.join("; "));
    }
    Ok(format!("judged {}", judged.join(" and ")))
}

/// The required headers `headers` lacks.
pub(crate) fn missing(headers: &HeaderMap) -> Vec<&'static str> {
    let value = |name: &header::HeaderName| {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",").to_ascii_lowercase()
    };
    let mut missing = Vec::new();
    if value(&header::X_CONTENT_TYPE_OPTIONS).trim() != "nosniff" {
        missing.push("X-Content-Type-Options: nosniff");
    }
    if !headers.contains_key(header::X_FRAME_OPTIONS)
        && !value(&header::CONTENT_SECURITY_POLICY).contains("frame-ancestors")
    {
        missing.push("X-Frame-Options (or CSP frame-ancestors)");
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        missing.push("Cache-Control");
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(missing(&h).len(), 3);
        h.insert(header::X_CONTENT_TYPE_OPTIONS, "nosniff".parse().unwrap());
        h.insert(header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'".parse().unwrap());
        h.insert(header::CACHE_CONTROL, "no-store".parse().unwrap());
        assert!(missing(&h).is_empty());
        h.insert(header::CONTENT_SECURITY_POLICY, "default-src 'none'".parse().unwrap());
        assert_eq!(missing(&h), ["X-Frame-Options (or CSP frame-ancestors)"]);
        h.insert(header::X_FRAME_OPTIONS, "DENY".parse().unwrap());
        assert!(missing(&h).is_empty());
    }
}
