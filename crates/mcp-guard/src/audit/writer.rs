//! The one writer of the audit log: a dedicated thread fed by a bounded
//! channel, so a request never waits on disk I/O.
//!
//! Lines are batched in memory and written when the channel is momentarily
//! empty (or the batch is large), each batch with one `write_all`, so a line
//! is never split across writes or files. A full channel drops the record,
//! counted in `mcp_guard_audit_dropped_total`; write errors are counted in
//! `mcp_guard_audit_write_errors_total`. Both are logged at most once a
//! minute. The thread ends when the last sender is dropped, after writing
//! what it was sent.

use std::{
    ffi::OsString,
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, SyncSender, TrySendError},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Records waiting for the writer at most; past it they are dropped.
const CHANNEL: usize = 65_536;
/// A batch larger than this is written without waiting for a lull.
const BATCH: usize = 64 << 10;

/// Where the lines go.
#[derive(Debug)]
pub(crate) enum Target {
    Stdout,
    File { path: PathBuf, max_size: u64, max_files: usize },
}

enum Command {
    Line(Vec<u8>),
    Flush(mpsc::Sender<()>),
}

/// The sending side, shared by every request.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: SyncSender<Command>,
    dropped_warning: Throttle,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Line(_) => "Line",
            Command::Flush(_) => "Flush",
        })
    }
}

impl Writer {
    /// Opens the target (so an unwritable path fails startup) and starts
    /// the writer thread.
    pub(crate) fn start(target: Target) -> io::Result<Writer> {
        let sink = match target {
            Target::Stdout => Sink::Stdout,
            Target::File { path, max_size, max_files } => {
                let (file, size) = open(&path)?;
                Sink::File(FileSink { path, file: Some(file), size, max_size, max_files })
            }
        };
        let (tx, rx) = mpsc::sync_channel(CHANNEL);
        std::thread::Builder::new().name("mcp-guard-audit".into()).spawn(move || run(rx, sink))?;
        Ok(Writer { tx, dropped_warning: Throttle::default() })
    }

    /// Queues one line (ending in `\n`); never blocks.
    pub(crate) fn send(&self, line: Vec<u8>) {
        if let Err(e) = self.tx.try_send(Command::Line(line)) {
            metrics::counter!("mcp_guard_audit_dropped_total").increment(1);
            if self.dropped_warning.ready() {
                let why = match e {
                    TrySendError::Full(_) => "the audit writer is behind",
                    TrySendError::Disconnected(_) => "the audit writer has stopped",
                };
                tracing::warn!(event = "audit_record_dropped", "audit record dropped: {why}");
            }
        }
    }

    /// Waits (at most `timeout`) until every line queued before is written.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = mpsc::channel();
        self.tx.send(Command::Flush(done)).is_ok() && wait.recv_timeout(timeout).is_ok()
    }
}

/// How long the writer lets records gather after each write.
const LINGER: Duration = Duration::from_millis(2);

fn run(rx: Receiver<Command>, mut sink: Sink) {
    let mut batch = Vec::with_capacity(BATCH);
    let errors = Throttle::default();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(command) = next {
            match command {
                Command::Line(line) => {
                    sink.push(&mut batch, &line, &errors);
                    if batch.len() >= BATCH {
                        sink.write(&mut batch, &errors);
                    }
                }
                Command::Flush(done) => {
                    sink.write(&mut batch, &errors);
                    let _ = done.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        // The channel is empty for now: write what has gathered.
        sink.write(&mut batch, &errors);
        // Let records gather before waiting again: a sender wakes the writer
        // only while it is parked in `recv`, so under load this turns a
        // thread wake-up and a write per record into one per LINGER.
        std::thread::sleep(LINGER);
    }
}

enum Sink {
    Stdout,
    File(FileSink),
}

struct FileSink {
    path: PathBuf,
    /// `None` after a failed reopen; retried on the next write.
    file: Option<File>,
    /// Bytes in the current file, including the unwritten batch.
    size: u64,
    max_size: u64,
    max_files: usize,
}

impl Sink {
    /// Adds a line to the batch, rotating first if it would overfill the file.
    fn push(&mut self, batch: &mut Vec<u8>, line: &[u8], errors: &Throttle) {
        let len = line.len() as u64;
        // A line larger than the limit still goes whole into a fresh file.
        let rotate = matches!(self, Sink::File(f) if f.size > 0 && f.size.saturating_add(len) > f.max_size);
        if rotate {
            self.write(batch, errors);
        }
        if let Sink::File(f) = self {
            if rotate {
                f.rotate(errors);
            }
            f.size = f.size.saturating_add(len);
        }
        batch.extend_from_slice(line);
    }

    fn write(&mut self, batch: &mut Vec<u8>, errors: &Throttle) {
        if batch.is_empty() {
            return;
        }
        let result = match self {
            // Holding the lock for the whole batch keeps log lines from
            // other writers out of the middle of a record.
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(batch).and_then(|()| out.flush())
            }
            Sink::File(f) => f.write(batch),
        };
        if let Err(e) = result {
            failed(errors, "write", &e);
        }
        batch.clear();
    }
}

impl FileSink {
    fn write(&mut self, batch: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            let (file, size) = open(&self.path)?;
            self.file = Some(file);
            self.size = size.saturating_add(batch.len() as u64);
        }
        match &mut self.file {
            Some(file) => file.write_all(batch),
            None => Ok(()),
        }
    }

    /// `path.(N-1)` → `path.N`, …, `path` → `path.1`, then a fresh `path`.
    fn rotate(&mut self, errors: &Throttle) {
        self.file = None;
        for i in (1..self.max_files).rev() {
            rename_if_present(&numbered(&self.path, i), &numbered(&self.path, i + 1), errors);
        }
        rename_if_present(&self.path, &numbered(&self.path, 1), errors);
        match open(&self.path) {
            Ok((file, size)) => {
                self.file = Some(file);
                self.size = size;
            }
            Err(e) => {
                failed(errors, "reopen", &e);
                self.size = 0;
            }
        }
    }
}

