//! Shared by the hostile and faulty stdio upstream tests: the hostile
//! server binary, its violation counters, and process checks (the raw tool
//! calls and SSE reading are in `common::events`).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

/// The hostile stdio server (`src/bin/hostile-stdio.rs`).
pub const HOSTILE: &str = env!("CARGO_BIN_EXE_hostile-stdio");

/// `mcp_guard_upstream_violations_total{upstream="stdio",kind}` as `/metrics` shows it now.
pub async fn violations(port: u16, kind: &str) -> u64 {
    crate::common::events::violations(port, "stdio", kind).await
}

/// Whether `pid` is a running process (not gone, not a zombie).
pub fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

/// Waits until `done` holds, for at most `within`; false if it never did.
pub async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// Sends SIGKILL to one process, by PID.
pub fn kill(pid: u32) {
    let status = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill runs");
    assert!(status.success(), "kill -KILL {pid}");
}

/// Kills a process by PID when dropped, if it still runs: a failed
/// assertion must not leave a test's processes behind.
pub struct Reap(pub u32);

impl Drop for Reap {
    fn drop(&mut self) {
        if running(self.0) {
            let _ = std::process::Command::new("kill").args(["-KILL", &self.0.to_string()]).status();
        }
    }
}
