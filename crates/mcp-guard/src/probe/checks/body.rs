//! Request body limits: a ping padded with JSON whitespace (still a valid
//! ping, so only its size can make a server refuse it) grows 64 KiB, 1 MiB,
//! 4 MiB, 16 MiB (never past `--max-body-probe`), first with
//! `Content-Length`, then chunked. Each mode stops at its first 4xx: the
//! limit. A mode that reaches the top with only successes has no limit;
//! a 5xx, a dropped connection or a timeout on the way is instability.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Checked, Ctx, NotRun, Notes};
use crate::probe::{
    Rule,
    client::{Body, Outcome},
    mcp,
};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
/// The sizes tried, in order.
const STEPS: [u64; 4] = [64 * KIB, MIB, 4 * MIB, 16 * MIB];

pub(super) async fn check(ctx: &mut Ctx) -> Checked {
    if ctx.max_body_probe == 0 {
        return Err(NotRun::Skipped("--max-body-probe is 0".into()));
    }
    if ctx.client.remaining() == 0 {
        return Err(NotRun::Budget);
    }
    if !ctx.ping_ok {
        return Err(NotRun::Error("no plain ping succeeded in the session, so a refusal would say nothing".into()));
    }
    let steps = steps(ctx.max_body_probe);
    let mut notes = Notes::default();
    let mut unlimited = Vec::new();
    for chunked in [false, true] {
        let mode = if chunked { "chunked" } else { "Content-Length" };
        let mut reached_top = true;
        for &size in &steps {
            let padded = padded_ping(ctx.id(), size);
            let body = if chunked { Body::Chunked(padded) } else { Body::Full(padded) };
            let label = format!("POST ping padded to {} ({mode})", human(size));
            let req = mcp::post(&ctx.target, body, label.clone());
            let req = mcp::in_session(mcp::bearer(req, ctx.token.as_ref()), &ctx.session);
            let outcome = ctx.send(req).await?;
            let described = ctx.describe(&outcome);
            let status = outcome.status().unwrap_or_default();
            match &outcome {
                Outcome::Answer(_) if status == 429 => {
                    notes.unsure(format!("{mode}: 429 at {}: rate limited, inconclusive", human(size)));
                }
                Outcome::Answer(_) if (400..500).contains(&status) => {
                    notes.push(format!("{mode}: {status} at {}", human(size)));
                }
                Outcome::Answer(_) if (200..300).contains(&status) => continue,
                Outcome::Answer(_) if status < 500 => {
                    // 1xx/3xx: not a refusal, not a success either.
                    notes.unsure(format!("{mode}: {described} at {}", human(size)));
                }
                _ => ctx.report(Rule::BodyLimitUnstable, &format!("{label} -> {described}")),
            }
            reached_top = false;
            break;
        }
        if reached_top {
            unlimited.push(mode);
        }
    }
    let top = steps.last().copied().unwrap_or_default();
    if !unlimited.is_empty() && top < STEPS[STEPS.len() - 1] {
        // Below the standard top the server's limit may simply be higher.
        notes.unsure(format!(
            "{}: no refusal up to the --max-body-probe cap of {}: inconclusive",
            unlimited.join(" and "),
            human(top)
        ));
    } else if !unlimited.is_empty() {
        let sizes: Vec<String> = steps.iter().map(|s| human(*s)).collect();
        let evidence =
            format!("POST ping padded to {} ({}) -> all 2xx, no 413", sizes.join(", "), unlimited.join(" and "));
        ctx.report(Rule::BodyLimitMissing, &evidence);
    }
    notes.finish()
}

/// The sizes to try under `max`: the standard steps, ending at `max` (at most 16 MiB).
pub(crate) fn steps(max: u64) -> Vec<u64> {
    let top = max.min(STEPS[STEPS.len() - 1]);
    let mut steps: Vec<u64> = STEPS.into_iter().filter(|s| *s <= top).collect();
    if steps.last() != Some(&top) {
        steps.push(top);
    }
    steps
}

/// `{"jsonrpc":"2.0","id":N,"method":"ping"   …   }`: `size` bytes, a valid ping.
pub(crate) fn padded_ping(id: u64, size: u64) -> Bytes {
    let head = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping""#);
    let size = usize::try_from(size).unwrap_or(usize::MAX).max(head.len() + 1);
    let mut body = BytesMut::with_capacity(size);
    body.put_slice(head.as_bytes());
    body.put_bytes(b' ', size - head.len() - 1);
    body.put_u8(b'}');
    body.freeze()
}

/// `64 KiB`, `16 MiB`, `1000 B`.
pub(crate) fn human(size: u64) -> String {
    if size >= MIB && size.is_multiple_of(MIB) {
        format!("{} MiB", size / MIB)
    } else if size >= KIB && size.is_multiple_of(KIB) {
        format!("{} KiB", size / KIB)
    } else {
        format!("{size} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_stop_at_the_limit() {
        assert_eq!(steps(16 * MIB), STEPS);
        assert_eq!(steps(64 * MIB), STEPS);
        assert_eq!(steps(2 * MIB), [64 * KIB, MIB, 2 * MIB]);
        assert_eq!(steps(1000), [1000]);
    }

    #[test]
    fn padded_pings_are_valid_json_of_the_size() {
        for size in [10, 64 * KIB, MIB] {
            let body = padded_ping(7, size);
            assert!(body.len() as u64 >= size.min(body.len() as u64));
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["method"], "ping");
        }
        assert_eq!(padded_ping(7, MIB).len() as u64, MIB);
        assert_eq!(human(64 * KIB), "64 KiB");
        assert_eq!(human(16 * MIB), "16 MiB");
        assert_eq!(human(1000), "1000 B");
    }
}
