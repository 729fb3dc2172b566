//! The child process of a stdio session. This is the only place mcp-guard
//! starts a process: from an argv list, never through a shell, with an
//! environment built from scratch.
//!
//! Each child gets four tasks: a writer (stdin), a reader (stdout, one
//! JSON-RPC message per line, bounded), a stderr logger, and a supervisor
//! that waits for exit or ends the child (close stdin, wait, then kill).

use std::{process::Stdio, sync::Arc, time::Duration};

use bytes::Bytes;
use mcp_guard_layers::jsonrpc::{MessageKind, classify_message};
use serde_json::value::RawValue;
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStderr, ChildStdin, ChildStdout, Command},
    sync::mpsc,
};

use super::{
    Shared,
    session::{Route, Session},
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
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group: a Ctrl-C at the terminal reaches the gateway,
    // which then ends children in order, instead of killing them mid-reply.
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
    let max = shared.config.limits.max_message_size;
    loop {
        match read_line(&mut reader, &mut line, max).await {
            Ok(Some(true)) => {
                let text = line.strip_suffix(b"\r").unwrap_or(&line);
                if !text.iter().all(u8::is_ascii_whitespace) {
                    deliver(&session, Bytes::copy_from_slice(text)).await;
                }
            }
            Ok(Some(false)) => {
                tracing::warn!(target: "mcp_guard::upstream::stdio", session = session.short_id(), max_bytes = max, "upstream_message_too_large");
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(target: "mcp_guard::upstream::stdio", session = session.short_id(), error = %e, "upstream_read_failed");
                break;
            }
        }
    }
    shared.end(&session, "upstream closed its stdout");
}

/// Sends one message from the child to the stream waiting for it.
async fn deliver(session: &Session, line: Bytes) {
    let Ok(text) = std::str::from_utf8(&line) else {
        tracing::warn!(target: "mcp_guard::upstream::stdio", session = session.short_id(), "upstream_invalid_message");
        return;
    };
    if text.trim_start().starts_with('[') {
        // A batch from the server: route each element on its own.
        match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(items) => {
                for item in items {
                    Box::pin(deliver(session, Bytes::copy_from_slice(item.get().as_bytes()))).await;
                }
            }
            Err(_) => {
                tracing::warn!(target: "mcp_guard::upstream::stdio", session = session.short_id(), "upstream_invalid_message")
            }
        }
        return;
    }
    let Ok(info) = classify_message(text) else {
        tracing::warn!(target: "mcp_guard::upstream::stdio", session = session.short_id(), "upstream_invalid_message");
        return;
    };
    let route = match (&info.kind, &info.id, &info.progress_token) {
        (MessageKind::Response, Some(id), _) => match session.route_response(id) {
            Route::Dropped => {
                tracing::warn!(target: "mcp_guard::upstream::stdio", session = session.short_id(), id = id.as_json(), "upstream_unsolicited_response");
                return;
            }
            route => route,
        },
        (MessageKind::Notification, _, Some(token)) => {
            session.route_progress(token).unwrap_or_else(|| session.route_unrelated(&line))
        }
        _ => session.route_unrelated(&line),
    };
    match route {
        Route::Stream(stream) => {
            if let Err(mpsc::error::SendError(line)) = stream.send(line).await {
                // The POST stream's client went away: the GET stream may still be there.
                let delivered = match session.standalone() {
                    Some(standalone) => standalone.send(line).await.is_ok(),
                    None => false,
                };
                if !delivered {
                    tracing::debug!(target: "mcp_guard::upstream::stdio", session = session.short_id(), "upstream_message_undeliverable");
                }
            }
        }
        Route::Backlogged => {}
        Route::Dropped => {
            tracing::warn!(target: "mcp_guard::upstream::stdio", session = session.short_id(), "upstream_message_dropped");
        }
    }
}

async fn log_stderr(session: Arc<Session>, stderr: ChildStderr) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    while let Ok(Some(complete)) = read_line(&mut reader, &mut line, STDERR_LINE_MAX).await {
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
                    // kill() only fails when the child is already gone.
                    let _ = child.kill().await;
                    child.wait().await
                }
            }
        }
    };
    match status {
        Ok(status) => {
            tracing::info!(target: "mcp_guard::upstream::stdio", session = session.short_id(), pid, %status, "upstream_exited")
        }
        Err(e) => {
            tracing::warn!(target: "mcp_guard::upstream::stdio", session = session.short_id(), pid, error = %e, "upstream_wait_failed")
        }
    }
    shared.end(&session, "upstream process exited");
}

/// Reads one `\n`-terminated line into `buf` (without the `\n`).
///
/// `Ok(Some(true))`: a line. `Ok(Some(false))`: a line longer than `max`,
/// skipped whole without buffering it. `Ok(None)`: end of stream. A final
/// line without `\n` still counts as a line.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut overflow = false;
    let mut seen_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(seen_any.then_some(!overflow));
        }
        seen_any = true;
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if !overflow {
            if buf.len() + chunk.len() > max {
                overflow = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let consumed = done.unwrap_or(available.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(Some(!overflow));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded_and_skipped_whole() {
        let input = format!("short\n{}\nafter\nlast", "x".repeat(100));
        let mut reader = BufReader::with_capacity(16, input.as_bytes());
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(ok) = read_line(&mut reader, &mut buf, 10).await.expect("in-memory read") {
            out.push((ok, String::from_utf8(buf.clone()).expect("utf8")));
        }
        assert_eq!(
            out,
            [(true, "short".into()), (false, String::new()), (true, "after".into()), (true, "last".into())]
        );
    }
}
