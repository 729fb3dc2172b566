//! `--format sarif`: SARIF 2.1.0, one run, every rule in the driver, one
//! result per finding located at the probed URL.

use serde_json::{Value, json};

use super::{Report, json::TOOL};
use crate::probe::{Rule, Severity};

/// GitHub code scanning ranks security results by this (CVSS-like) score.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

/// The report as a SARIF log.
pub(super) fn value(report: &Report) -> Value {
    let rules: Vec<Value> = Rule::ALL
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id(),
                "shortDescription": {"text": rule.title()},
                "help": {"text": rule.fix()},
                "defaultConfiguration": {"level": rule.default_severity().sarif_level()},
                "properties": {
                    "severity": rule.default_severity().as_str(),
                    "security-severity": security_severity(rule.default_severity()),
                    "tags": ["security", "mcp"],
                },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.id(),
                "ruleIndex": Rule::ALL.iter().position(|r| *r == f.rule),
                "level": f.severity.sarif_level(),
                "message": {"text": format!("{}: {}", f.rule.title(), f.evidence)},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": report.target}}}],
                "properties": {"severity": f.severity.as_str()},
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": TOOL,
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": env!("CARGO_PKG_REPOSITORY"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

/// Pretty-printed, with a final newline.
pub(super) fn render(report: &Report) -> String {
    let mut text = serde_json::to_string_pretty(&value(report)).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::report::tests::sample;

    #[test]
    fn sarif_has_the_specified_shape() {
        let v: Value = serde_json::from_str(&render(&sample())).unwrap();
        assert_eq!(v["$schema"], "https://json.schemastore.org/sarif-2.1.0.json");
        assert_eq!(v["version"], "2.1.0");
        let runs = v["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 1);
        let driver = &runs[0]["tool"]["driver"];
        assert_eq!(driver["name"], "mcp-guard probe");
        assert_eq!(driver["version"], env!("CARGO_PKG_VERSION"));
        assert!(driver["informationUri"].as_str().unwrap().starts_with("https://"));
        let rules = driver["rules"].as_array().unwrap();
        assert_eq!(rules.len(), Rule::ALL.len());
        for rule in rules {
            assert!(rule["shortDescription"]["text"].is_string() && rule["help"]["text"].is_string());
            assert!(["error", "warning", "note"].contains(&rule["defaultConfiguration"]["level"].as_str().unwrap()));
        }
        let results = runs[0]["results"].as_array().unwrap();
        assert_eq!(results.len(), 4);
        let levels: Vec<&str> = results.iter().map(|r| r["level"].as_str().unwrap()).collect();
        assert_eq!(levels, ["error", "error", "warning", "note"]);
        let first = &results[0];
        assert_eq!(first["ruleId"], "dns-rebinding/foreign-origin");
        assert_eq!(rules[first["ruleIndex"].as_u64().unwrap() as usize]["id"], first["ruleId"]);
        assert!(first["message"]["text"].as_str().unwrap().contains("Origin: http://evil.example"));
        let location = &first["locations"][0]["physicalLocation"];
        assert_eq!(location["artifactLocation"]["uri"], "http://127.0.0.1:8001/mcp");
        assert!(location.get("region").is_none());
        assert_eq!(first["properties"]["severity"], "high");
    }
}
