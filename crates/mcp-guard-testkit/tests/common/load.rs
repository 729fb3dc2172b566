//! For the fault-injection tests: the real gateway binary and the HTTP test
//! server as child processes (started from argv, killed by PID on drop), the
//! gateway's JSON log read as it is written, its file descriptors and CPU
//! time from `/proc`, and latency percentiles.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use super::{INIT, TEST_SERVER};

/// The gateway binary cargo built next to the test server. `cargo nextest
/// run --workspace` builds it (the mcp-guard crate's own tests need it);
/// a run of this package alone needs `cargo build -p mcp-guard` first.
pub fn gateway_bin() -> PathBuf {
    let bin = Path::new(TEST_SERVER).with_file_name("mcp-guard");
    assert!(bin.is_file(), "{} is missing: run `cargo build -p mcp-guard` first", bin.display());
    bin
}

/// One log line and when the test read it.
#[derive(Clone, Debug)]
pub struct LogLine {
    pub at: Instant,
    pub json: serde_json::Value,
}

impl LogLine {
    pub fn message(&self) -> &str {
        self.json["message"].as_str().unwrap_or_default()
    }
}

/// A child process killed (SIGKILL, by PID) and reaped when dropped,
/// unless it has already exited.
pub struct Process {
    child: Child,
    pub pid: u32,
    /// Files to remove when it is dropped.
    scratch: Vec<PathBuf>,
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        for path in &self.scratch {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Process {
    /// Waits up to `within` for it to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` (e.g. `TERM`) with `kill`, by PID.
    pub fn signal(&self, signal: &str) {
        let status =
            Command::new("kill").args([format!("-{signal}"), self.pid.to_string()]).status().expect("kill runs");
        assert!(status.success(), "kill -{signal} {}", self.pid);
    }

    /// Open file descriptors, from `/proc/<pid>/fd`.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).expect("/proc/<pid>/fd").count()
    }

    /// CPU time used so far (user + system), from `/proc/<pid>/stat`.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).expect("/proc/<pid>/stat");
        // Fields after the command name, which is in parentheses and may
        // hold spaces: state is field 3, utime and stime are fields 14 and 15.
        let after = &stat[stat.rfind(')').expect("(comm)") + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second() as f64)
    }
}

/// `getconf CLK_TCK`: the unit of `/proc/<pid>/stat` times. It is the
/// kernel's USER_HZ, 100 on every architecture Linux exposes to user space
/// today; asked anyway rather than assumed.
fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

/// The gateway binary, its log collected by a thread as it is written.
pub struct GatewayProcess {
    pub process: Process,
    pub url: String,
    pub port: u16,
    log: Arc<Mutex<Vec<LogLine>>>,
}

static CONFIGS: AtomicUsize = AtomicUsize::new(0);

impl GatewayProcess {
    /// Starts `mcp-guard --config <toml> --listen 127.0.0.1:0`, behind the
    /// `wrapper` argv if any (e.g. `prlimit --nofile=64:64 --`), and waits
    /// for its `listening` line.
    pub fn start(toml: &str, wrapper: &[&str]) -> GatewayProcess {
        let n = CONFIGS.fetch_add(1, Ordering::Relaxed);
        let config = std::env::temp_dir().join(format!("mcp-guard-fault-{}-{n}.toml", std::process::id()));
        std::fs::write(&config, toml).expect("config written");
        let bin = gateway_bin();
        let mut argv: Vec<&std::ffi::OsStr> = wrapper.iter().map(std::ffi::OsStr::new).collect();
        argv.extend([bin.as_os_str(), "--config".as_ref(), config.as_os_str(), "--listen".as_ref()]);
        argv.push("127.0.0.1:0".as_ref());
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gateway starts");
        let stderr = child.stderr.take().expect("stderr");
        let process = Process { pid: child.id(), child, scratch: vec![config] };
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        // Reads until the gateway exits: a full pipe would stall its logging.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                if json["message"] == "listening" {
                    let _ = tx.send(json["endpoint"].as_str().unwrap_or_default().to_owned());
                }
                lines.lock().unwrap().push(LogLine { at: Instant::now(), json });
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(10)).expect("a `listening` line within 10 s");
        let port = url.rsplit(':').next().and_then(|p| p.split('/').next()).unwrap().parse().expect("port");
        GatewayProcess { process, url, port, log }
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<LogLine> {
        self.log.lock().unwrap().clone()
    }

    /// Lines with this `message`.
    pub fn lines(&self, message: &str) -> Vec<LogLine> {
        self.log().into_iter().filter(|l| l.message() == message).collect()
    }

    /// The first line with this `message`, waiting up to `within`.
    pub fn wait_for(&self, message: &str, within: Duration) -> Option<LogLine> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.lines(message).into_iter().next() {
                return Some(line);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `mcp-test-server http 127.0.0.1:0`: the rmcp test server out of process.
pub struct HttpTestServer {
    pub process: Process,
    pub url: String,
}

impl HttpTestServer {
    pub fn start() -> HttpTestServer {
        let mut child = Command::new(TEST_SERVER)
            .args(["http", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mcp-test-server starts");
        let stderr = child.stderr.take().expect("stderr");
        let process = Process { pid: child.id(), child, scratch: Vec::new() };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("mcp-test-server: listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(10)).expect("mcp-test-server listening within 10 s");
        HttpTestServer { process, url }
    }
}

/// A client that opens a new connection for every request, so each
/// request's fate is its own (no keep-alive connection closing under it).
pub fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).http1_only().build().expect("client")
}

/// An `initialize` on a new connection; its latency. Panics unless it is
/// answered 200 with the server's `protocolVersion`.
pub async fn timed_initialize(client: &reqwest::Client, url: &str) -> Duration {
    let started = Instant::now();
    let res = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INIT)
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(res.status(), 200);
    let body = res.text().await.expect("body");
    assert!(body.contains("\"protocolVersion\""), "{body}");
    started.elapsed()
}

/// A POST in `session` on `client`, with every header the transport asks
/// for; the caller sends it, and decides what a failure to send means.
pub fn session_post(
    client: &reqwest::Client,
    url: &str,
    session: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
        .body(body)
}

/// The `p`th percentile (0–100) of `samples`, nearest rank.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50, p99 and max, in milliseconds, for printing.
pub fn summary(samples: &[Duration]) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "n={} p50={:.2}ms p99={:.2}ms max={:.2}ms",
        samples.len(),
        ms(percentile(samples, 50.0)),
        ms(percentile(samples, 99.0)),
        ms(percentile(samples, 100.0))
    )
}

/// The JSON-RPC messages in an SSE (or plain JSON) body.
pub fn messages(body: &str) -> Vec<serde_json::Value> {
    let datas: Vec<&str> = body.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).collect();
    if datas.is_empty() {
        return serde_json::from_str(body).into_iter().collect();
    }
    datas.into_iter().filter_map(|d| serde_json::from_str(d).ok()).collect()
}
