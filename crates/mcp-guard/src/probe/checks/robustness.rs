//! Malformed input: each must get a prompt 4xx (or an in-protocol error),
//! never a 5xx, a dropped connection or silence; and no answer may carry a
//! stack trace (every body the probe reads is scanned, by the client).

use bytes::Bytes;

use super::{Checked, Ctx, Notes};
use crate::probe::{
    Rule,
    client::{Body, Outcome},
    mcp,
};

/// Nesting depth of the deep-array case.
const DEPTH: usize = 10_000;
/// The first revision that forbids JSON-RPC batches.
const NO_BATCHES_FROM: &str = "2025-06-18";

/// One malformed request: how evidence names it, the body, responses to wait for.
fn cases(ctx: &mut Ctx) -> Vec<(&'static str, Bytes, usize)> {
    let mut cases = Vec::new();
    let id = ctx.id();
    cases.push(("malformed JSON", Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping",,}}"#)), 1));
    let id = ctx.id();
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"ping","params":{{"deep":{}{}}}}}"#,
        "[".repeat(DEPTH),
        "]".repeat(DEPTH)
    );
    cases.push(("a 10,000-deep nested array", Bytes::from(deep), 1));
    // Dates compare as strings; a session on an older revision may batch.
    if ctx.session.version.as_str() >= NO_BATCHES_FROM {
        let batch =
            serde_json::Value::Array(vec![mcp::request(ctx.id(), "ping", None), mcp::request(ctx.id(), "ping", None)]);
        cases.push(("a JSON-RPC batch of 2 pings", Bytes::from(batch.to_string()), 2));
    }
    let id = ctx.id();
    let mut utf8 = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping","params":{{"text":""#).into_bytes();
    utf8.extend_from_slice(b"\xff\xfe\xc3\x28");
    utf8.extend_from_slice(br#""}}"#);
    cases.push(("invalid UTF-8", Bytes::from(utf8), 1));
    let message = mcp::request(ctx.id(), "mcp-guard-probe/no-such-method", Some(serde_json::json!({})));
    cases.push(("an unknown method", Bytes::from(message.to_string()), 1));
    cases
}

pub(super) async fn check(ctx: &mut Ctx) -> Checked {
    let mut notes = Notes::default();
    let version = ctx.session.version.clone();
    for (what, body, responses) in cases(ctx) {
        let label = format!("POST {what}");
        let req = mcp::post(&ctx.target, Body::Full(body), label.clone());
        let mut req = mcp::in_session(mcp::bearer(req, ctx.token.as_ref()), &ctx.session);
        req.responses = responses;
        let outcome = ctx.send(req).await?;
        let described = ctx.describe(&outcome);
        match &outcome {
            Outcome::Answer(answer) if answer.status.is_server_error() => {
                ctx.report(Rule::ServerError, &format!("{label} -> {described}"));
            }
            Outcome::Answer(answer) if responses == 2 && answer.status.is_success() && answer.result().is_some() => {
                let results = answer.messages.iter().filter(|m| m.get("result").is_some()).count();
                let evidence = format!("{label} under {version} -> {} with {results} results", answer.status.as_u16());
                ctx.report(Rule::BatchAccepted, &evidence);
            }
            Outcome::Answer(_) => notes.push(format!("{what} -> {described}")),
            Outcome::Timeout(_) => ctx.report(Rule::Hang, &format!("{label} -> {described}")),
            // A reset or a refused connection after malformed input: the server broke on it.
            Outcome::Failed { .. } => ctx.report(Rule::ServerError, &format!("{label} -> {described}")),
        }
    }
    if version.as_str() < NO_BATCHES_FROM {
        notes.push(format!("batches not tried: the session's version {version} allows them"));
    }
    notes.finish()
}

/// Every stack trace the client found in any answer.
pub(super) fn stack_traces(ctx: &mut Ctx) -> Checked {
    let traces = std::mem::take(&mut ctx.client.traces);
    if traces.is_empty() {
        return Ok(format!("no stack traces in {} answers", ctx.client.seen.len()));
    }
    ctx.report(Rule::StackTrace, &traces.join("; "));
    Ok(format!("stack traces in {} answers", traces.len()))
}
