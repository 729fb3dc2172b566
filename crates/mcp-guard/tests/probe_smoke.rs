//! `mcp-guard probe` against the gateway itself, started in-process: with
//! its default settings it must pass cleanly and within the budget; with
//! API keys, tokens must be checked, sessions bound, and never printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mcp_guard::{
    auth::api_key,
    config::{self, Overrides, hash_api_key},
    probe::{self, Family, ProbeError, ProbeOptions, Report, Severity, Status},
    secret::Secret,
    server,
};

async fn gateway(toml: &str) -> (server::Running, String) {
    let overrides = Overrides { listen: Some("127.0.0.1:0".into()), ..Overrides::default() };
    let config = config::load_from_str(toml, "probe-smoke", Vec::<(String, String)>::new(), &overrides).unwrap();
    let running = server::start(config).await.unwrap();
    let url = format!("http://{}/mcp", running.local_addr());
    (running, url)
}

fn status(report: &Report, family: Family) -> Status {
    report.checks.iter().find(|c| c.family == family).map(|c| c.status).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_gateway_passes() {
    let (running, url) = gateway("").await;
    let report = probe::run(ProbeOptions::new(&url)).await.unwrap();
    let serious: Vec<_> = report.findings.iter().filter(|f| f.severity >= Severity::Medium).collect();
    assert!(serious.is_empty(), "{report}");
    assert!(!report.failed() && report.exit_code() == 0);
    assert!(report.requests <= 200, "{}", report.requests);
    for family in [Family::DnsRebinding, Family::BodyLimit, Family::RateLimit, Family::Session, Family::Robustness] {
        assert_eq!(status(&report, family), Status::Pass, "{family:?}\n{report}");
    }
    assert_eq!(status(&report, Family::Tls), Status::Skipped);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_budget_is_respected() {
    let (running, url) = gateway("").await;
    let mut options = ProbeOptions::new(&url);
    options.max_requests = 12;
    let report = probe::run(options).await.unwrap();
    assert!(report.requests <= 12, "{}", report.requests);
    // The cheap checks ran; the budget-hungry ones were starved, and say so.
    assert_eq!(status(&report, Family::DnsRebinding), Status::Pass, "{report}");
    for family in [Family::BodyLimit, Family::RateLimit] {
        let check = report.checks.iter().find(|c| c.family == family).unwrap();
        assert_eq!(check.status, Status::Skipped, "{report}");
        assert!(check.detail.contains("budget"), "{}", check.detail);
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_are_checked_and_never_printed() {
    let (alice, bob) = (api_key::generate().unwrap(), api_key::generate().unwrap());
    let toml = format!(
        "[[auth.api_keys]]\nname = \"alice\"\nhash = \"{}\"\n[[auth.api_keys]]\nname = \"bob\"\nhash = \"{}\"\n",
        hash_api_key(&alice),
        hash_api_key(&bob)
    );
    let (running, url) = gateway(&toml).await;

    // Without a token nothing can be probed: exit status 2.
    let error = probe::run(ProbeOptions::new(&url)).await.unwrap_err();
    assert!(matches!(error, ProbeError::NotMcp { .. }), "{error}");
    assert!(error.to_string().contains("--token"), "{error}");
    assert_eq!(error.exit_code(), 2);

    let mut options = ProbeOptions::new(&url);
    options.token = Some(Secret::new(alice.clone()));
    options.second_token = Some(Secret::new(bob.clone()));
    let report = probe::run(options).await.unwrap();
    let ids: Vec<&str> = report.findings.iter().map(|f| f.id()).collect();
    for id in
        ["auth/no-challenge", "auth/malformed-token-accepted", "session/cross-principal", "exposure/unauthenticated"]
    {
        assert!(!ids.contains(&id), "{id}\n{report}");
    }
    assert!(report.findings.iter().all(|f| f.severity < Severity::High), "{report}");
    let session = report.checks.iter().find(|c| c.family == Family::Session).unwrap();
    assert!(session.detail.contains("cross-principal -> 404"), "{}", session.detail);
    for format in [probe::Format::Text, probe::Format::Json, probe::Format::Sarif] {
        let out = report.render(format, false);
        assert!(!out.contains(&alice) && !out.contains(&bob), "a token leaked into {format:?}");
    }
    running.shutdown().await;
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    // A port just released: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut options = ProbeOptions::new(format!("http://127.0.0.1:{port}/mcp"));
    options.timeout = std::time::Duration::from_secs(2);
    let error = probe::run(options).await.unwrap_err();
    assert!(matches!(error, ProbeError::Unreachable { .. }), "{error}");
    assert_eq!(error.exit_code(), 2);
}
