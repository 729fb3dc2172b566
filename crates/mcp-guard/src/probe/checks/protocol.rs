//! `MCP-Protocol-Version`: an unsupported version in a session must get
//! 400, and an initialize whose header contradicts its body should be refused.

use mcp_guard_layers::transport::MCP_PROTOCOL_VERSION;

use super::{Checked, Ctx, Notes, auth};
use crate::probe::{Rule, client::Outcome, mcp};

/// A version no server supports.
const UNSUPPORTED: &str = "1999-01-01";

pub(super) async fn check(ctx: &mut Ctx) -> Checked {
    let mut notes = Notes::default();

    let label = format!("POST ping (in a session) with MCP-Protocol-Version: {UNSUPPORTED}");
    let req = ctx.ping(label.clone()).header(&MCP_PROTOCOL_VERSION, UNSUPPORTED);
    let outcome = ctx.send(req).await?;
    let described = ctx.describe(&outcome);
    match outcome.status() {
        Some(400) => notes.push(format!("{UNSUPPORTED} -> 400")),
        Some(429) => notes.unsure(format!("{UNSUPPORTED} -> 429: rate limited, inconclusive")),
        Some(_) => ctx.report(Rule::UnsupportedVersionAccepted, &format!("{label} -> {described}")),
        None => notes.unsure(format!("{UNSUPPORTED} -> {described}")),
    }

    // The header names another revision than the body asks for.
    let body_version = ctx.protocol_version.clone();
    let header_version = if body_version == "2025-03-26" { "2025-06-18" } else { "2025-03-26" };
    let label =
        format!("POST initialize with protocolVersion {body_version} and MCP-Protocol-Version: {header_version}");
    let message = mcp::initialize(ctx.id(), &body_version);
    let req =
        mcp::post(&ctx.target, mcp::json_body(&message), label.clone()).header(&MCP_PROTOCOL_VERSION, header_version);
    let req = mcp::bearer(req, ctx.token.as_ref());
    let outcome: Outcome = ctx.send(req).await?;
    // An accepted one opened a session: its id is one more sample for the session checks.
    auth::record_session_id(ctx, &outcome);
    let described = ctx.describe(&outcome);
    if outcome.is_success() {
        ctx.report(Rule::VersionMismatchAccepted, &format!("{label} -> {described}"));
    } else if outcome.status() == Some(429) {
        notes.unsure("mismatched initialize -> 429: rate limited, inconclusive");
    } else {
        notes.push(format!("mismatched initialize -> {described}"));
    }
    notes.finish()
}
