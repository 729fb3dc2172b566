//! Rate limiting: pings in the session, one after another, until a 429 or
//! the budget ends (at least 50 pings without a 429 make a finding: fewer,
//! cut short by the budget, prove nothing). Runs last: it spends what the other checks left, and once
//! a server limits the probe every later answer would be a 429. A 429 some
//! earlier check already got answers the question without a burst.

use std::{collections::BTreeMap, time::Instant};

use http::header;

use super::{Checked, Ctx, NotRun};
use crate::probe::{Rule, client::Outcome};

/// A burst shorter than this says nothing about a limit.
const MIN_BURST: usize = 10;
/// Fewer pings than this without a 429 (the budget ended the burst) conclude nothing.
const CONCLUSIVE_BURST: usize = 50;
/// A burst shorter than this gets a caveat in its evidence.
const CONVINCING_BURST: usize = 100;
/// Consecutive failed pings that end the burst.
const MAX_FAILURES: usize = 3;

pub(super) async fn check(ctx: &mut Ctx) -> Checked {
    if let Some(seen) = ctx.client.seen.iter().find(|s| s.status.as_u16() == 429) {
        let (label, retry_after) = (seen.label.clone(), seen.headers.get(header::RETRY_AFTER).cloned());
        return Ok(judge(ctx, &format!("{label} (before the burst)"), retry_after.as_ref()));
    }
    let available = ctx.client.remaining();
    if available < MIN_BURST {
        return Err(NotRun::Skipped(format!(
            "{available} requests left in the budget; a burst needs at least {MIN_BURST} (raise --max-requests)"
        )));
    }
    if !ctx.ping_ok {
        return Err(NotRun::Error("no plain ping succeeded in the session: nothing to burst".into()));
    }
    let started = Instant::now();
    let (mut sent, mut failures) = (0usize, 0usize);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    loop {
        let req = ctx.ping("POST ping (burst)");
        let Ok(outcome) = ctx.send(req).await else { break };
        sent += 1;
        match &outcome {
            Outcome::Answer(answer) if answer.status.as_u16() == 429 => {
                let label = format!("POST ping (request {sent} of a burst)");
                let retry_after = answer.headers.get(header::RETRY_AFTER).cloned();
                let detail = judge(ctx, &label, retry_after.as_ref());
                return Ok(format!("{detail}, {:.1}s into the burst", started.elapsed().as_secs_f64()));
            }
            Outcome::Answer(answer) => {
                failures = 0;
                *statuses.entry(answer.status.as_u16()).or_default() += 1;
            }
            _ => {
                failures += 1;
                if failures >= MAX_FAILURES {
                    return Err(NotRun::Error(format!(
                        "{MAX_FAILURES} pings of the burst in a row failed ({})",
                        ctx.describe(&outcome)
                    )));
                }
            }
        }
    }
    let counts: Vec<String> = statuses.iter().map(|(status, n)| format!("{n} x {status}")).collect();
    let mut evidence = format!(
        "{sent} pings in a session in {:.1}s -> no 429 ({})",
        started.elapsed().as_secs_f64(),
        counts.join(", ")
    );
    if sent < CONVINCING_BURST {
        // The budget allowed only a short burst: say what it does and does not show.
        evidence.push_str(&format!(
            "; a burst this short only rules out limits under {sent} requests (raise --max-requests)"
        ));
    }
    if sent < CONCLUSIVE_BURST {
        // Cut short by the budget: no 429 in a few pings proves nothing.
        return Err(NotRun::Skipped(format!("{evidence}: too few to tell, the budget ran out (raise --max-requests)")));
    }
    ctx.report(Rule::RateLimitMissing, &evidence);
    Ok(format!("{sent} pings, no 429"))
}

/// A 429 was seen: `Retry-After` must come with it.
fn judge(ctx: &mut Ctx, label: &str, retry_after: Option<&http::HeaderValue>) -> String {
    match retry_after.and_then(|v| v.to_str().ok()).filter(|v| !v.trim().is_empty()) {
        Some(value) => format!("{label} -> 429 with Retry-After: {value}"),
        None => {
            ctx.report(Rule::NoRetryAfter, &format!("{label} -> 429 without Retry-After"));
            format!("{label} -> 429")
        }
    }
}
