//! DNS rebinding (foreign `Origin`, foreign `Host`, `Origin: null`) and CORS.
//!
//! A page on `evil.example` whose name the attacker re-points at the
//! server's address reaches it with `Host: evil.example` and
//! `Origin: http://evil.example`; a sandboxed frame sends `Origin: null`.
//! Each is a ping in the probe's session: a successful MCP answer means the
//! server would serve that page. A plain ping first is the baseline: if even
//! it fails, refusals say nothing.

use http::{HeaderMap, Method, header};

use super::{Checked, Ctx, NotRun, Notes};
use crate::probe::{
    Rule, Severity,
    client::{Body, Req},
};

/// The foreign site of the rebinding and CORS checks.
const EVIL_HTTP: &str = "http://evil.example";
const EVIL_HTTPS: &str = "https://evil.example";

pub(super) async fn check(ctx: &mut Ctx) -> Checked {
    let baseline = ctx.ping("POST ping");
    let outcome = ctx.send(baseline).await?;
    if !outcome.is_success() {
        return Err(NotRun::Error(format!(
            "a plain ping in the session -> {}: nothing to compare with",
            ctx.describe(&outcome)
        )));
    }
    ctx.ping_ok = true;
    let mut notes = Notes::default();
    let foreign_host_severity = if ctx.target.loopback { Severity::High } else { Severity::Medium };
    for (rule, name, value) in [
        (Rule::ForeignOrigin, header::ORIGIN, EVIL_HTTP),
        (Rule::ForeignHost, header::HOST, "evil.example"),
        (Rule::NullOrigin, header::ORIGIN, "null"),
    ] {
        let shown = format!("{}: {value}", if name == header::HOST { "Host" } else { "Origin" });
        let label = format!("POST ping with {shown}");
        let req = ctx.ping(label.clone()).header(name.clone(), value);
        let outcome = ctx.send(req).await?;
        let described = ctx.describe(&outcome);
        // `Origin: null` echoed back is the null-origin finding's doing, not reflection of any origin.
        if let (Some(answer), true) = (outcome.answer(), value == EVIL_HTTP) {
            ctx.origin_answers.push((label.clone(), value.to_owned(), answer.headers.clone()));
        }
        if outcome.is_success() {
            let severity = if rule == Rule::ForeignHost { foreign_host_severity } else { rule.default_severity() };
            ctx.report_as(rule, severity, &format!("{label} -> {described}"));
        } else if outcome.status() == Some(429) {
            notes.unsure(format!("{shown} -> 429: rate limited, inconclusive (try --delay)"));
        } else {
            notes.push(format!("{shown} -> {described}"));
        }
    }
    notes.finish()
}

/// CORS: a preflight and a real request from `https://evil.example`, and
/// the answers to the rebinding check's foreign origins.
pub(super) async fn cors(ctx: &mut Ctx) -> Checked {
    let label = format!("OPTIONS preflight with Origin: {EVIL_HTTPS}");
    let mut preflight = Req::new(Method::OPTIONS, ctx.target.url.clone(), Body::Empty, label.clone())
        .header(header::ORIGIN, EVIL_HTTPS)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization, content-type, mcp-session-id, mcp-protocol-version",
        );
    preflight.responses = 0;
    let outcome = ctx.send(preflight).await?;
    if let Some(answer) = outcome.answer() {
        ctx.origin_answers.push((label, EVIL_HTTPS.to_owned(), answer.headers.clone()));
    }
    let label = format!("POST ping with Origin: {EVIL_HTTPS}");
    let req = ctx.ping(label.clone()).header(header::ORIGIN, EVIL_HTTPS);
    let outcome = ctx.send(req).await?;
    if let Some(answer) = outcome.answer() {
        ctx.origin_answers.push((label, EVIL_HTTPS.to_owned(), answer.headers.clone()));
    }
    let answers = std::mem::take(&mut ctx.origin_answers);
    let mut allowed = Vec::new();
    for (label, origin, headers) in &answers {
        let (reflected, wildcard) = judge(origin, headers);
        let acao = headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).and_then(|v| v.to_str().ok()).unwrap_or("");
        if reflected {
            ctx.report(Rule::OriginReflected, &format!("{label} -> Access-Control-Allow-Origin: {acao}"));
        }
        if wildcard {
            let evidence =
                format!("{label} -> Access-Control-Allow-Origin: * with Access-Control-Allow-Credentials: true");
            ctx.report(Rule::WildcardCredentials, &evidence);
        }
        if !acao.is_empty() {
            allowed.push(format!("{label} -> Access-Control-Allow-Origin: {acao}"));
        }
    }
    let detail = if allowed.is_empty() {
        format!("no Access-Control-Allow-Origin for foreign origins ({} answers)", answers.len())
    } else {
        allowed.join("; ")
    };
    ctx.origin_answers = answers;
    Ok(detail)
}

/// (`Access-Control-Allow-Origin` echoes `origin`, `*` with credentials).
fn judge(origin: &str, headers: &HeaderMap) -> (bool, bool) {
    let value = |name| headers.get(name).and_then(|v: &http::HeaderValue| v.to_str().ok()).map(str::trim);
    let acao = value(header::ACCESS_CONTROL_ALLOW_ORIGIN);
    let credentials = value(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    (acao.is_some_and(|a| a.eq_ignore_ascii_case(origin)), acao == Some("*") && credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), http::HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn cors_answers_are_judged() {
        let reflected = headers(&[("access-control-allow-origin", "https://evil.example")]);
        assert_eq!(judge(EVIL_HTTPS, &reflected), (true, false));
        let wildcard = headers(&[("access-control-allow-origin", "*"), ("access-control-allow-credentials", "true")]);
        assert_eq!(judge(EVIL_HTTPS, &wildcard), (false, true));
        let star = headers(&[("access-control-allow-origin", "*")]);
        assert_eq!(judge(EVIL_HTTPS, &star), (false, false));
        let own = headers(&[("access-control-allow-origin", "https://app.example.com")]);
        assert_eq!(judge(EVIL_HTTPS, &own), (false, false));
        assert_eq!(judge(EVIL_HTTPS, &HeaderMap::new()), (false, false));
    }
}
