//! What makes the running gateway re-read its configuration: SIGHUP, and
//! with `--watch-config` a change to the config file's contents.
//!
//! The configuration is re-read from the same sources as at startup (file,
//! environment, flags) and fully validated before the server sees it: an
//! invalid file is refused with `config_reload_failed` naming the key, and
//! the old configuration keeps serving. `server::Running::reload` then
//! refuses keys that need a restart, builds the new layers, and swaps them
//! in for the next request.
//!
//! The watch polls (every [`WATCH_EVERY`]) rather than subscribing to
//! inotify: one stat and, when the size or mtime moved, one read and hash,
//! is nothing next to a dependency, and it behaves the same on every
//! filesystem (bind mounts, NFS, Kubernetes ConfigMap symlink swaps).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use mcp_guard::{
    config::{self, Overrides},
    server::Running,
};

/// How often `--watch-config` looks at the file.
pub(crate) const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Where the configuration comes from, to read it again.
#[derive(Clone, Debug)]
pub(crate) struct Sources {
    pub(crate) path: Option<PathBuf>,
    pub(crate) overrides: Overrides,
}

/// Re-reads the configuration and applies it; logs the outcome.
async fn reload(running: &Arc<Running>, sources: &Sources, trigger: &'static str) {
    let (running, sources) = (Arc::clone(running), sources.clone());
    // File reads, key-set parsing and audit-file opening stay off the request threads.
    let outcome = tokio::task::spawn_blocking(move || {
        let config =
            config::load(sources.path.as_deref(), std::env::vars(), &sources.overrides).map_err(|e| e.to_string())?;
        running.reload(config).map_err(|e| e.to_string())
    })
    .await;
    match outcome {
        Ok(Ok(())) => tracing::info!(target: "mcp_guard", trigger, "config_reload_applied"),
        Ok(Err(error)) => {
            metrics::counter!("mcp_guard_config_reload_failures_total").increment(1);
            tracing::error!(target: "mcp_guard", trigger, error, "config_reload_failed");
        }
        Err(e) => tracing::error!(target: "mcp_guard", trigger, error = %e, "config_reload_failed"),
    }
}

/// Reloads on every SIGHUP, and on file changes when `watch` is set, until
/// the returned task is aborted.
pub(crate) fn spawn(running: Arc<Running>, sources: Sources, watch: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut hangup = hangup();
        let mut fingerprint = match (&sources.path, watch) {
            (Some(path), true) => Some(Fingerprint::of(path)),
            _ => None,
        };
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = hangup.recv() => reload(&running, &sources, "SIGHUP").await,
                _ = tick.tick(), if fingerprint.is_some() => {
                    let (Some(path), Some(last)) = (&sources.path, fingerprint.as_mut()) else { continue };
                    if last.changed(path) {
                        reload(&running, &sources, "file_changed").await;
                    }
                }
            }
        }
    })
}

/// SIGHUP as a stream; never fires where there are no signals.
struct Hangup(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

fn hangup() -> Hangup {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(signal) => Hangup(Some(signal)),
            Err(e) => {
                tracing::warn!(target: "mcp_guard", error = %e, "sighup_handler_failed");
                Hangup(None)
            }
        }
    }
    #[cfg(not(unix))]
    Hangup()
}

impl Hangup {
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = self.0.as_mut()
            && signal.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await;
    }
}

/// What the watch compares: cheap metadata first, the contents' hash only
/// when the metadata moved (an editor that rewrites the same bytes, or a
/// `touch`, is not a change).
#[derive(Debug, PartialEq)]
struct Fingerprint {
    meta: Option<(u64, Option<SystemTime>)>,
    digest: Option<[u8; 32]>,
}

impl Fingerprint {
    fn of(path: &Path) -> Fingerprint {
        let meta = std::fs::metadata(path).ok().map(|m| (m.len(), m.modified().ok()));
        let digest = std::fs::read(path).ok().map(|bytes| {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
            let mut out = [0u8; 32];
            out.copy_from_slice(digest.as_ref());
            out
        });
        Fingerprint { meta, digest }
    }

    /// True when the contents differ from last time; remembers the new state.
    fn changed(&mut self, path: &Path) -> bool {
        let meta = std::fs::metadata(path).ok().map(|m| (m.len(), m.modified().ok()));
        if meta == self.meta {
            return false;
        }
        let now = Fingerprint::of(path);
        // A file caught mid-write or briefly missing (an atomic rename) is
        // looked at again on the next tick: only a readable file counts.
        if now.digest.is_none() {
            return false;
        }
        let changed = now.digest != self.digest;
        *self = now;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_content_changes_count() {
        let dir = std::env::temp_dir().join(format!("mcp-guard-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "a = 1\n").unwrap();
        let mut fp = Fingerprint::of(&path);
        assert!(!fp.changed(&path));
        // Same bytes rewritten: metadata may move, contents did not.
        std::fs::write(&path, "a = 1\n").unwrap();
        assert!(!fp.changed(&path));
        std::fs::write(&path, "a = 22\n").unwrap();
        assert!(fp.changed(&path));
        assert!(!fp.changed(&path));
        std::fs::remove_file(&path).unwrap();
        assert!(!fp.changed(&path), "a missing file is not a change");
        std::fs::write(&path, "a = 3\n").unwrap();
        assert!(fp.changed(&path));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
