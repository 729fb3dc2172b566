//! Shared by the end-to-end tests: a gateway in-process, an rmcp client that
//! records what the server sends it, and raw HTTP helpers.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use mcp_guard::{
    config::{Overrides, load_from_str},
    server::{self, Running},
};
use rmcp::{
    ClientHandler, ErrorData, RoleClient, ServiceExt,
    model::{
        ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult, ElicitationAction, Implementation,
        ProgressNotificationParam,
    },
    service::{NotificationContext, RequestContext, RunningService},
    transport::StreamableHttpClientTransport,
};

pub mod events;
pub mod load;

/// The stdio test server binary cargo built for this package.
pub const TEST_SERVER: &str = env!("CARGO_BIN_EXE_mcp-test-server");

/// A gateway running in this process on a free loopback port.
pub struct Gateway {
    running: Option<Running>,
    pub url: String,
    pub port: u16,
}

impl Gateway {
    /// Starts a gateway from a TOML config (its `listen` is forced to 127.0.0.1:0).
    pub async fn start(toml: &str) -> Gateway {
        Gateway::start_with_env(toml, &[]).await
    }

    /// As [`start`](Self::start), with these environment variables visible to the config.
    pub async fn start_with_env(toml: &str, env: &[(&str, &str)]) -> Gateway {
        let overrides = Overrides { listen: Some("127.0.0.1:0".into()), ..Overrides::default() };
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        let config = load_from_str(toml, "test.toml", env, &overrides).expect("valid test config");
        let running = server::start(config).await.expect("gateway starts");
        let port = running.local_addr().port();
        Gateway { running: Some(running), url: format!("http://127.0.0.1:{port}/mcp"), port }
    }

    pub async fn demo() -> Gateway {
        Gateway::start("").await
    }

    pub async fn stdio(extra: &str) -> Gateway {
        Gateway::start(&format!("[upstream]\ncommand = [{TEST_SERVER:?}, \"stdio\"]\n{extra}")).await
    }

    pub async fn http(upstream_url: &str, extra: &str) -> Gateway {
        Gateway::start(&format!("[upstream]\nurl = {upstream_url:?}\n{extra}")).await
    }

    /// Reloads from a new TOML config (as SIGHUP does): `Err` with the message when refused.
    pub fn reload(&self, toml: &str) -> Result<(), String> {
        let overrides = Overrides { listen: Some("127.0.0.1:0".into()), ..Overrides::default() };
        let config = load_from_str(toml, "test.toml", std::iter::empty(), &overrides).map_err(|e| e.to_string())?;
        self.running.as_ref().expect("running").reload(config).map_err(|e| e.to_string())
    }

    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

/// What the client saw, in order.
#[derive(Debug, Clone)]
pub enum Seen {
    Progress(f64, Instant),
    Elicitation(String),
}

/// An rmcp client handler that records progress and answers elicitations with "Ada".
#[derive(Clone, Default)]
pub struct Recorder {
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    pub fn progress_times(&self) -> Vec<Instant> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|s| match s {
                Seen::Progress(_, t) => Some(*t),
                Seen::Elicitation(_) => None,
            })
            .collect()
    }

    pub fn elicitations(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|s| match s {
                Seen::Elicitation(m) => Some(m.clone()),
                Seen::Progress(..) => None,
            })
            .collect()
    }
}

impl ClientHandler for Recorder {
    async fn on_progress(&self, params: ProgressNotificationParam, _ctx: NotificationContext<RoleClient>) {
        self.seen.lock().unwrap().push(Seen::Progress(params.progress, Instant::now()));
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _ctx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let message = match &request {
            ElicitRequestParams::FormElicitationParams { message, .. } => message.clone(),
            _ => "other".to_owned(),
        };
        self.seen.lock().unwrap().push(Seen::Elicitation(message));
        let content = serde_json::json!({ "name": "Ada" });
        Ok(ElicitResult::new(ElicitationAction::Accept).with_content(content))
    }

    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        capabilities.elicitation = Some(Default::default());
        ClientConfig::new(capabilities, Implementation::new("mcp-guard-e2e", "1.0.0"))
    }
}

/// Connects rmcp's Streamable HTTP client with a bearer credential.
pub async fn connect_with_token(url: &str, token: &str) -> Result<RunningService<RoleClient, Recorder>, String> {
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned());
    Recorder::default().serve(StreamableHttpClientTransport::from_config(config)).await.map_err(|e| e.to_string())
}

/// Connects rmcp's Streamable HTTP client (initialize included).
pub async fn connect(url: &str) -> (RunningService<RoleClient, Recorder>, Recorder) {
    let recorder = Recorder::default();
    let client = recorder
        .clone()
        .serve(StreamableHttpClientTransport::from_uri(url.to_owned()))
        .await
        .expect("initialize through the gateway");
    (client, recorder)
}

pub const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

/// A raw POST with the transport's required headers and a bearer credential.
pub async fn post_as(url: &str, token: Option<&str>, session: Option<&str>, body: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    req.send().await.expect("gateway answers")
}

/// A raw POST with the transport's required headers.
pub async fn post(url: &str, session: Option<&str>, body: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_owned());
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    req.send().await.expect("gateway answers")
}

/// Initializes over raw HTTP; returns the session id.
pub async fn raw_initialize(url: &str) -> String {
    let res = post(url, None, INIT).await;
    assert_eq!(res.status(), 200);
    let id = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let body = res.text().await.unwrap();
    assert!(body.contains("\"protocolVersion\""), "{body}");
    let res = post(url, Some(&id), r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    assert_eq!(res.status(), 202);
    id
}

pub async fn delete(url: &str, session: &str) -> reqwest::Response {
    reqwest::Client::new().delete(url).header("mcp-session-id", session).send().await.expect("gateway answers")
}

/// The JSON-RPC `error.data.reason` of a rejection body.
pub async fn reason(res: reqwest::Response) -> String {
    let v: serde_json::Value = res.json().await.expect("JSON-RPC error body");
    v["error"]["data"]["reason"].as_str().unwrap_or_default().to_owned()
}

/// The real OpenID Provider of `tests/oidc` (npm `oidc-provider`), on a
/// free loopback port; killed by PID when dropped.
pub struct Oidc {
    child: std::process::Child,
    pub issuer: String,
}

impl Drop for Oidc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Oidc {
    pub fn start() -> Oidc {
        use std::io::BufRead;
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let install = std::process::Command::new("bash")
            .arg(repo.join("tests/oidc/install.sh"))
            .output()
            .expect("tests/oidc/install.sh runs");
        assert!(install.status.success(), "oidc install failed: {}", String::from_utf8_lossy(&install.stderr));
        let node = String::from_utf8_lossy(&install.stdout).lines().last().expect("node path").trim().to_owned();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = std::process::Command::new(node)
            .arg(repo.join("tests/oidc/server.mjs"))
            .arg(port.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("oidc provider starts");
        let stdout = child.stdout.take().expect("stdout");
        let line = std::io::BufReader::new(stdout).lines().next().expect("a READY line").expect("utf-8");
        let issuer = line.strip_prefix("READY ").expect("READY <issuer>").trim().to_owned();
        Oidc { child, issuer }
    }

    /// A client-credentials access token for `resource`.
    pub async fn token(&self, client: &str, secret: &str, resource: &str, scope: &str) -> String {
        let res = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(client, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("resource", resource), ("scope", scope)])
            .send()
            .await
            .expect("token endpoint answers");
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.expect("json");
        body["access_token"].as_str().expect("access_token").to_owned()
    }
}
