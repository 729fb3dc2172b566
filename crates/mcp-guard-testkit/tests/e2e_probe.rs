//! `mcp-guard probe` as an operator runs it: the real binary against the weak
//! server (`mcp_guard_testkit::weak_server`) with every weakness on its own
//! and with none, against the gateway with default settings, within its
//! request budget, against nothing, and in SARIF validated against the
//! official SARIF 2.1.0 schema. The `mcp-guard` binary is the one next to
//! `mcp-test-server`: build it first (`cargo build -p mcp-guard --bins`).
//!
//! The schema is installed by `tests/probe/sarif-schema.sh` (scripts/test
//! does it and sets `PROBE_SARIF_SCHEMA`); without that variable the
//! SARIF test says so and skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use common::{Gateway, TEST_SERVER};
use mcp_guard_testkit::weak_server::{BODY_LIMIT, SERVER_HEADER, TOKEN_A, TOKEN_B, Weakness, spawn_weak};
use serde_json::Value;

/// Every finding id of the probe specification (they are the SARIF rule ids).
const FINDING_IDS: [&str; 30] = [
    "dns-rebinding/foreign-origin",
    "dns-rebinding/foreign-host",
    "dns-rebinding/null-origin",
    "exposure/unauthenticated",
    "auth/no-challenge",
    "auth/metadata-invalid",
    "auth/malformed-token-accepted",
    "protocol-version/unsupported-accepted",
    "protocol-version/mismatch-accepted",
    "body-limit/missing",
    "body-limit/unstable",
    "rate-limit/missing",
    "rate-limit/no-retry-after",
    "headers/missing",
    "headers/server-version",
    "cors/origin-reflected",
    "cors/wildcard-credentials",
    "session/id-charset",
    "session/id-weak",
    "session/delete-ineffective",
    "session/delete-wrong-status",
    "session/delete-unsupported",
    "session/cross-principal",
    "robustness/server-error",
    "robustness/hang",
    "robustness/stack-trace",
    "robustness/batch-accepted",
    "tls/plaintext",
    "tls/legacy-version",
    "tls/no-hsts",
];

/// Every check family `checks` must list.
const FAMILIES: [&str; 11] = [
    "dns-rebinding",
    "exposure",
    "auth",
    "protocol-version",
    "body-limit",
    "rate-limit",
    "headers",
    "cors",
    "session",
    "robustness",
    "tls",
];

/// What one weakness must make the probe report: `expect` (all present), and
/// what else it `explains` (findings of medium or above outside both fail).
struct Case {
    weakness: Weakness,
    expect: &'static [&'static str],
    explains: &'static [&'static str],
    args: &'static [&'static str],
}

const fn case(weakness: Weakness, expect: &'static [&'static str]) -> Case {
    Case { weakness, expect, explains: &[], args: &[] }
}

const CASES: [Case; 23] = [
    Case {
        explains: &["dns-rebinding/null-origin"],
        ..case(Weakness::ForeignOrigin, &["dns-rebinding/foreign-origin"])
    },
    case(Weakness::ForeignHost, &["dns-rebinding/foreign-host"]),
    case(Weakness::NullOrigin, &["dns-rebinding/null-origin"]),
    case(Weakness::NoAuthChallenge, &["auth/no-challenge"]),
    case(Weakness::BadMetadata, &["auth/metadata-invalid"]),
    case(Weakness::AcceptsMalformedToken, &["auth/malformed-token-accepted"]),
    case(Weakness::NoVersionCheck, &["protocol-version/unsupported-accepted", "protocol-version/mismatch-accepted"]),
    case(Weakness::NoBodyLimit, &["body-limit/missing"]),
    Case { explains: &["body-limit/missing"], ..case(Weakness::BodyLimit5xx, &["body-limit/unstable"]) },
    case(Weakness::NoRateLimit, &["rate-limit/missing"]),
    case(Weakness::RateLimitNoRetryAfter, &["rate-limit/no-retry-after"]),
    case(Weakness::MissingHeaders, &["headers/missing"]),
    case(Weakness::ServerVersionHeader, &["headers/server-version"]),
    case(Weakness::CorsReflect, &["cors/origin-reflected"]),
    case(Weakness::CorsWildcardCredentials, &["cors/wildcard-credentials"]),
    case(Weakness::PredictableSessionIds, &["session/id-weak"]),
    case(Weakness::SessionIdCharset, &["session/id-charset"]),
    case(Weakness::DeleteIneffective, &["session/delete-ineffective"]),
    case(Weakness::CrossPrincipal, &["session/cross-principal"]),
    case(Weakness::ServerErrorOnMalformed, &["robustness/server-error"]),
    case(Weakness::StackTrace, &["robustness/stack-trace"]),
    Case { args: &["--timeout", "2"], ..case(Weakness::HangOnMalformed, &["robustness/hang"]) },
    case(Weakness::BatchAccepted, &["robustness/batch-accepted"]),
];

