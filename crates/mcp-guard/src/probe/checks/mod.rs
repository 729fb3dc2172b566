//! The checks, one file per family, and the order they run in.
//!
//! Discovery first (an initialize without credentials, then with the token:
//! the exposure and auth facts, and the one session most checks reuse).
//! Then the cheap families, a handful of requests each, and last the two
//! that spend the budget: body growth (up to eight large bodies) and the
//! rate-limit burst (whatever is left). The burst is last for a second
//! reason: once a server rate-limits the probe, every later answer is a 429.

mod auth;
mod body;
mod headers;
mod protocol;
mod rate;
mod rebinding;
mod robustness;
mod session;
mod tls;

use std::{collections::HashMap, time::Duration};

use http::HeaderValue;

use super::{
    CheckResult, FailOn, Family, Finding, ProbeError, ProbeOptions, Report, Rule, Severity, Status, Target,
    client::{Client, Exhausted, Outcome, Req},
    mcp::{self, Session},
};
use crate::secret::Secret;

/// What a family's check concluded, before findings are counted.
#[derive(Clone, Debug)]
pub(crate) struct Concluded {
    status: Status,
    notes: Vec<String>,
}

/// Notes a family collects; a note marked unsure makes its status `error`
/// (unless a finding makes it `fail`).
#[derive(Debug, Default)]
pub(crate) struct Notes {
    list: Vec<String>,
    unsure: bool,
}

impl Notes {
    /// A conclusion worth showing in the detail.
    pub(crate) fn push(&mut self, note: impl Into<String>) {
        self.list.push(note.into());
    }

    /// A part of the check that could not conclude (a 429, a timeout, a failure).
    pub(crate) fn unsure(&mut self, note: impl Into<String>) {
        self.unsure = true;
        self.list.push(note.into());
    }

    /// The family's result.
    pub(crate) fn finish(self) -> Checked {
        let detail = self.list.join("; ");
        if self.unsure { Err(NotRun::Error(detail)) } else { Ok(detail) }
    }
}

/// A family's result: `Ok(detail)` when it ran (pass, or fail if it found
/// something), or why it did not.
pub(crate) type Checked = Result<String, NotRun>;

/// Why a family did not (completely) run.
#[derive(Clone, Debug)]
pub(crate) enum NotRun {
    /// Not applicable, or not asked for: status `skipped`.
    Skipped(String),
    /// The requests failed in a way that says nothing: status `error`.
    Error(String),
    /// The request budget ran out: status `skipped`.
    Budget,
}

impl From<Exhausted> for NotRun {
    fn from(_: Exhausted) -> Self {
        NotRun::Budget
    }
}

/// Everything the checks share.
pub(crate) struct Ctx {
    pub(crate) target: Target,
    pub(crate) client: Client,
    pub(crate) token: Option<Secret>,
    pub(crate) second_token: Option<Secret>,
    pub(crate) fail_on: FailOn,
    pub(crate) follow_metadata: bool,
    pub(crate) max_body_probe: u64,
    pub(crate) protocol_version: String,
    /// The session the session-scoped checks reuse.
    pub(crate) session: Session,
    /// An initialize without credentials is refused.
    pub(crate) auth_required: bool,
    /// `resource_metadata` from the 401 challenge.
    pub(crate) metadata_url: Option<String>,
    /// Every session id an initialize returned, in order.
    pub(crate) session_ids: Vec<HeaderValue>,
    /// Answers to requests with a foreign `Origin`: (label, origin sent, answer's headers).
    pub(crate) origin_answers: Vec<(String, String, http::HeaderMap)>,
    /// A plain ping in the session succeeded (the baseline other checks compare with).
    pub(crate) ping_ok: bool,
    /// The TLS family's verdict on legacy versions, for the final TLS result.
    pub(crate) legacy_tls: Option<Result<String, NotRun>>,
    findings: Vec<Finding>,
    results: HashMap<Family, Concluded>,
    next_id: u64,
    budget: usize,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("target", &self.target.url.as_str()).field("findings", &self.findings).finish()
    }
}

impl Ctx {
    pub(crate) fn new(options: ProbeOptions, target: Target, client: Client) -> Self {
        Ctx {
            target,
            client,
            token: options.token,
            second_token: options.second_token,
            fail_on: options.fail_on,
            follow_metadata: options.follow_metadata,
            max_body_probe: options.max_body_probe,
            protocol_version: options.protocol_version,
            session: Session::default(),
            auth_required: false,
            metadata_url: None,
            session_ids: Vec::new(),
            origin_answers: Vec::new(),
            ping_ok: false,
            legacy_tls: None,
            findings: Vec::new(),
            results: HashMap::new(),
            next_id: 1,
            budget: options.max_requests,
        }
    }

