//! Discovery, exposure and authentication.
//!
//! Discovery initializes without credentials first: success on a
//! non-loopback host is `exposure/unauthenticated`; a 401 must carry a
//! `WWW-Authenticate` challenge naming `resource_metadata` (RFC 9728). Then,
//! with `--token`, it initializes again to get the session the other checks
//! use. The auth family then fetches the advertised metadata and tries two
//! malformed tokens on that session.

use http::{Method, StatusCode, header};
use reqwest::Url;
use serde_json::Value;

use super::{Checked, Ctx, NotRun, Notes};
use crate::probe::{
    Family, ProbeError, Rule, Severity,
    client::{Answer, Body, Outcome, Req},
    mcp::{self, Session},
};

/// Establishes the session; concludes the exposure family. Fails when
/// nothing at the URL answers an MCP initialize.
pub(super) async fn discover(ctx: &mut Ctx) -> Result<(), ProbeError> {
    let url = ctx.target.given.clone();
    let unreachable = |reason: String| ProbeError::Unreachable { url: url.clone(), reason };
    let not_mcp = |reason: String| ProbeError::NotMcp { url: url.clone(), reason };
    let too_small = || ProbeError::Invalid("--max-requests is too small to initialize a session".into());

    let mut anonymous = initialize(ctx, None).await.map_err(|_| too_small())?;
    // One redirect within the origin (`/mcp` to `/mcp/`) is followed; others never are.
    if let Some(location) = redirect(&anonymous).and_then(|l| ctx.target.url.join(l).ok()) {
        if !ctx.target.same_origin(&location) {
            return Err(not_mcp(format!("it redirects to {location} (another origin: not followed)")));
        }
        ctx.target.given = location.to_string();
        ctx.target.url = location;
        anonymous = initialize(ctx, None).await.map_err(|_| too_small())?;
    }
    match &anonymous {
        Outcome::Failed { .. } | Outcome::Timeout(None) => {
            let reason = ctx.describe(&anonymous);
            let hint =
                if reason.contains("certificate") { " (--insecure accepts self-signed certificates)" } else { "" };
            return Err(unreachable(format!("{reason}{hint}")));
        }
        _ => {}
    }
    let label = "POST initialize without Authorization";
    let anonymous_ok = anonymous.is_success();
    if let Some(answer) = anonymous.answer().filter(|a| a.is_success()) {
        ctx.session = session_of(answer, &ctx.protocol_version);
        if ctx.target.loopback {
            ctx.conclude(Family::Exposure, Ok("no authentication required, but the host is loopback".into()));
            let evidence = format!("{label} -> {}: no authentication required (loopback host)", answer.describe());
            ctx.report_as(Rule::NoChallenge, Severity::Info, &evidence);
        } else {
            ctx.report(Rule::Unauthenticated, &format!("{label} -> {}", answer.describe()));
            ctx.conclude(Family::Exposure, Ok("initialize without credentials succeeds from the network".into()));
        }
    } else if let Some(answer) = anonymous.answer().filter(|a| matches!(a.status.as_u16(), 401 | 403)) {
        ctx.auth_required = true;
        ctx.conclude(Family::Exposure, Ok(format!("initialize without credentials -> {}", answer.status.as_u16())));
        if answer.status == StatusCode::UNAUTHORIZED {
            challenge(ctx, answer, label);
        }
    }

    if let Some(token) = ctx.token.clone() {
        let with_token = initialize(ctx, Some(&token)).await.map_err(|_| too_small())?;
        match with_token.answer().filter(|a| a.is_success()) {
            Some(answer) => ctx.session = session_of(answer, &ctx.protocol_version),
            // No credentials needed and the token refused: go on without it.
            None if anonymous_ok => ctx.token = None,
            None => return Err(not_mcp(format!("POST initialize with --token -> {}", ctx.describe(&with_token)))),
        }
    } else if !anonymous_ok {
        let hint = if ctx.auth_required { " (it requires authentication: give --token)" } else { "" };
        return Err(not_mcp(format!("{label} -> {}{hint}", ctx.describe(&anonymous))));
    }
    if !ctx.results.contains_key(&Family::Exposure) {
        ctx.conclude(Family::Exposure, Ok(format!("initialize without credentials -> {}", ctx.describe(&anonymous))));
    }
    // The server may refuse requests in a session not yet initialized.
    let note = ctx.session_post(&mcp::initialized(), "POST notifications/initialized");
    if ctx.send(note).await.is_err() {
        return Err(too_small());
    }
    Ok(())
}

