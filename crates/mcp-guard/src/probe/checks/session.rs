//! Session ids and their lifecycle.
//!
//! Ids come from every initialize the probe made (at least three are
//! gathered): each must be visible ASCII, at least 16 characters, and the
//! set must not look predictable. One extra session is opened and ended with
//! DELETE; reusing its id must then get 404. With `--second-token`, the
//! probe's own session must answer the second principal with 404.

use http::{Method, header};

use super::{Checked, Ctx, NotRun, Notes, auth};
use crate::probe::{
    Rule,
    client::Body,
    mcp::{self, Session},
};

/// Session ids gathered for the predictability heuristic.
const SAMPLES: usize = 3;
/// Shorter ids are weak whatever their randomness.
const MIN_LEN: usize = 16;
/// Ids that differ only in this many trailing characters or fewer are predictable.
const FEW: usize = 6;
/// Numeric ids whose consecutive differences are at most this are sequential.
const SEQUENTIAL_GAP: u128 = 1000;

pub(super) async fn check(ctx: &mut Ctx) -> Checked {
    if ctx.session.id.is_none() {
        return Err(NotRun::Skipped("the server issues no Mcp-Session-Id (stateless): nothing to check".into()));
    }
    let mut notes = Notes::default();
    // The session to end with DELETE: initialized, so reusing it is a fair test.
    let mut victim = None;
    for _ in 0..SAMPLES {
        if victim.is_some() && ctx.session_ids.len() >= SAMPLES {
            break;
        }
        let message = mcp::initialize(ctx.id(), &ctx.protocol_version);
        let req = mcp::bearer(mcp::post(&ctx.target, mcp::json_body(&message), "POST initialize"), ctx.token.as_ref());
        let outcome = ctx.send(req).await?;
        auth::record_session_id(ctx, &outcome);
        let Some(answer) = outcome.answer().filter(|a| a.is_success()) else {
            notes.unsure(format!("a further initialize -> {}", ctx.describe(&outcome)));
            break;
        };
        if victim.is_none() {
            let session = auth::session_of(answer, &ctx.protocol_version);
            let note = mcp::bearer(
                mcp::post(&ctx.target, mcp::json_body(&mcp::initialized()), "POST notifications/initialized"),
                ctx.token.as_ref(),
            );
            ctx.send(mcp::in_session(note, &session)).await?;
            victim = Some(session);
        }
    }

    let samples = ctx.session_ids.clone();
    let ids: Vec<&[u8]> = samples.iter().map(|id| id.as_bytes()).collect();
    let shown: Vec<String> = samples.iter().map(mcp::show_id).collect();
    if let Some(bad) = samples.iter().find(|id| !visible_ascii(id.as_bytes())) {
        ctx.report(Rule::SessionIdCharset, &format!("POST initialize -> Mcp-Session-Id \"{}\"", mcp::show_id(bad)));
    }
    match weak_ids(&ids) {
        Some(why) => {
            let evidence = format!("{} initializes -> Mcp-Session-Id {}: {why}", ids.len(), shown.join(", "));
            ctx.report(Rule::SessionIdWeak, &evidence);
        }
        None => notes.push(format!("{} session ids look random", ids.len())),
    }

    if let Some(victim) = victim {
        delete(ctx, &victim, &mut notes).await?;
    }
    cross_principal(ctx, &mut notes).await?;
    notes.finish()
}

/// DELETE ends the session: a request with its id then gets 404.
async fn delete(ctx: &mut Ctx, victim: &Session, notes: &mut Notes) -> Result<(), NotRun> {
    let label = "DELETE with Mcp-Session-Id";
    let mut req = mcp::in_session(
        mcp::bearer(
            crate::probe::client::Req::new(Method::DELETE, ctx.target.url.clone(), Body::Empty, label),
            ctx.token.as_ref(),
        ),
        victim,
    );
    req.responses = 0;
    let outcome = ctx.send(req).await?;
    let described = ctx.describe(&outcome);
    match outcome.status() {
        Some(405) => {
            ctx.report(Rule::DeleteUnsupported, &format!("{label} -> 405"));
            return Ok(());
        }
        Some(200..=299) => {}
        Some(429) => {
            notes.unsure("DELETE -> 429: rate limited, inconclusive");
            return Ok(());
        }
        _ => {
            notes.unsure(format!("DELETE -> {described}: the session may not have ended"));
            return Ok(());
        }
    }
    let message = mcp::request(ctx.id(), "ping", None);
    let reuse = mcp::post(&ctx.target, mcp::json_body(&message), "POST ping with the deleted Mcp-Session-Id");
    let reuse = mcp::in_session(mcp::bearer(reuse, ctx.token.as_ref()), victim);
    let outcome = ctx.send(reuse).await?;
    let after = ctx.describe(&outcome);
    match outcome.status() {
        Some(404) => notes.push(format!("DELETE -> {described}, then the id -> 404")),
        Some(429) => notes.unsure("reusing a deleted session -> 429: rate limited, inconclusive"),
        // Still served: the session outlived its DELETE.
        Some(_) if outcome.is_success() => {
            let evidence = format!("{label} -> {described}, then POST ping with the same Mcp-Session-Id -> {after}");
            ctx.report(Rule::DeleteIneffective, &evidence);
        }
        // Refused, but not with the 404 that tells a client to start over.
        Some(_) => {
            let evidence = format!("{label} -> {described}, then POST ping with the same Mcp-Session-Id -> {after}");
            ctx.report(Rule::DeleteWrongStatus, &evidence);
        }
        None => notes.unsure(format!("reusing a deleted session -> {after}")),
    }
    Ok(())
}

