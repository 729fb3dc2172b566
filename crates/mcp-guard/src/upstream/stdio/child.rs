//! The child process of a stdio session. This is the only place mcp-guard
//! starts a process: from an argv list, never through a shell, with an
//! environment built from scratch.
//!
//! Each child gets four tasks: a writer (stdin), a reader (stdout, one
//! JSON-RPC message per line, bounded; `inbound.rs` routes them), a stderr
//! logger, and a supervisor that waits for exit or ends the child (close
//! stdin, wait, then kill). The child leads its own process group, and the
//! group is killed when the child is gone, so what a server started dies
//! with its session.

use std::{process::Stdio, sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::{
    io::{AsyncWriteExt, BufReader},
    process::{Child, ChildStderr, ChildStdin, ChildStdout, Command},
    sync::mpsc,
};

use super::{
    Shared, inbound,
    lines::{IdScan, Line, read_line},
    session::Session,
};
use crate::config::StdioConfig;

const STDERR_LINE_MAX: usize = 8 * 1024;
/// How long a child may take to exit after its stdin closes.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Spawns the server process from `config.argv`.
pub(super) fn spawn(config: &StdioConfig) -> std::io::Result<Child> {
    let Some((program, args)) = config.argv.split_first() else {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"));
    };
    let mut command = Command::new(program);
    command.args(args).env_clear();
    for name in &config.env_passthrough {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .envs(config.env.iter().map(|(k, v)| (k, v.expose())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group: a Ctrl-C at the terminal reaches the gateway,
    // which then ends children in order, instead of killing them mid-reply;
    // and the group is what `kill_group` ends with the session.
    #[cfg(unix)]
    command.process_group(0);
    command.spawn()
}

/// Whether `program` can be started: a path must name an executable file;
/// a bare name must be found as one in `PATH`.
pub(super) fn spawnable(program: &str) -> Result<(), String> {
    let executable = |path: &std::path::Path| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        }
        #[cfg(not(unix))]
        {
            path.is_file()
        }
    };
    if program.contains(std::path::MAIN_SEPARATOR) {
        return if executable(std::path::Path::new(program)) {
            Ok(())
        } else {
            Err(format!("`{program}` is not an executable file"))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| executable(&dir.join(program))) {
        Ok(())
    } else {
        Err(format!("`{program}` is not found in PATH"))
    }
}

/// Starts the I/O tasks of `child` for `session`.
pub(super) fn run(shared: &Arc<Shared>, session: &Arc<Session>, mut child: Child, to_child: mpsc::Receiver<Bytes>) {
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        // Unreachable with the piped Stdio above; end cleanly all the same.
        shared.end(session, "child without pipes");
        return;
    };
    let tracker = &shared.tracker;
    tracker.spawn(write_stdin(Arc::clone(session), stdin, to_child));
    tracker.spawn(read_stdout(Arc::clone(shared), Arc::clone(session), stdout));
    tracker.spawn(log_stderr(Arc::clone(session), stderr));
    tracker.spawn(supervise(Arc::clone(shared), Arc::clone(session), child));
}

async fn write_stdin(session: Arc<Session>, mut stdin: ChildStdin, mut rx: mpsc::Receiver<Bytes>) {
    loop {
        let line = tokio::select! {
            line = rx.recv() => line,
            () = session.ended.cancelled() => None,
        };
        let Some(line) = line else { break };
        let written = async {
            stdin.write_all(&line).await?;
            stdin.write_all(b"\n").await?;
            stdin.flush().await
        };
        if let Err(e) = written.await {
            tracing::warn!(target: "mcp_guard::upstream::stdio", session = session.short_id(), error = %e, "upstream_write_failed");
            break;
        }
    }
    // Dropping stdin closes it: the MCP stdio way to ask a server to exit.
}

async fn read_stdout(shared: Arc<Shared>, session: Arc<Session>, stdout: ChildStdout) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    let mut scan = IdScan::default();
    let max = session.limits.max_message_size;
    let read_all = async {
        loop {
            match read_line(&mut reader, &mut line, max, Some(&mut scan)).await {
                Ok(Line::Complete) => {
                    let text = line.strip_suffix(b"\r").unwrap_or(&line);
                    if !text.iter().all(u8::is_ascii_whitespace) {
                        inbound::deliver(&session, Bytes::copy_from_slice(text)).await;
                    }
                }
                Ok(Line::TooLong) => inbound::oversized(&session, &scan).await,
                Ok(Line::End) => break,
                Err(e) => {
                    tracing::warn!(target: "mcp_guard::upstream::stdio", session = session.short_id(), error = %e, "upstream_read_failed");
                    break;
                }
            }
        }
    };
    tokio::select! {
        () = read_all => {}
        // Once the session is over, nothing the child writes has anywhere to
        // go; and a process that inherited the pipe must not keep this task
        // waiting on a client that stopped reading, or on an end of file.
        () = session.ended.cancelled() => {}
    }
    shared.end(&session, "upstream closed its stdout");
}

async fn log_stderr(session: Arc<Session>, stderr: ChildStderr) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    // Lines written just before the child exited are the ones that say why:
    // keep reading a little past the end of the session, not forever.
    let cut_off = async {
        session.ended.cancelled().await;
        tokio::time::sleep(EXIT_GRACE).await;
    };
    tokio::pin!(cut_off);
    loop {
        let read = tokio::select! {
            read = read_line(&mut reader, &mut line, STDERR_LINE_MAX, None) => read,
            () = &mut cut_off => break,
        };
        let complete = match read {
            Ok(Line::Complete) => true,
            Ok(Line::TooLong) => false,
            Ok(Line::End) | Err(_) => break,
        };
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        tracing::info!(
            target: "mcp_guard::upstream::stdio",
            session = session.short_id(),
            line = text,
            truncated = !complete,
            "upstream_stderr"
        );
    }
}