fn rename_if_present(from: &Path, to: &Path, errors: &Throttle) {
    match std::fs::rename(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => failed(errors, "rotate", &e),
    }
}

fn failed(errors: &Throttle, what: &'static str, e: &io::Error) {
    metrics::counter!("mcp_guard_audit_write_errors_total").increment(1);
    if errors.ready() {
        tracing::error!(event = "audit_write_failed", error = %e, "audit log {what} failed");
    }
}

/// `path` with `.i` appended (`audit.jsonl.1`), for any path, UTF-8 or not.
pub(crate) fn numbered(path: &Path, i: usize) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{i}"));
    PathBuf::from(name)
}

/// Opens `path` for appending (created `0600` on unix: the log names
/// principals and may hold arguments); returns it with its current size.
fn open(path: &Path) -> io::Result<(File, u64)> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open audit log {}: {e}", path.display())))?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

/// Allows one event per minute (for warnings that could otherwise flood).
#[derive(Debug, Default)]
struct Throttle(AtomicU64);

impl Throttle {
    fn ready(&self) -> bool {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()).max(1);
        let last = self.0.load(Ordering::Relaxed);
        (last == 0 || now >= last + 60)
            && self.0.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::temp_dir;

    fn line(i: usize, len: usize) -> Vec<u8> {
        let mut l = format!("{{\"n\":{i},\"pad\":\"").into_bytes();
        l.resize(len - 3, b'x');
        l.extend_from_slice(b"\"}\n");
        l
    }

    #[test]
    fn rotates_by_size_and_keeps_every_line_whole() {
        let dir = temp_dir("rotate");
        let path = dir.join("audit.jsonl");
        let (max_size, max_files) = (1024, 3);
        let writer = Writer::start(Target::File { path: path.clone(), max_size, max_files }).expect("start");
        // 100-byte lines: ten to a file; 35 lines fill path.3 … path.
        for i in 0..35 {
            writer.send(line(i, 100));
        }
        writer.send(line(35, 3000));
        writer.send(line(36, 100));
        assert!(writer.flush(Duration::from_secs(5)));
        let read = |p: &Path| std::fs::read_to_string(p).expect("read");
        let files: Vec<String> =
            (0..=max_files).map(|i| if i == 0 { read(&path) } else { read(&numbered(&path, i)) }).collect();
        assert!(!numbered(&path, max_files + 1).exists(), "only max_files rotated files are kept");
        assert_eq!(files[0].lines().count(), 1, "after the oversized line, a fresh file");
        assert_eq!(files[1].len(), 3000, "the oversized line alone, whole");
        for f in &files[2..] {
            assert!(f.len() as u64 <= max_size, "{}", f.len());
        }
        let mut numbers: Vec<u64> = files
            .iter()
            .rev()
            .flat_map(|f| f.lines())
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("whole JSON line")["n"].as_u64().expect("n"))
            .collect();
        let kept = numbers.len();
        numbers.dedup();
        assert_eq!(numbers.len(), kept);
        assert_eq!(numbers, (37 - kept as u64..37).collect::<Vec<_>>(), "in order, none lost from the kept files");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        drop(writer);
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn an_unwritable_path_fails_at_start() {
        let dir = temp_dir("unwritable");
        let e = Writer::start(Target::File { path: dir.join("no/such/dir/a.jsonl"), max_size: 1024, max_files: 1 })
            .expect_err("missing directory");
        assert!(e.to_string().contains("no/such/dir"), "{e}");
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn throttle_allows_one_per_minute() {
        let t = Throttle::default();
        assert!(t.ready());
        assert!(!t.ready());
    }
}