/// Longest `Retry-After` honoured for a rate-limited initialize.
const MAX_INITIAL_WAIT: u64 = 5;

/// Sends an initialize (with `token` if given); records the session id it
/// returns. A 429 (say, a second probe right after a first) is retried once
/// after its `Retry-After` (at most 5 s), so back-to-back runs do not fail.
async fn initialize(ctx: &mut Ctx, token: Option<&crate::secret::Secret>) -> Result<Outcome, super::Exhausted> {
    let label = if token.is_some() { "POST initialize" } else { "POST initialize without Authorization" };
    let mut outcome = None;
    for attempt in 0..2 {
        let message = mcp::initialize(ctx.id(), &ctx.protocol_version);
        let req = mcp::bearer(mcp::post(&ctx.target, mcp::json_body(&message), label), token);
        let sent = ctx.send(req).await?;
        let wait = sent.answer().filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS).map(|a| {
            a.headers.get("retry-after").and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok()).unwrap_or(1)
        });
        outcome = Some(sent);
        match wait {
            Some(secs) if attempt == 0 && secs <= MAX_INITIAL_WAIT => {
                tokio::time::sleep(std::time::Duration::from_secs(secs.max(1))).await;
            }
            _ => break,
        }
    }
    let outcome = outcome.ok_or(super::Exhausted)?;
    record_session_id(ctx, &outcome);
    Ok(outcome)
}

/// Keeps the session id of a successful initialize as a sample.
pub(super) fn record_session_id(ctx: &mut Ctx, outcome: &Outcome) {
    if let Some(id) = outcome.answer().filter(|a| a.is_success()).and_then(|a| a.headers.get("mcp-session-id")) {
        ctx.session_ids.push(id.clone());
    }
}

/// The session an initialize answer opened.
pub(super) fn session_of(answer: &Answer, asked: &str) -> Session {
    let version = answer.result().and_then(|r| r.get("protocolVersion")).and_then(Value::as_str).unwrap_or(asked);
    Session { id: answer.headers.get("mcp-session-id").cloned(), version: version.to_owned() }
}

/// The `Location` of a 307 or 308 (methods and bodies kept: safe to repeat).
fn redirect(outcome: &Outcome) -> Option<&str> {
    let answer = outcome.answer()?;
    matches!(answer.status.as_u16(), 307 | 308).then(|| answer.header(header::LOCATION)).flatten()
}

/// Checks the 401's challenge for `resource_metadata`.
fn challenge(ctx: &mut Ctx, answer: &Answer, label: &str) {
    let challenges: Vec<&str> =
        answer.headers.get_all(header::WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).collect();
    match challenges.iter().find_map(|c| resource_metadata(c)) {
        Some(url) => ctx.metadata_url = Some(url),
        None => {
            let shown = if challenges.is_empty() { "no WWW-Authenticate".to_owned() } else { challenges.join(", ") };
            ctx.report(Rule::NoChallenge, &format!("{label} -> 401 with {shown}"));
        }
    }
}

/// The `resource_metadata` parameter of a challenge, quoted or not.
pub(super) fn resource_metadata(challenge: &str) -> Option<String> {
    let at = challenge.to_ascii_lowercase().find("resource_metadata=")?;
    let value = challenge[at + "resource_metadata=".len()..].trim_start();
    let value = match value.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => value.split([',', ' ']).next()?,
    };
    (!value.is_empty()).then(|| value.to_owned())
}

/// The auth family: metadata, then malformed tokens.
pub(super) async fn check(ctx: &mut Ctx) -> Checked {
    let mut notes = Notes::default();
    if !ctx.auth_required {
        let where_ = if ctx.target.loopback { "loopback host" } else { "see exposure" };
        return Ok(format!("the server requires no authentication ({where_})"));
    }
    match ctx.metadata_url.clone() {
        Some(url) => metadata(ctx, &url, &mut notes).await?,
        None => notes.push("no resource_metadata to fetch"),
    }
    let Some(token) = ctx.token.clone() else {
        return Err(NotRun::Skipped("the server requires authentication and no --token was given".into()));
    };
    let tampered = format!("Bearer {}", mcp::tampered(token.expose()));
    for (shown, value) in [
        ("Authorization: Bearer [redacted] with its last characters changed", tampered.as_str()),
        ("Authorization: Bearer not-a-token", "Bearer not-a-token"),
    ] {
        let label = format!("POST ping with {shown}");
        let req = ctx.ping(label.clone()).header(header::AUTHORIZATION, value);
        let outcome = ctx.send(req).await?;
        let described = ctx.describe(&outcome);
        if outcome.is_success() {
            ctx.report(Rule::MalformedTokenAccepted, &format!("{label} -> {described}"));
        } else {
            notes.push(format!("{shown} -> {described}"));
        }
    }
    notes.finish()
}