async fn supervise(shared: Arc<Shared>, session: Arc<Session>, mut child: Child) {
    let pid = child.id();
    let status = tokio::select! {
        status = child.wait() => status,
        () = session.ended.cancelled() => {
            // Stdin is closed by the writer once `ended` fires; give the
            // server a moment to exit on its own before killing it.
            match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    if let Some(pid) = pid {
                        kill_group(pid).await;
                    }
                    // kill() only fails when the child is already gone.
                    let _ = child.kill().await;
                    child.wait().await
                }
            }
        }
    };
    // Whatever the server started and left behind is in its process group:
    // it goes with the server, so no session leaves processes running.
    if let Some(pid) = pid {
        kill_group(pid).await;
    }
    match status {
        Ok(status) => {
            tracing::info!(target: "mcp_guard::upstream::stdio", session = session.short_id(), pid, %status, "upstream_exited")
        }
        Err(e) => {
            tracing::warn!(target: "mcp_guard::upstream::stdio", session = session.short_id(), pid, error = %e, "upstream_wait_failed")
        }
    }
    // The reader delivers what the child wrote before it exited, then ends
    // the session itself; ending it here first would answer requests whose
    // responses are still in the pipe with an error.
    let _ = tokio::time::timeout(EXIT_GRACE, session.ended.cancelled()).await;
    shared.end(&session, "upstream process exited");
}

/// Sends SIGKILL to the process group `pgid` (the child's, see [`spawn`]).
///
/// The standard library signals only the process it spawned; reaching a
/// group takes kill(2) with a negative pid, which rustix wraps safely.
/// Failure is normal (no process left in the group) and only logged at debug.
#[cfg(unix)]
async fn kill_group(pgid: u32) {
    let Some(group) = i32::try_from(pgid).ok().and_then(rustix::process::Pid::from_raw) else { return };
    match rustix::process::kill_process_group(group, rustix::process::Signal::KILL) {
        Ok(()) => tracing::debug!(target: "mcp_guard::upstream::stdio", pgid, "process_group_killed"),
        Err(e) => tracing::debug!(target: "mcp_guard::upstream::stdio", pgid, error = %e, "process_group_kill_failed"),
    }
}

#[cfg(not(unix))]
async fn kill_group(_pgid: u32) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn a_process_group_is_killed_whole() {
        // A group leader and a member, as a stdio server and a process it started.
        let mut leader = std::process::Command::new("sleep");
        std::os::unix::process::CommandExt::process_group(&mut leader, 0);
        let mut leader = leader.arg("30").spawn().expect("sleep runs");
        let pgid = leader.id();
        let mut member = std::process::Command::new("sleep");
        std::os::unix::process::CommandExt::process_group(&mut member, i32::try_from(pgid).expect("a pid"));
        let mut member = member.arg("30").spawn().expect("sleep runs");
        kill_group(pgid).await;
        for child in [&mut leader, &mut member] {
            let status = child.wait().expect("reaped");
            assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
        }
    }
}