    /// A fresh JSON-RPC id.
    pub(crate) fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The per-request timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.client.timeout
    }

    /// How evidence describes an outcome.
    pub(crate) fn describe(&self, outcome: &Outcome) -> String {
        outcome.describe(self.client.timeout)
    }

    /// Records a finding at the rule's default severity.
    pub(crate) fn report(&mut self, rule: Rule, evidence: &str) {
        self.report_as(rule, rule.default_severity(), evidence);
    }

    /// Records a finding at `severity`; a second finding of a rule adds its evidence to the first.
    pub(crate) fn report_as(&mut self, rule: Rule, severity: Severity, evidence: &str) {
        match self.findings.iter_mut().find(|f| f.rule == rule) {
            Some(finding) => finding.merge(severity, evidence),
            None => self.findings.push(Finding::new(rule, severity, evidence)),
        }
    }

    /// True when a finding of `family` at low or above was recorded.
    fn failed(&self, family: Family) -> bool {
        self.findings.iter().any(|f| f.rule.family() == family && f.severity > Severity::Info)
    }

    /// Records what `family` concluded; a later call for the same family adds to it.
    pub(crate) fn conclude(&mut self, family: Family, checked: Checked) {
        let (status, note) = match checked {
            Ok(detail) => (Status::Pass, detail),
            Err(NotRun::Skipped(why)) => (Status::Skipped, why),
            Err(NotRun::Error(why)) => (Status::Error, why),
            Err(NotRun::Budget) => {
                (Status::Skipped, format!("request budget ({}) exhausted; raise --max-requests", self.budget))
            }
        };
        let entry = self.results.entry(family).or_insert(Concluded { status, notes: Vec::new() });
        // The least conclusive status wins: a family partly skipped is not a pass.
        entry.status = match (entry.status, status) {
            (Status::Error, _) | (_, Status::Error) => Status::Error,
            (Status::Skipped, _) | (_, Status::Skipped) => Status::Skipped,
            _ => Status::Pass,
        };
        if !note.is_empty() {
            entry.notes.push(note);
        }
    }

    /// Sends a request (see [`Client::send`]).
    pub(crate) async fn send(&mut self, req: Req) -> Result<Outcome, Exhausted> {
        self.client.send(req).await
    }

    /// A POST of `message` in the probe's session, with the token.
    pub(crate) fn session_post(&self, message: &serde_json::Value, label: impl Into<String>) -> Req {
        let req = mcp::post(&self.target, mcp::json_body(message), label);
        mcp::in_session(mcp::bearer(req, self.token.as_ref()), &self.session)
    }

    /// A `ping` in the probe's session, with the token.
    pub(crate) fn ping(&mut self, label: impl Into<String>) -> Req {
        let message = mcp::request(self.id(), "ping", None);
        self.session_post(&message, label)
    }

    /// The report: families in order, findings worst first, tokens scrubbed.
    pub(crate) fn into_report(mut self, duration: Duration) -> Report {
        let secrets: Vec<String> = [&self.token, &self.second_token]
            .into_iter()
            .flatten()
            .map(|s| s.expose().to_owned())
            .filter(|s| !s.is_empty())
            .flat_map(|s| [mcp::tampered(&s), s])
            .collect();
        let scrub = |text: &str| secrets.iter().fold(text.to_owned(), |text, s| text.replace(s.as_str(), "[redacted]"));
        let checks = Family::ALL
            .into_iter()
            .map(|family| {
                let outcome = self
                    .results
                    .remove(&family)
                    .unwrap_or(Concluded { status: Status::Skipped, notes: vec!["not reached".into()] });
                let status = if self.failed(family) { Status::Fail } else { outcome.status };
                let mut notes = outcome.notes;
                if status == Status::Fail {
                    // Name what failed first: the notes list the parts that passed.
                    let failed: Vec<&str> = self
                        .findings
                        .iter()
                        .filter(|f| f.rule.family() == family && f.severity >= Severity::Low)
                        .map(|f| f.rule.id())
                        .collect();
                    notes.insert(0, format!("failed: {}", failed.join(", ")));
                }
                CheckResult { family, status, detail: scrub(&notes.join("; ")) }
            })
            .collect();
        let mut findings = std::mem::take(&mut self.findings);
        for finding in &mut findings {
            finding.evidence = scrub(&finding.evidence);
        }
        // Worst first; within a severity, in table order.
        let order = |r: &Rule| Rule::ALL.iter().position(|x| x == r).unwrap_or(usize::MAX);
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| order(&a.rule).cmp(&order(&b.rule))));
        Report {
            target: self.target.given.clone(),
            fail_on: self.fail_on,
            requests: self.client.sent(),
            duration,
            findings,
            checks,
        }
    }
}

/// Runs every family in order. Fails only when discovery finds nothing to probe.
pub(crate) async fn run_all(ctx: &mut Ctx) -> Result<(), ProbeError> {
    ctx.client.stage("discovery");
    auth::discover(ctx).await?;
    // Legacy TLS first among the rest: two handshakes, and a verdict the
    // final TLS result needs whatever the budget does later.
    ctx.client.stage(Family::Tls.id());
    ctx.legacy_tls = Some(tls::legacy(ctx).await);
    for family in [
        Family::Auth,
        Family::DnsRebinding,
        Family::Cors,
        Family::ProtocolVersion,
        Family::Session,
        Family::Robustness,
        Family::BodyLimit,
        Family::RateLimit,
    ] {
        ctx.client.stage(family.id());
        let checked = match family {
            Family::Auth => auth::check(ctx).await,
            Family::DnsRebinding => rebinding::check(ctx).await,
            Family::Cors => rebinding::cors(ctx).await,
            Family::ProtocolVersion => protocol::check(ctx).await,
            Family::Session => session::check(ctx).await,
            Family::Robustness => robustness::check(ctx).await,
            Family::BodyLimit => body::check(ctx).await,
            _ => rate::check(ctx).await,
        };
        ctx.conclude(family, checked);
    }
    // From what every answer carried: no requests of their own.
    let checked = headers::check(ctx);
    ctx.conclude(Family::Headers, checked);
    let checked = robustness::stack_traces(ctx);
    ctx.conclude(Family::Robustness, checked);
    let checked = tls::conclude(ctx);
    ctx.conclude(Family::Tls, checked);
    Ok(())
}
