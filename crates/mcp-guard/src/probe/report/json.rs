//! `--format json`: one document, as the shared specification has it.

use serde::Serialize;

use super::Report;

/// The `tool` field of JSON and SARIF.
pub(super) const TOOL: &str = "mcp-guard probe";

/// The document; a struct so the keys come out in the specification's order.
#[derive(Serialize)]
struct Document<'a> {
    tool: &'static str,
    version: &'static str,
    target: &'a str,
    verdict: &'static str,
    fail_on: &'static str,
    requests: usize,
    duration_ms: u64,
    findings: Vec<FindingOut<'a>>,
    checks: Vec<CheckOut<'a>>,
}

#[derive(Serialize)]
struct FindingOut<'a> {
    id: &'static str,
    severity: &'static str,
    title: &'static str,
    evidence: &'a str,
    fix: &'static str,
}

#[derive(Serialize)]
struct CheckOut<'a> {
    id: &'static str,
    status: &'static str,
    detail: &'a str,
}

fn document(report: &Report) -> Document<'_> {
    Document {
        tool: TOOL,
        version: env!("CARGO_PKG_VERSION"),
        target: &report.target,
        verdict: report.verdict(),
        fail_on: report.fail_on.as_str(),
        requests: report.requests,
        duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
        findings: report
            .findings
            .iter()
            .map(|f| FindingOut {
                id: f.id(),
                severity: f.severity.as_str(),
                title: f.rule.title(),
                evidence: &f.evidence,
                fix: f.rule.fix(),
            })
            .collect(),
        checks: report
            .checks
            .iter()
            .map(|c| CheckOut { id: c.family.id(), status: c.status.as_str(), detail: &c.detail })
            .collect(),
    }
}

/// Pretty-printed, with a final newline.
pub(super) fn render(report: &Report) -> String {
    // Serializing strings and numbers cannot fail.
    let mut text = serde_json::to_string_pretty(&document(report)).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::probe::{Family, report::tests::sample};

    #[test]
    fn json_has_the_specified_shape() {
        let v: Value = serde_json::from_str(&render(&sample())).unwrap();
        assert_eq!(v["tool"], "mcp-guard probe");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["target"], "http://127.0.0.1:8001/mcp");
        assert_eq!(v["verdict"], "fail");
        assert_eq!(v["fail_on"], "high");
        assert_eq!(v["requests"], 37);
        assert_eq!(v["duration_ms"], 2140);
        let f = &v["findings"][0];
        assert_eq!(f["id"], "dns-rebinding/foreign-origin");
        assert_eq!(f["severity"], "high");
        for key in ["title", "evidence", "fix"] {
            assert!(f[key].as_str().is_some_and(|s| !s.is_empty()), "{key}");
        }
        let checks = v["checks"].as_array().unwrap();
        let ids: Vec<&str> = checks.iter().filter_map(|c| c["id"].as_str()).collect();
        assert_eq!(ids, Family::ALL.map(Family::id));
        assert!(checks.iter().all(|c| c["status"] == "pass" && c["detail"].is_string()));
    }
}