fn bin() -> PathBuf {
    let bin = Path::new(TEST_SERVER).with_file_name(format!("mcp-guard{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing: cargo build -p mcp-guard --bins", bin.display());
    bin
}

/// One finished probe run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not JSON ({e}); exit {}\n{}\n{}", self.code, self.stdout, self.stderr)
        })
    }
}

/// Runs `mcp-guard probe URL ARGS` with an empty environment (no proxies, no colour).
async fn probe(url: &str, args: &[&str]) -> Run {
    let child = tokio::process::Command::new(bin())
        .arg("probe")
        .arg(url)
        .args(args)
        .env_clear()
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), child)
        .await
        .expect("the probe finishes within 5 minutes")
        .expect("mcp-guard runs");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for token in [TOKEN_A, TOKEN_B] {
        assert!(!prints(&run.stdout, token) && !prints(&run.stderr, token), "{token} was printed:\n{}", run.stdout);
    }
    run
}

/// Whether `token` occurs in `text` as a token would: not as part of a
/// longer word (`token-a` is in `malformed-token-accepted`).
fn prints(text: &str, token: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=');
    text.match_indices(token).any(|(at, _)| {
        let before = text[..at].chars().next_back().is_some_and(word);
        let after = text[at + token.len()..].chars().next().is_some_and(word);
        !before && !after
    })
}

fn with_tokens<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--format", "json", "--token", TOKEN_A, "--second-token", TOKEN_B];
    args.extend_from_slice(extra);
    args
}

fn rank(severity: &str) -> u8 {
    match severity {
        "critical" => 4,
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        "info" => 0,
        other => panic!("unknown severity {other:?}"),
    }
}