/// Fetches and validates the Protected Resource Metadata document.
async fn metadata(ctx: &mut Ctx, raw: &str, notes: &mut Notes) -> Result<(), NotRun> {
    let Ok(url) = ctx.target.url.join(raw) else {
        ctx.report(Rule::MetadataInvalid, &format!("resource_metadata {raw:?} is not a URL"));
        return Ok(());
    };
    if !ctx.target.same_host(&url) && !ctx.follow_metadata {
        notes.push(format!("metadata {url} is on another host: not fetched (--follow-metadata fetches it)"));
        return Ok(());
    }
    ctx.client.approve(url.clone());
    let label = format!("GET {url}");
    let mut req =
        Req::new(Method::GET, url.clone(), Body::Empty, label.clone()).header(header::ACCEPT, "application/json");
    req.responses = 0;
    let outcome = ctx.send(req).await?;
    let problem = match outcome.answer() {
        Some(answer) if answer.status.is_success() => invalid_metadata(answer, &ctx.target.url),
        _ => Some(ctx.describe(&outcome)),
    };
    match problem {
        Some(problem) => ctx.report(Rule::MetadataInvalid, &format!("{label} -> {problem}")),
        None => notes.push(format!("metadata at {url} is valid")),
    }
    Ok(())
}

/// What is wrong with a fetched metadata document, if anything.
fn invalid_metadata(answer: &Answer, probed: &Url) -> Option<String> {
    let status = answer.status.as_u16();
    let Ok(Value::Object(document)) = serde_json::from_slice::<Value>(&answer.body) else {
        return Some(format!("{status}, not a JSON object"));
    };
    let resource = document.get("resource").and_then(Value::as_str).unwrap_or_default();
    let same =
        Url::parse(resource).is_ok_and(|r| r.as_str().trim_end_matches('/') == probed.as_str().trim_end_matches('/'));
    if !same {
        return Some(format!("{status} with resource {resource:?}, not the probed URL {probed}"));
    }
    let servers = document.get("authorization_servers").and_then(Value::as_array);
    if servers.is_none_or(|s| s.is_empty()) {
        return Some(format!("{status} listing no authorization_servers"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_metadata_is_read_from_challenges() {
        let c = r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="a b""#;
        assert_eq!(
            resource_metadata(c).as_deref(),
            Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            resource_metadata("Bearer resource_metadata=https://x/m, error=\"invalid_token\"").as_deref(),
            Some("https://x/m")
        );
        assert_eq!(resource_metadata(r#"Bearer realm="mcp""#), None);
        assert_eq!(resource_metadata(r#"Bearer resource_metadata="""#), None);
    }

    fn answer(body: &'static str) -> Answer {
        Answer { status: StatusCode::OK, headers: http::HeaderMap::new(), body: body.into(), messages: Vec::new() }
    }

    #[test]
    fn metadata_documents_are_validated() {
        let probed = Url::parse("http://127.0.0.1:8001/mcp").unwrap();
        let good = r#"{"resource":"http://127.0.0.1:8001/mcp","authorization_servers":["https://auth.example.com"]}"#;
        assert_eq!(invalid_metadata(&answer(good), &probed), None);
        let slash = r#"{"resource":"http://127.0.0.1:8001/mcp/","authorization_servers":["https://a"]}"#;
        assert_eq!(invalid_metadata(&answer(slash), &probed), None);
        for bad in [
            "<html>",
            "[]",
            r#"{"resource":"https://other.example/mcp","authorization_servers":["https://a"]}"#,
            r#"{"resource":"http://127.0.0.1:8001/mcp","authorization_servers":[]}"#,
            r#"{"resource":"http://127.0.0.1:8001/mcp"}"#,
        ] {
            assert!(invalid_metadata(&answer(bad), &probed).is_some(), "{bad}");
        }
    }
}
