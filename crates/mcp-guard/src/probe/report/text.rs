//! The text report: findings grouped by severity (worst first), each as
//! `SEVERITY  id  title` with its evidence and fix indented below, then
//! the families' results, then a one-line verdict. ANSI colour only when
//! asked for (a terminal without `NO_COLOR`, see [`colour_wanted`]).

use std::{ffi::OsStr, fmt::Write as _};

use super::{Report, Status};
use crate::probe::Severity;

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[1;31m";
const GREEN: &str = "\x1b[1;32m";
const YELLOW: &str = "\x1b[33m";
const MAGENTA: &str = "\x1b[1;35m";
const CYAN: &str = "\x1b[36m";

/// True when text output should be coloured: the destination is a terminal
/// and `NO_COLOR` is unset or empty (<https://no-color.org>).
pub fn colour_wanted(is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Wraps `text` in `code` when colouring.
fn paint(colour: bool, code: &str, text: &str) -> String {
    if colour { format!("{code}{text}{RESET}") } else { text.to_owned() }
}

fn severity_colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => MAGENTA,
        Severity::High => RED,
        Severity::Medium => YELLOW,
        Severity::Low => CYAN,
        Severity::Info => DIM,
    }
}

fn status_colour(status: Status) -> &'static str {
    match status {
        Status::Pass => GREEN,
        Status::Fail => RED,
        Status::Skipped => DIM,
        Status::Error => YELLOW,
    }
}

/// The whole text report.
pub(super) fn render(report: &Report, colour: bool) -> String {
    let mut out = String::new();
    let seconds = report.duration.as_secs_f64();
    let _ = writeln!(out, "{} {}", paint(colour, BOLD, "mcp-guard probe"), report.target);
    let _ = writeln!(out, "{} requests in {seconds:.1}s", report.requests);

    let id_width = report.findings.iter().map(|f| f.id().len()).max().unwrap_or(0);
    for severity in Severity::WORST_FIRST {
        let group: Vec<_> = report.findings.iter().filter(|f| f.severity == severity).collect();
        if group.is_empty() {
            continue;
        }
        out.push('\n');
        for finding in group {
            let label = format!("{:<8}", severity.as_str().to_ascii_uppercase());
            let _ = writeln!(
                out,
                "{}  {:<id_width$}  {}",
                paint(colour, severity_colour(severity), &label),
                finding.id(),
                finding.rule.title()
            );
            let _ = writeln!(out, "          evidence: {}", finding.evidence);
            let _ = writeln!(out, "          fix: {}", finding.rule.fix());
        }
    }

    out.push('\n');
    let _ = writeln!(out, "{}", paint(colour, BOLD, "Checks"));
    let family_width = report.checks.iter().map(|c| c.family.id().len()).max().unwrap_or(0);
    for check in &report.checks {
        let status = format!("{:<7}", check.status.as_str());
        let _ = writeln!(
            out,
            "  {:<family_width$}  {}  {}",
            check.family.id(),
            paint(colour, status_colour(check.status), &status),
            check.detail
        );
    }
    out.push('\n');
    let verdict = report.verdict_line();
    let _ = writeln!(out, "{}", paint(colour, if report.failed() { RED } else { GREEN }, &verdict));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::report::tests::sample;

    #[test]
    fn colour_follows_the_terminal_and_no_color() {
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some(OsStr::new(""))));
        assert!(!colour_wanted(true, Some(OsStr::new("1"))));
        assert!(!colour_wanted(false, None));
    }

    #[test]
    fn text_without_colour_has_no_escapes() {
        let report = sample();
        // As the CLI decides it with NO_COLOR=1 on a terminal.
        let text = render(&report, colour_wanted(true, Some(OsStr::new("1"))));
        assert!(!text.contains('\x1b'), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let high = lines.iter().position(|l| l.starts_with("HIGH ")).unwrap();
        let medium = lines.iter().position(|l| l.starts_with("MEDIUM ")).unwrap();
        let info = lines.iter().position(|l| l.starts_with("INFO ")).unwrap();
        assert!(high < medium && medium < info, "grouped worst first:\n{text}");
        assert!(lines[high].contains("dns-rebinding/foreign-origin") && lines[high].contains("A foreign Origin"));
        assert!(lines[high + 1].trim_start().starts_with("evidence: POST ping with Origin"));
        assert!(lines[high + 2].trim_start().starts_with("fix: "));
        assert!(lines.iter().any(|l| l.trim_start().starts_with("dns-rebinding") && l.contains("pass")));
        assert_eq!(lines.last(), Some(&"FAIL: 2 high, 1 medium, 1 info findings (fail-on: high)"));

        let coloured = render(&report, true);
        assert!(coloured.contains("\x1b[1;31mHIGH"));
        assert!(coloured.contains(RESET));
    }
}