/// `(id, severity)` of every finding, checking each has every field.
fn findings(report: &Value) -> Vec<(String, String)> {
    let list = report["findings"].as_array().expect("findings is an array");
    list.iter()
        .map(|f| {
            for field in ["id", "severity", "title", "evidence", "fix"] {
                assert!(f[field].is_string(), "finding without {field}: {f}");
            }
            let id = f["id"].as_str().unwrap().to_owned();
            assert!(FINDING_IDS.contains(&id.as_str()), "finding id outside the specification: {id}");
            (id, f["severity"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// The findings, one a line, for assertion messages.
fn show(report: &Value) -> String {
    let list = report["findings"].as_array().cloned().unwrap_or_default();
    let lines: Vec<String> =
        list.iter().map(|f| format!("  {} {}: {}", f["severity"], f["id"], f["evidence"])).collect();
    format!("findings:\n{}\nchecks: {}", lines.join("\n"), report["checks"])
}

/// Exit code and verdict follow the findings (default `--fail-on high`).
fn assert_verdict(run: &Run, report: &Value) {
    let failing = findings(report).iter().any(|(_, s)| rank(s) >= rank("high"));
    assert_eq!(run.code, i32::from(failing), "exit code\n{}\n{}", show(report), run.stderr);
    assert_eq!(report["verdict"], if failing { "fail" } else { "pass" });
    assert_eq!(report["fail_on"], "high");
}

/// (a) Secure by default: nothing of medium or above, and the checks ran.
#[tokio::test(flavor = "multi_thread")]
async fn the_weak_server_without_weaknesses_passes() {
    let server = spawn_weak(&[]).await.unwrap();
    let run = probe(&server.url, &with_tokens(&[])).await;
    let report = run.json();
    assert_eq!(report["tool"], "mcp-guard probe");
    assert_eq!(report["target"], server.url.as_str());
    let serious: Vec<_> = findings(&report).into_iter().filter(|(_, s)| rank(s) >= rank("medium")).collect();
    assert!(serious.is_empty(), "{}", show(&report));
    assert_verdict(&run, &report);
    assert_eq!(run.code, 0);
    let checks = report["checks"].as_array().expect("checks is an array");
    for family in FAMILIES {
        let check = checks.iter().find(|c| c["id"] == family).unwrap_or_else(|| panic!("no {family} check"));
        let status = check["status"].as_str().unwrap_or_default();
        // Plain HTTP on loopback: no TLS to test and nothing exposed.
        let want: &[&str] = match family {
            "tls" => &["skipped"],
            "exposure" => &["pass", "skipped"],
            _ => &["pass"],
        };
        assert!(want.contains(&status), "{family}: {check}\n{}", show(&report));
    }
    let sent = report["requests"].as_u64().expect("requests") as usize;
    assert!(sent <= 200, "default budget is 200, sent {sent}");
    assert_eq!(sent, server.requests(), "the report counts what the server received");
}

/// (b) One weakness: its findings fire, nothing unexplained of medium or above.
async fn shows(weakness: Weakness) {
    let case = CASES.iter().find(|c| c.weakness == weakness).expect("a case");
    let server = spawn_weak(&[weakness]).await.unwrap();
    let run = probe(&server.url, &with_tokens(case.args)).await;
    assert_ne!(run.code, 2, "{weakness}: target could not be probed\n{}", run.stderr);
    let report = run.json();
    let found = findings(&report);
    for id in case.expect {
        assert!(found.iter().any(|(f, _)| f == id), "{weakness}: {id} missing\n{}", show(&report));
    }
    for (id, severity) in &found {
        let explained = case.expect.contains(&id.as_str()) || case.explains.contains(&id.as_str());
        assert!(
            rank(severity) < rank("medium") || explained,
            "{weakness}: unexplained {severity} {id}\n{}",
            show(&report)
        );
    }
    assert_verdict(&run, &report);
}

macro_rules! weakness_tests {
    ($($name:ident => $weakness:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                shows(Weakness::$weakness).await;
            }
        )*
    };
}

weakness_tests! {
    finds_foreign_origin => ForeignOrigin,
    finds_foreign_host => ForeignHost,
    finds_null_origin => NullOrigin,
    finds_no_auth_challenge => NoAuthChallenge,
    finds_bad_metadata => BadMetadata,
    finds_accepted_malformed_token => AcceptsMalformedToken,
    finds_no_version_check => NoVersionCheck,
    finds_no_body_limit => NoBodyLimit,
    finds_5xx_on_big_bodies => BodyLimit5xx,
    finds_no_rate_limit => NoRateLimit,
    finds_rate_limit_without_retry_after => RateLimitNoRetryAfter,
    finds_missing_headers => MissingHeaders,
    finds_server_version_header => ServerVersionHeader,
    finds_reflected_cors_origin => CorsReflect,
    finds_cors_wildcard_with_credentials => CorsWildcardCredentials,
    finds_predictable_session_ids => PredictableSessionIds,
    finds_session_id_charset => SessionIdCharset,
    finds_ineffective_delete => DeleteIneffective,
    finds_cross_principal_sessions => CrossPrincipal,
    finds_server_error_on_malformed_json => ServerErrorOnMalformed,
    finds_stack_traces => StackTrace,
    finds_hangs => HangOnMalformed,
    finds_accepted_batches => BatchAccepted,
}

#[test]
fn every_weakness_has_a_case_and_every_case_a_known_id() {
    for weakness in Weakness::ALL {
        assert_eq!(CASES.iter().filter(|c| c.weakness == weakness).count(), 1, "{weakness}");
    }
    for id in CASES.iter().flat_map(|c| c.expect.iter().chain(c.explains)) {
        assert!(FINDING_IDS.contains(id), "{id}");
    }
}

/// (c) The gateway with default settings in front of its demo server.
#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_with_default_settings_passes() {
    let gateway = Gateway::demo().await;
    let run = probe(&gateway.url, &["--format", "json"]).await;
    let report = run.json();
    let serious: Vec<_> = findings(&report).into_iter().filter(|(_, s)| rank(s) >= rank("medium")).collect();
    assert!(serious.is_empty(), "{}\n{}", show(&report), run.stderr);
    assert_verdict(&run, &report);
    assert_eq!(run.code, 0);
    gateway.shutdown().await;
}

/// (d) `--max-requests` bounds what the server receives.
#[tokio::test(flavor = "multi_thread")]
async fn the_request_budget_is_kept() {
    let server = spawn_weak(&[]).await.unwrap();
    let run = probe(&server.url, &with_tokens(&["--max-requests", "50"])).await;
    assert_ne!(run.code, 2, "{}", run.stderr);
    let report = run.json();
    assert!(server.requests() <= 50, "the server received {} requests", server.requests());
    let sent = report["requests"].as_u64().expect("requests") as usize;
    assert!(sent <= 50, "reported {sent}");
    assert_eq!(sent, server.requests(), "the report counts what the server received");
    assert!(server.requests() > 0);
    // Nothing could be tested to the end is not a finding either.
    assert!(findings(&report).iter().all(|(_, s)| rank(s) < rank("medium")), "{}", show(&report));
}

/// (e) Nothing listening, or something that is not MCP: exit 2.
#[tokio::test(flavor = "multi_thread")]
async fn an_unprobeable_target_exits_2() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let run = probe(&format!("http://127.0.0.1:{port}/mcp"), &["--format", "json", "--timeout", "2"]).await;
    assert_eq!(run.code, 2, "nothing listening\n{}\n{}", run.stdout, run.stderr);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let not_mcp = axum::Router::new().fallback(|| async { (http::StatusCode::NOT_FOUND, "nothing here") });
    let server = tokio::spawn(async move { axum::serve(listener, not_mcp).await });
    let run = probe(&url, &["--format", "json", "--timeout", "2"]).await;
    assert_eq!(run.code, 2, "not an MCP server\n{}\n{}", run.stdout, run.stderr);
    server.abort();
}

/// (f) SARIF output is valid SARIF 2.1.0 and says what the JSON says.
#[tokio::test(flavor = "multi_thread")]
async fn sarif_output_validates_against_the_sarif_2_1_0_schema() {
    let Some(schema) = std::env::var_os("PROBE_SARIF_SCHEMA") else {
        eprintln!(
            "SKIPPED: PROBE_SARIF_SCHEMA is not set; run tests/probe/sarif-schema.sh and set it to the path it \
             prints (scripts/test does both)"
        );
        return;
    };
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&schema).expect("the SARIF schema is readable"))
        .expect("the SARIF schema is JSON");
    let validator = jsonschema::options().should_validate_formats(true).build(&schema).expect("a valid JSON schema");

    // A high, a medium and a low finding, so every level shows.
    let weak = [Weakness::ForeignOrigin, Weakness::MissingHeaders, Weakness::ServerVersionHeader];
    let server = spawn_weak(&weak).await.unwrap();
    let mut args = with_tokens(&[]);
    args[1] = "sarif";
    let run = probe(&server.url, &args).await;
    assert_eq!(run.code, 1, "a high finding fails the run\n{}", run.stderr);
    let sarif = run.json();
    let errors: Vec<String> =
        validator.iter_errors(&sarif).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "SARIF is not valid SARIF 2.1.0:\n{}", errors.join("\n"));
    // The validator does judge: a level SARIF does not have is refused.
    let mut broken = sarif.clone();
    broken["runs"][0]["results"][0]["level"] = "critical".into();
    assert!(!validator.is_valid(&broken), "the schema refuses level \"critical\"");

    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(sarif["$schema"], "https://json.schemastore.org/sarif-2.1.0.json");
    let runs = sarif["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert_eq!(driver["name"], "mcp-guard probe");
    let rules: BTreeSet<&str> =
        driver["rules"].as_array().expect("rules").iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(rules, FINDING_IDS.into_iter().collect(), "one rule per finding id");

    // A fresh server: this one's rate limit is spent on token-a.
    let twin = spawn_weak(&weak).await.unwrap();
    let json = probe(&twin.url, &with_tokens(&[])).await.json();
    let mut expected: Vec<(String, String)> = findings(&json);
    let mut got: Vec<(String, String)> = Vec::new();
    for result in runs[0]["results"].as_array().expect("results") {
        let id = result["ruleId"].as_str().expect("ruleId").to_owned();
        let severity = result["properties"]["severity"].as_str().expect("properties.severity").to_owned();
        let level = match rank(&severity) {
            3.. => "error",
            2 => "warning",
            _ => "note",
        };
        assert_eq!(result["level"], level, "{result}");
        assert!(result["message"]["text"].as_str().is_some_and(|t| !t.is_empty()), "{result}");
        let uri = &result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"];
        assert_eq!(uri, server.url.as_str(), "{result}");
        got.push((id, severity));
    }
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "SARIF results are the JSON findings");
    assert!(got.iter().any(|(id, _)| id == "dns-rebinding/foreign-origin"));
}