/// The probe's session, asked for by the second principal, must not answer.
async fn cross_principal(ctx: &mut Ctx, notes: &mut Notes) -> Result<(), NotRun> {
    let Some(second) = ctx.second_token.clone() else {
        notes.push("cross-principal: skipped (no --second-token)");
        return Ok(());
    };
    let shown = "Authorization: Bearer [redacted] (--second-token)";
    let label = format!("POST ping in the --token session with {shown}");
    let req = ctx.ping(label.clone()).header(header::AUTHORIZATION, &format!("Bearer {}", second.expose()));
    let outcome = ctx.send(req).await?;
    let described = ctx.describe(&outcome);
    match outcome.status() {
        _ if outcome.is_success() => ctx.report(Rule::CrossPrincipal, &format!("{label} -> {described}")),
        Some(404) => notes.push("cross-principal -> 404"),
        Some(401 | 403) => {
            notes.unsure(format!("cross-principal: the second token is refused ({described}): is it valid?"))
        }
        Some(429) => notes.unsure("cross-principal -> 429: rate limited, inconclusive"),
        _ => notes.push(format!("cross-principal -> {described}")),
    }
    Ok(())
}

/// Visible ASCII only (0x21-0x7E), as the transport spec requires of session ids.
pub(crate) fn visible_ascii(id: &[u8]) -> bool {
    !id.is_empty() && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// Why these ids (from consecutive initializes) look weak, if they do:
/// short, repeated, sequential numbers, or differing only at the end.
pub(crate) fn weak_ids(ids: &[&[u8]]) -> Option<String> {
    let shortest = ids.iter().map(|id| id.len()).min()?;
    if shortest < MIN_LEN {
        return Some(format!("{shortest} characters long (fewer than {MIN_LEN})"));
    }
    if ids.len() < 2 {
        return None;
    }
    if ids.iter().enumerate().any(|(i, a)| ids[..i].contains(a)) {
        return Some("the same id was issued twice".into());
    }
    if sequential(ids, 10) || sequential(ids, 16) {
        return Some("they are sequential numbers".into());
    }
    let common =
        ids.iter().skip(1).fold(shortest, |n, id| n.min(id.iter().zip(ids[0]).take_while(|(a, b)| a == b).count()));
    if common + FEW >= shortest {
        return Some(format!("they differ only in their last {} characters", shortest - common));
    }
    None
}

/// All ids are numbers in `radix` no more than [`SEQUENTIAL_GAP`] apart in turn.
fn sequential(ids: &[&[u8]], radix: u32) -> bool {
    let numbers: Option<Vec<u128>> =
        ids.iter().map(|id| std::str::from_utf8(id).ok().and_then(|s| u128::from_str_radix(s, radix).ok())).collect();
    numbers.is_some_and(|n| n.windows(2).all(|w| w[0].abs_diff(w[1]) <= SEQUENTIAL_GAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weak(ids: &[&str]) -> Option<String> {
        let ids: Vec<&[u8]> = ids.iter().map(|s| s.as_bytes()).collect();
        weak_ids(&ids)
    }

    #[test]
    fn predictable_ids_are_flagged() {
        assert!(weak(&["1000000000000001", "1000000000000002", "1000000000000003"]).is_some());
        assert!(weak(&["9999999999999999", "10000000000000000", "10000000000000001"]).is_some(), "sequential");
        assert!(weak(&["session-00000000000000a1", "session-00000000000000b2", "session-00000000000000c3"]).is_some());
        assert!(weak(&["2f0c1e8a9b7d4c3ea1", "2f0c1e8a9b7d4c3ea1", "77aa1e8a9b7d4c3e01"]).is_some(), "repeat");
        assert!(weak(&["abc123", "def456", "0a1b2c"]).is_some(), "short");
        assert!(weak(&["7", "8", "9"]).is_some());
    }

    #[test]
    fn random_ids_pass() {
        let uuids = [
            "578ebd28-4c7c-463c-98b7-0753a1affc86",
            "f60c4204-ef4e-4d1c-b7dd-deea75b03b93",
            "3161a3f5-cc4d-4ebf-9d90-8eb669562b2b",
        ];
        assert_eq!(weak(&uuids), None);
        let hex = [
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
            "fd61a03af4f77d870fc21e05e7e80678095c92d808cfb3b5c279ee04c74aca13",
        ];
        assert_eq!(weak(&hex), None);
        assert_eq!(weak(&[]), None);
    }

    #[test]
    fn session_id_charset() {
        assert!(visible_ascii(b"abc-DEF_123.~!"));
        assert!(!visible_ascii(b"abc def"));
        assert!(!visible_ascii(b"abc\x7f"));
        assert!(!visible_ascii("caf\u{e9}".as_bytes()));
        assert!(!visible_ascii(b""));
    }
}
