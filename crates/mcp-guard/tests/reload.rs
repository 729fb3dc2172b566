//! Configuration reload on the real binary: SIGHUP and `--watch-config`
//! apply a valid file from the next request on, keep sessions and counters,
//! refuse an invalid file or a restart-only key (the old config keeps
//! serving), and re-read the TLS certificate.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, mpsc},
    time::Duration,
};

use common::BIN;
use serde_json::{Value, json};

/// The gateway binary on a free port, its log lines on a channel.
struct Gateway {
    child: Child,
    endpoint: String,
    log: mpsc::Receiver<String>,
    dir: PathBuf,
}

impl Gateway {
    fn start(test: &str, config: &str, extra: &[&str]) -> Gateway {
        let dir = std::env::temp_dir().join(format!("mcp-guard-reload-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("gateway.toml"), config).unwrap();
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "-c"])
            .arg(dir.join("gateway.toml"))
            .args(extra)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gateway starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut gateway = Gateway { child, endpoint: String::new(), log, dir };
        let listening = gateway.wait_for("listening");
        gateway.endpoint = listening["endpoint"].as_str().expect("endpoint").to_owned();
        gateway
    }

    /// The next log line whose message is `message`, within 10 s.
    fn wait_for(&self, message: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.log.recv_timeout(left).unwrap_or_else(|_| panic!("no `{message}` log line"));
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == message
            {
                return v;
            }
        }
    }

    fn rewrite(&self, config: &str) {
        std::fs::write(self.dir.join("gateway.toml"), config).unwrap();
    }

    fn hangup(&self) {
        let status = Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success());
    }

    fn base(&self) -> &str {
        self.endpoint.trim_end_matches("/mcp")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One JSON-RPC POST; the HTTP status and the JSON body (or the first SSE
/// event's data).
async fn post(
    client: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    origin: Option<&str>,
    body: Value,
) -> (u16, Value, Option<String>) {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(session) = session {
        req = req.header("mcp-session-id", session);
    }
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    let response = req.json(&body).send().await.expect("gateway answers");
    let status = response.status().as_u16();
    let session = response.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    // JSON, or the first SSE event that carries a message (a priming event's data is empty).
    let json = serde_json::from_str(&text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .find_map(|d| serde_json::from_str(d.trim()).ok())
            .unwrap_or(Value::Null)
    });
    (status, json, session)
}

/// A session on the demo server: initialize, then initialized.
async fn session(client: &reqwest::Client, url: &str) -> String {
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"reload-test","version":"1"}}});
    let (status, _, session) = post(client, url, None, None, init).await;
    assert_eq!(status, 200);
    let session = session.expect("a session id");
    let done = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    assert_eq!(post(client, url, Some(&session), None, done).await.0, 202);
    session
}

fn echo(id: u64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}})
}

/// Every request counted so far: the sum of `http_requests_total` in `/metrics`.
async fn requests_counted(client: &reqwest::Client, base: &str) -> f64 {
    let text = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

const DENY_ECHO: &str = r#"
[server]
allowed_origins = ["https://app.example"]

[policy]
default = "allow"

[[policy.rules]]
principals = ["*"]
effect = "deny"
tools = ["echo"]
"#;

#[tokio::test]
async fn sighup_applies_a_valid_config_keeps_sessions_and_refuses_a_bad_one() {
    let gw = Gateway::start("sighup", "[rate_limit]\nper_minute = 1000\n", &[]);
    let client = reqwest::Client::new();
    let url = gw.endpoint.clone();
    let session = session(&client, &url).await;
    let (status, answer, _) = post(&client, &url, Some(&session), None, echo(2)).await;
    assert_eq!(status, 200);
    assert!(answer["result"].is_object(), "{answer}");
    assert_eq!(post(&client, &url, Some(&session), Some("https://app.example"), echo(3)).await.0, 403);
    let counted = requests_counted(&client, gw.base()).await;
    assert!(counted >= 4.0, "{counted}");

    // A new origin and a policy: applied from the next request, same session.
    gw.rewrite(&format!("[rate_limit]\nper_minute = 1000\n{DENY_ECHO}"));
    gw.hangup();
    assert_eq!(gw.wait_for("config_reload_applied")["trigger"], "SIGHUP");
    let (status, answer, _) = post(&client, &url, Some(&session), Some("https://app.example"), echo(4)).await;
    assert_eq!(status, 200, "the origin is allowed now and the session survived: {answer}");
    assert_eq!(answer["error"]["code"], -32602, "echo is denied now: {answer}");
    assert!(requests_counted(&client, gw.base()).await > counted, "counters carry over");

    // An invalid file: refused, naming the key; the previous config serves on.
    gw.rewrite("[rate_limit]\nper_minute = 0\n");
    gw.hangup();
    let failed = gw.wait_for("config_reload_failed");
    assert!(failed["error"].as_str().unwrap().contains("rate_limit.per_minute"), "{failed}");
    let (status, answer, _) = post(&client, &url, Some(&session), Some("https://app.example"), echo(5)).await;
    assert_eq!((status, &answer["error"]["code"]), (200, &json!(-32602)), "{answer}");

    // A key only a restart can apply: refused as a whole, naming it.
    let restart_only = format!("[server]\npath = \"/other\"\n{}\n[rate_limit]\nper_minute = 1000\n", &DENY_ECHO[10..]);
    gw.rewrite(&restart_only);
    gw.hangup();
    let failed = gw.wait_for("config_reload_failed");
    assert!(failed["error"].as_str().unwrap().contains("server.path"), "{failed}");
    assert_eq!(post(&client, &url, Some(&session), None, echo(6)).await.0, 200, "still served at /mcp");
}

#[tokio::test]
async fn watch_config_reloads_when_the_contents_change() {
    let gw = Gateway::start("watch", "", &["--watch-config"]);
    let client = reqwest::Client::new();
    let session = session(&client, &gw.endpoint).await;
    assert_eq!(post(&client, &gw.endpoint, Some(&session), Some("https://app.example"), echo(2)).await.0, 403);
    gw.rewrite(DENY_ECHO);
    assert_eq!(gw.wait_for("config_reload_applied")["trigger"], "file_changed");
    let (status, answer, _) = post(&client, &gw.endpoint, Some(&session), Some("https://app.example"), echo(3)).await;
    assert_eq!((status, &answer["error"]["code"]), (200, &json!(-32602)), "{answer}");
}

const TLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../mcp-guard-testkit/tests/fixtures/tls");

/// The leaf certificate the gateway presents on a new connection.
async fn presented(port: u16) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(Path::new(TLS).join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn leaf(file: &str) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::pem_file_iter(Path::new(TLS).join(file)).unwrap().next().unwrap().unwrap().to_vec()
}

#[tokio::test]
async fn sighup_reloads_the_tls_certificate() {
    let dir = std::env::temp_dir().join(format!("mcp-guard-reload-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let install = |pem: &str, key: &str| {
        std::fs::copy(Path::new(TLS).join(pem), dir.join("cert.pem")).unwrap();
        std::fs::copy(Path::new(TLS).join(key), dir.join("key.pem")).unwrap();
    };
    install("a.pem", "a.key");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let args = ["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
    let gw = Gateway::start("tls", "", &args);
    let port: u16 = gw.endpoint.rsplit(':').next().unwrap().trim_end_matches("/mcp").parse().unwrap();
    assert_eq!(presented(port).await, leaf("a.pem"));
    install("b.pem", "b.key");
    gw.hangup();
    gw.wait_for("config_reload_applied");
    assert_eq!(presented(port).await, leaf("b.pem"));
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}