// ---- the weak server itself, over raw HTTP (no probe needed) ----

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
const PING: &str = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;

fn request(method: http::Method, url: &str, token: Option<&str>, session: Option<&str>) -> reqwest::RequestBuilder {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    req
}

async fn post(url: &str, token: Option<&str>, session: Option<&str>, body: &str) -> reqwest::Response {
    request(http::Method::POST, url, token, session).body(body.to_owned()).send().await.expect("answers")
}

/// Initializes as `token`; returns the session id.
async fn initialize(url: &str, token: &str) -> String {
    let res = post(url, Some(token), None, INIT).await;
    assert_eq!(res.status(), 200);
    let session = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let res = post(url, Some(token), Some(&session), r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    assert_eq!(res.status(), 202);
    session
}

/// Status and `Retry-After` presence of 40 pings in a row, once one is refused.
async fn burst(url: &str, session: &str) -> Option<bool> {
    for _ in 0..40 {
        let res = post(url, Some(TOKEN_A), Some(session), PING).await;
        if res.status() == 429 {
            return Some(res.headers().contains_key("retry-after"));
        }
    }
    None
}

/// What each weakness looks like over raw HTTP: `true` when it shows. Run
/// against the secure server, every one must be `false`.
async fn weakness_shows(w: Weakness, url: &str) -> bool {
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"ping","params":{{"_meta":{{"pad":"{}"}}}}}}"#,
        "x".repeat(BODY_LIMIT)
    );
    let a = Some(TOKEN_A);
    let status = |res: reqwest::Response| res.status().as_u16();
    match w {
        Weakness::ForeignOrigin => {
            status(
                request(http::Method::POST, url, a, None)
                    .header("origin", "http://evil.example")
                    .body(INIT)
                    .send()
                    .await
                    .unwrap(),
            ) == 200
        }
        Weakness::ForeignHost => {
            status(
                request(http::Method::POST, url, a, None)
                    .header("host", "evil.example")
                    .body(INIT)
                    .send()
                    .await
                    .unwrap(),
            ) == 200
        }
        Weakness::NullOrigin => {
            status(request(http::Method::POST, url, a, None).header("origin", "null").body(INIT).send().await.unwrap())
                == 200
        }
        Weakness::NoAuthChallenge => {
            let res = post(url, None, None, INIT).await;
            assert_eq!(res.status(), 401);
            !res.headers()["www-authenticate"].to_str().unwrap().contains("resource_metadata=")
        }
        Weakness::BadMetadata => {
            let meta_url = url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp");
            let doc: Value = reqwest::get(meta_url).await.unwrap().json().await.unwrap();
            doc["resource"] != url || doc["authorization_servers"].as_array().is_none_or(Vec::is_empty)
        }
        Weakness::AcceptsMalformedToken => status(post(url, Some("not-a-token"), None, INIT).await) == 200,
        Weakness::NoVersionCheck => {
            let session = initialize(url, TOKEN_A).await;
            let res = request(http::Method::POST, url, a, Some(&session)).header("mcp-protocol-version", "1999-01-01");
            status(res.body(PING).send().await.unwrap()) != 400
        }
        Weakness::NoBodyLimit => status(post(url, a, Some(&initialize(url, TOKEN_A).await), &big).await) == 200,
        Weakness::BodyLimit5xx => status(post(url, a, Some(&initialize(url, TOKEN_A).await), &big).await) >= 500,
        Weakness::NoRateLimit => burst(url, &initialize(url, TOKEN_A).await).await.is_none(),
        Weakness::RateLimitNoRetryAfter => burst(url, &initialize(url, TOKEN_A).await).await == Some(false),
        Weakness::MissingHeaders => !post(url, a, None, INIT).await.headers().contains_key("x-content-type-options"),
        Weakness::ServerVersionHeader => {
            post(url, a, None, INIT).await.headers().get("server").is_some_and(|s| s == SERVER_HEADER)
        }
        Weakness::CorsReflect | Weakness::CorsWildcardCredentials => {
            let preflight = request(http::Method::OPTIONS, url, None, None)
                .header("origin", "https://evil.example")
                .header("access-control-request-method", "POST");
            let res = preflight.send().await.unwrap();
            let allow = res.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned());
            let credentials = res.headers().get("access-control-allow-credentials").is_some_and(|v| v == "true");
            match w {
                Weakness::CorsReflect => allow.as_deref() == Some("https://evil.example"),
                _ => allow.as_deref() == Some("*") && credentials,
            }
        }
        Weakness::PredictableSessionIds => initialize(url, TOKEN_A).await.len() < 16,
        Weakness::SessionIdCharset => initialize(url, TOKEN_A).await.bytes().any(|b| !(0x21..=0x7e).contains(&b)),
        Weakness::DeleteIneffective => {
            let session = initialize(url, TOKEN_A).await;
            let res = request(http::Method::DELETE, url, a, Some(&session)).send().await.unwrap();
            assert!(res.status().is_success());
            status(post(url, a, Some(&session), PING).await) == 200
        }
        Weakness::CrossPrincipal => {
            status(post(url, Some(TOKEN_B), Some(&initialize(url, TOKEN_A).await), PING).await) == 200
        }
        Weakness::ServerErrorOnMalformed => status(post(url, a, None, "{oops").await) >= 500,
        Weakness::StackTrace => {
            post(url, a, None, "{oops").await.text().await.unwrap().contains("Traceback (most recent call last)")
        }
        Weakness::HangOnMalformed => {
            let req = request(http::Method::POST, url, a, None).body("{oops").timeout(Duration::from_secs(2));
            req.send().await.is_err()
        }
        Weakness::BatchAccepted => {
            let session = initialize(url, TOKEN_A).await;
            let res = post(url, a, Some(&session), &format!("[{PING},{}]", PING.replace("\"id\":2", "\"id\":3"))).await;
            res.status() == 200 && res.json::<Value>().await.is_ok_and(|v| v.as_array().is_some_and(|a| a.len() == 2))
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_weak_server_is_secure_by_default_and_each_weakness_shows_alone() {
    for weakness in Weakness::ALL {
        let secure = spawn_weak(&[]).await.unwrap();
        assert!(!weakness_shows(weakness, &secure.url).await, "{weakness} shows on the secure server");
        let weak = spawn_weak(&[weakness]).await.unwrap();
        assert!(weakness_shows(weakness, &weak.url).await, "{weakness} does not show");
    }
}
