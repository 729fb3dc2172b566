//! Counting: every request by class, the latencies of the current sampling
//! window, and the gateway process as `/proc` shows it.

use std::{
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

macro_rules! classes {
    ($( $variant:ident => ($name:literal, $hostile:literal), )*) => {
        /// What a request was for; the hostile ones expect a given refusal.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Class {
            $( $variant, )*
        }

        impl Class {
            pub(crate) const ALL: &'static [Class] = &[$(Class::$variant,)*];

            pub(crate) const fn name(self) -> &'static str {
                match self { $(Class::$variant => $name,)* }
            }

            pub(crate) const fn hostile(self) -> bool {
                match self { $(Class::$variant => $hostile,)* }
            }
        }
    };
}

classes! {
    Initialize => ("initialize", false),
    Initialized => ("notifications/initialized", false),
    Echo => ("tools/call echo", false),
    Add => ("tools/call add", false),
    ToolsList => ("tools/list", false),
    ResourcesList => ("resources/list", false),
    Progress => ("tools/call progress (SSE)", false),
    Delete => ("DELETE session", false),
    ForeignOrigin => ("foreign Origin → 403 origin_not_allowed", true),
    BadHost => ("bad Host → 403 host_not_allowed", true),
    OversizedDeclared => ("declared oversize body → 413 request_too_large", true),
    OversizedChunked => ("chunked oversize body → 413 request_too_large", true),
    InvalidJson => ("invalid JSON → 400 parse_error", true),
    InvalidJsonRpc => ("not JSON-RPC → 400 invalid_jsonrpc", true),
    TooDeep => ("deep nesting → 400 nesting_too_deep", true),
    UnknownSession => ("unknown session → 404 session_not_found", true),
    BadVersion => ("bad MCP-Protocol-Version → 400 unsupported_protocol_version", true),
    DeniedTool => ("denied tool → 200 JSON-RPC -32602, tool unlisted", true),
    DeletedSession => ("deleted session reused → 404 session_not_found", true),
}

const CLASSES: usize = Class::ALL.len();
/// Failure descriptions kept for the report (the first ones).
const KEPT_FAILURES: usize = 20;

/// Totals over all classes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    pub(crate) valid_ok: u64,
    pub(crate) valid_failed: u64,
    pub(crate) hostile_ok: u64,
    pub(crate) hostile_unexpected: u64,
}

impl Totals {
    pub(crate) fn requests(&self) -> u64 {
        self.valid_ok + self.valid_failed + self.hostile_ok + self.hostile_unexpected
    }

    pub(crate) fn since(&self, before: &Totals) -> Totals {
        Totals {
            valid_ok: self.valid_ok - before.valid_ok,
            valid_failed: self.valid_failed - before.valid_failed,
            hostile_ok: self.hostile_ok - before.hostile_ok,
            hostile_unexpected: self.hostile_unexpected - before.hostile_unexpected,
        }
    }
}

/// Shared by every request task and the sampler.
#[derive(Debug)]
pub(crate) struct Stats {
    ok: [AtomicU64; CLASSES],
    bad: [AtomicU64; CLASSES],
    /// Microseconds of each timed valid request since the last sample.
    window: Mutex<Vec<u32>>,
    failures: Mutex<Vec<String>>,
    /// Sessions or hostile requests not started: too many still in flight.
    pub(crate) skipped: AtomicU64,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Stats {
            ok: std::array::from_fn(|_| AtomicU64::new(0)),
            bad: std::array::from_fn(|_| AtomicU64::new(0)),
            window: Mutex::new(Vec::with_capacity(4096)),
            failures: Mutex::new(Vec::new()),
            skipped: AtomicU64::new(0),
        }
    }

    /// Counts one request; `latency` only for those whose time is the
    /// gateway's and the upstream's own (not a tool's deliberate delays).
    pub(crate) fn record(&self, class: Class, outcome: Result<(), String>, latency: Option<Duration>) {
        let i = class as usize;
        match outcome {
            Ok(()) => {
                self.ok[i].fetch_add(1, Relaxed);
                if let Some(l) = latency {
                    let us = u32::try_from(l.as_micros()).unwrap_or(u32::MAX);
                    self.window.lock().unwrap_or_else(PoisonError::into_inner).push(us);
                }
            }
            Err(why) => {
                self.bad[i].fetch_add(1, Relaxed);
                let mut kept = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
                if kept.len() < KEPT_FAILURES {
                    kept.push(format!("{}: {why}", class.name()));
                }
            }
        }
    }

    pub(crate) fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for &class in Class::ALL {
            let (ok, bad) = self.counts(class);
            if class.hostile() {
                t.hostile_ok += ok;
                t.hostile_unexpected += bad;
            } else {
                t.valid_ok += ok;
                t.valid_failed += bad;
            }
        }
        t
    }

    /// (as expected, failed or unexpected) for one class.
    pub(crate) fn counts(&self, class: Class) -> (u64, u64) {
        (self.ok[class as usize].load(Relaxed), self.bad[class as usize].load(Relaxed))
    }

    /// The window's latencies, leaving an empty window.
    pub(crate) fn take_window(&self) -> Vec<u32> {
        std::mem::take(&mut *self.window.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
    Some(sorted[rank - 1])
}

/// The gateway process at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProcState {
    pub(crate) rss_kb: u64,
    pub(crate) fds: u64,
    /// Direct children (stdio sessions' servers), zombies included: a child
    /// never reaped shows up here.
    pub(crate) children: u64,
    /// User + system CPU time so far, in clock ticks.
    pub(crate) cpu_ticks: u64,
}

/// `USER_HZ`: 100 on every Linux architecture the soak runs on.
pub(crate) const TICKS_PER_SEC: f64 = 100.0;

pub(crate) fn read_proc(pid: u32) -> anyhow::Result<ProcState> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After `pid (comm)`: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, r)| r.split_ascii_whitespace().collect()).unwrap_or_default();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(ProcState { rss_kb, fds, children: children(pid), cpu_ticks: tick(11) + tick(12) })
}

fn children(pid: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    let parent = pid.to_string();
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter(|e| {
            // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
            std::fs::read_to_string(e.path().join("stat")).ok().is_some_and(|stat| {
                stat.rsplit_once(')').and_then(|(_, rest)| rest.split_ascii_whitespace().nth(1))
                    == Some(parent.as_str())
            })
        })
        .count() as u64
}
