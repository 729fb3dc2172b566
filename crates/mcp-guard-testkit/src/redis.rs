//! Throwaway Redis servers for tests: `redis-server` from `PATH` on free
//! loopback ports (never the default 6379, which a system Redis may hold),
//! no persistence, each in its own temporary directory, killed by PID on
//! drop. [`RedisCluster`] is three such servers joined into a Redis Cluster.
//!
//! Processes are started from argv, never through a shell.

use std::{
    io::{self, Read, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long a server gets to answer `PING` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// True when `redis-server` and `redis-cli` are on `PATH`.
pub fn available() -> bool {
    ["redis-server", "redis-cli"].iter().all(|program| find(program).is_some())
}

fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

fn not_found(program: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{program} is not on PATH (scripts/test installs it)"))
}

/// One `redis-server` on `127.0.0.1`.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    cluster: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a standalone server on a free port and waits until it answers.
    pub fn start() -> io::Result<RedisServer> {
        RedisServer::start_on(free_port(false)?, false)
    }

    fn start_on(port: u16, cluster: bool) -> io::Result<RedisServer> {
        let dir = std::env::temp_dir().join(format!("mcp-guard-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut server = RedisServer { port, dir, cluster, child: None };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let program = find("redis-server").ok_or_else(|| not_found("redis-server"))?;
        let port = self.port.to_string();
        let mut args: Vec<&str> =
            vec!["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"];
        let dir = path_str(&self.dir)?;
        args.extend(["--dir", dir, "--logfile", "redis.log"]);
        if self.cluster {
            // Each node's cluster state file, in its own directory.
            args.extend(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]);
            args.extend(["--cluster-node-timeout", "2000"]);
        }
        let child = Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if command(self.port, &["PING"]).is_ok_and(|reply| reply == "PONG") {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(io::Error::other(format!("redis-server exited with {status}; see {}", self.log())));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(io::Error::new(io::ErrorKind::TimedOut, "redis-server did not answer PING"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL, by PID) and reaps it: an outage, not a shutdown.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing was persisted).
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.spawn()
    }

    /// Sends one command and returns its reply as text (see [`command`]).
    pub fn command(&self, args: &[&str]) -> io::Result<String> {
        command(self.port, args)
    }

    fn log(&self) -> String {
        self.dir.join("redis.log").display().to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three `redis-server --cluster-enabled yes` nodes, all primaries, joined
/// with `redis-cli --cluster create`.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes, creates the cluster, and waits for `cluster_state:ok`.
    pub fn start() -> io::Result<RedisCluster> {
        let mut nodes = Vec::with_capacity(3);
        for _ in 0..3 {
            nodes.push(RedisServer::start_on(free_port(true)?, true)?);
        }
        let cli = find("redis-cli").ok_or_else(|| not_found("redis-cli"))?;
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let output = Command::new(cli)
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            let out = String::from_utf8_lossy(&output.stdout);
            return Err(io::Error::other(format!("redis-cli --cluster create failed: {out}")));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        for node in &nodes {
            while !node.command(&["CLUSTER", "INFO"])?.contains("cluster_state:ok") {
                if Instant::now() > deadline {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "cluster_state never became ok"));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(RedisCluster { nodes })
    }

    /// The nodes' URLs, for `[redis] nodes`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// A loopback port that is free now; for a cluster node, its bus port
/// (port + 10000) too.
fn free_port(cluster: bool) -> io::Result<u16> {
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let Some(bus) = port.checked_add(10_000) else { continue };
        if !cluster || TcpListener::bind((Ipv4Addr::LOCALHOST, bus)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, "no free port pair for a cluster node"))
}

fn path_str(path: &Path) -> io::Result<&str> {
    path.to_str().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "temporary directory is not UTF-8"))
}

/// Sends one command to `127.0.0.1:<port>` and returns the reply: a status
/// or bulk string as text, an integer as digits, an error as `Err`.
/// Arrays are not decoded (tests use the `redis` crate for more).
pub fn command(port: u16, args: &[&str]) -> io::Result<String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        reply.extend_from_slice(&buf[..n]);
        if let Some(done) = parse(&reply) {
            return done;
        }
    }
}

/// The reply in `bytes`, or `None` while it is incomplete.
fn parse(bytes: &[u8]) -> Option<io::Result<String>> {
    let end = bytes.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&bytes[1..end]).into_owned();
    match bytes.first()? {
        b'+' | b':' => Some(Ok(line)),
        b'-' => Some(Err(io::Error::other(line))),
        b'$' => {
            let Ok(len) = line.parse::<usize>() else { return Some(Ok(String::new())) }; // $-1: nil
            let body = bytes.get(end + 2..end + 2 + len)?;
            Some(Ok(String::from_utf8_lossy(body).into_owned()))
        }
        _ => Some(Err(io::Error::other("unsupported reply type"))),
    }
}
