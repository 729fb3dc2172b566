//! The report and its three renderings: text (`text.rs`), JSON (`json.rs`)
//! and SARIF 2.1.0 (`sarif.rs`).

mod json;
mod sarif;
pub(super) mod text;

use std::{fmt, str::FromStr, time::Duration};

use super::{FailOn, Family, Finding, Severity};

/// What happened to a check family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Ran and found nothing (info findings aside).
    Pass,
    /// Ran and found something of low severity or worse.
    Fail,
    /// Did not run (not applicable, not asked for, or the budget ran out).
    Skipped,
    /// Ran but could not conclude (failed or rate-limited requests).
    Error,
}

impl Status {
    /// `pass`, `fail`, `skipped` or `error`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skipped => "skipped",
            Status::Error => "error",
        }
    }
}

/// One family's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// The family.
    pub family: Family,
    /// What happened.
    pub status: Status,
    /// Why, in a line.
    pub detail: String,
}

/// The output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// A table for people.
    #[default]
    Text,
    /// One JSON document.
    Json,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            _ => Err(format!("`{s}` is not a format: use text, json or sarif")),
        }
    }
}

/// Everything a probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The probed URL.
    pub target: String,
    /// The threshold the verdict uses.
    pub fail_on: FailOn,
    /// Requests sent (raw TLS handshakes included).
    pub requests: usize,
    /// How long the probe took.
    pub duration: Duration,
    /// Findings, worst first.
    pub findings: Vec<Finding>,
    /// Every family, in report order.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// True when a finding reaches `fail_on`.
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| self.fail_on.fails(f.severity))
    }

    /// `pass` or `fail`.
    pub fn verdict(&self) -> &'static str {
        if self.failed() { "fail" } else { "pass" }
    }

    /// The process exit status: 1 when a finding reaches `fail_on`, else 0.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.failed())
    }

    /// `FAIL: 2 high, 1 medium findings (fail-on: high)`.
    pub fn verdict_line(&self) -> String {
        let counts: Vec<String> = Severity::WORST_FIRST
            .into_iter()
            .filter_map(|s| {
                let n = self.findings.iter().filter(|f| f.severity == s).count();
                (n > 0).then(|| format!("{n} {s}"))
            })
            .collect();
        let found = match self.findings.len() {
            0 => "no findings".to_owned(),
            1 => format!("{} finding", counts.join(", ")),
            _ => format!("{} findings", counts.join(", ")),
        };
        format!("{}: {found} (fail-on: {})", self.verdict().to_ascii_uppercase(), self.fail_on.as_str())
    }

    /// The report in `format` (`colour` applies to text only).
    pub fn render(&self, format: Format, colour: bool) -> String {
        match format {
            Format::Text => text::render(self, colour),
            Format::Json => json::render(self),
            Format::Sarif => sarif::render(self),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&text::render(self, false))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::probe::{Rule, Status};

    /// A report with one finding of each kind of severity that matters.
    pub(crate) fn sample() -> Report {
        Report {
            target: "http://127.0.0.1:8001/mcp".into(),
            fail_on: FailOn::default(),
            requests: 37,
            duration: Duration::from_millis(2140),
            findings: vec![
                Finding::new(
                    Rule::ForeignOrigin,
                    Severity::High,
                    "POST ping with Origin: http://evil.example -> 200 with an MCP result",
                ),
                Finding::new(
                    Rule::ForeignHost,
                    Severity::High,
                    "POST ping with Host: evil.example -> 200 with an MCP result",
                ),
                Finding::new(
                    Rule::RateLimitMissing,
                    Severity::Medium,
                    "150 pings in a session in 1.0s -> no 429 (150 x 200)",
                ),
                Finding::new(
                    Rule::NoChallenge,
                    Severity::Info,
                    "POST initialize without Authorization -> 200 with an MCP result",
                ),
            ],
            checks: Family::ALL
                .into_iter()
                .map(|family| CheckResult { family, status: Status::Pass, detail: "ok".into() })
                .collect(),
        }
    }

    #[test]
    fn verdicts() {
        let mut report = sample();
        assert!(report.failed());
        assert_eq!(report.exit_code(), 1);
        assert_eq!(report.verdict_line(), "FAIL: 2 high, 1 medium, 1 info findings (fail-on: high)");
        report.fail_on = FailOn::At(Severity::Critical);
        assert_eq!(report.verdict_line(), "PASS: 2 high, 1 medium, 1 info findings (fail-on: critical)");
        assert_eq!(report.exit_code(), 0);
        report.fail_on = FailOn::Never;
        assert!(!report.failed());
        report.findings.truncate(1);
        assert_eq!(report.verdict_line(), "PASS: 1 high finding (fail-on: none)");
        report.findings.clear();
        assert_eq!(report.verdict_line(), "PASS: no findings (fail-on: none)");
        assert_eq!("SARIF".parse::<Format>(), Ok(Format::Sarif));
        assert!("xml".parse::<Format>().is_err());
    }
}
