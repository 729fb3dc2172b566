//! The samples, the pass/fail criteria, and the CSV and Markdown written.
//!
//! **RSS growth.** The baseline is the median VmRSS of the first `n`
//! samples after warm-up, the end value the median of the last `n`, with
//! `n` = max(3, 10% of the run's samples); the run fails when end >
//! baseline × 1.05. Warm-up is excluded because the allocator's arenas,
//! tokio's worker threads, the connection pools and the session tables all
//! grow to their working size in the first seconds under load; after that,
//! a leak is growth proportional to requests served. Medians rather than
//! single samples or maxima because RSS under glibc malloc moves by whole
//! arena trims: one sample taken just before a trim is noise, a median of
//! several is the level it returns to.
//!
//! **Open files.** The same windows; fails when the end median exceeds the
//! baseline median by more than max([`FD_SLACK`], half the baseline).
//! Connections in flight, the upstream pool's idle connections (kept up to
//! its idle timeout after a burst) and, for stdio, three pipes per live
//! child move the count by tens between samples; a leak of one descriptor
//! per session or per refused request grows it by thousands over a run,
//! and even one per 10,000 requests passes the slack in a default run.

use std::fmt::Write as _;

use crate::stats::{Class, ProcState, Stats, Totals};

/// Open files the end may exceed the baseline by, at least.
pub(crate) const FD_SLACK: u64 = 32;
/// Allowed RSS growth after warm-up.
pub(crate) const RSS_GROWTH: f64 = 0.05;

/// One sampling window.
#[derive(Clone, Debug)]
pub(crate) struct Sample {
    /// Seconds since the load started.
    pub(crate) t: f64,
    pub(crate) warmup: bool,
    pub(crate) proc: ProcState,
    /// The gateway's CPU use over the window (100 = one core).
    pub(crate) cpu_pct: f64,
    pub(crate) p50_us: Option<u32>,
    pub(crate) p99_us: Option<u32>,
    /// Requests completed in the window.
    pub(crate) window: Totals,
    pub(crate) req_per_s: f64,
}

pub(crate) const CSV_HEADER: &str = "upstream,time_s,phase,rss_kb,fds,children,cpu_pct,p50_us,p99_us,valid_ok,valid_failed,hostile_ok,hostile_unexpected,req_per_s";

pub(crate) fn csv_row(label: &str, s: &Sample) -> String {
    let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
    format!(
        "{label},{:.1},{},{},{},{},{:.1},{},{},{},{},{},{},{:.1}",
        s.t,
        if s.warmup { "warmup" } else { "measure" },
        s.proc.rss_kb,
        s.proc.fds,
        s.proc.children,
        s.cpu_pct,
        opt(s.p50_us),
        opt(s.p99_us),
        s.window.valid_ok,
        s.window.valid_failed,
        s.window.hostile_ok,
        s.window.hostile_unexpected,
        s.req_per_s
    )
}

/// Latency and throughput of one minute of the run.
#[derive(Clone, Debug)]
pub(crate) struct Minute {
    pub(crate) minute: u64,
    pub(crate) req_per_s: f64,
    pub(crate) p50_us: Option<u32>,
    pub(crate) p99_us: Option<u32>,
    pub(crate) max_rss_kb: u64,
    pub(crate) max_fds: u64,
    /// The gateway's mean CPU use over the minute (100 = one core).
    pub(crate) cpu_pct: f64,
}

/// Everything a run produced.
#[derive(Debug)]
pub(crate) struct Run<'a> {
    pub(crate) label: &'a str,
    /// The options, as one line for the report.
    pub(crate) settings: String,
    pub(crate) stdio: bool,
    pub(crate) samples: &'a [Sample],
    pub(crate) minutes: &'a [Minute],
    pub(crate) idle: ProcState,
    /// After the load stopped and in-flight requests finished.
    pub(crate) after: ProcState,
    pub(crate) p50_us: Option<u32>,
    pub(crate) p99_us: Option<u32>,
    pub(crate) stats: &'a Stats,
    pub(crate) load_secs: f64,
    pub(crate) sessions: u64,
}

/// One criterion: passed, and what was measured.
#[derive(Debug)]
pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) pass: bool,
    pub(crate) detail: String,
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

fn us(v: Option<u32>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| v.to_string())
}

pub(crate) fn checks(run: &Run<'_>) -> Vec<Check> {
    let measured: Vec<&Sample> = run.samples.iter().filter(|s| !s.warmup).collect();
    let n = (run.samples.len().div_ceil(10)).max(3).min(measured.len());
    let base = &measured[..n];
    let end = &measured[measured.len() - n..];
    let mut out = Vec::new();
    if measured.len() < 2 {
        out.push(Check {
            name: "duration",
            pass: false,
            detail: format!("{} samples after warm-up: too few to compare (lengthen --duration)", measured.len()),
        });
    }
    let rss = |w: &[&Sample]| median(w.iter().map(|s| s.proc.rss_kb).collect());
    let fds = |w: &[&Sample]| median(w.iter().map(|s| s.proc.fds).collect());
    let (rss_base, rss_end) = (rss(base), rss(end));
    let max_rss = run.samples.iter().map(|s| s.proc.rss_kb).max().unwrap_or(0);
    let growth = if rss_base > 0 { rss_end as f64 / rss_base as f64 - 1.0 } else { 0.0 };
    out.push(Check {
        name: "RSS growth after warm-up",
        pass: rss_base > 0 && growth <= RSS_GROWTH,
        detail: format!(
            "idle {} · baseline {} (median of the {n} samples after warm-up) · end {} (median of the last {n}) → {:+.1}% (limit +{:.0}%) · max {} · after the load {}",
            mib(run.idle.rss_kb),
            mib(rss_base),
            mib(rss_end),
            growth * 100.0,
            RSS_GROWTH * 100.0,
            mib(max_rss),
            mib(run.after.rss_kb)
        ),
    });
    let (fd_base, fd_end) = (fds(base), fds(end));
    let fd_limit = fd_base + FD_SLACK.max(fd_base / 2);
    let max_fds = run.samples.iter().map(|s| s.proc.fds).max().unwrap_or(0);
    out.push(Check {
        name: "open files",
        pass: fd_base > 0 && fd_end <= fd_limit,
        detail: format!(
            "idle {} · baseline {fd_base} · end {fd_end} (limit {fd_limit}) · max {max_fds} · after the load and the driver's connections closed {}",
            run.idle.fds, run.after.fds
        ),
    });
    if run.stdio {
        let max = run.samples.iter().map(|s| s.proc.children).max().unwrap_or(0);
        out.push(Check {
            name: "stdio children reaped",
            pass: run.after.children == 0,
            detail: format!("max {max} at a sample · {} left after the load (must be 0)", run.after.children),
        });
    }
    let t = run.stats.totals();
    let skipped = run.stats.skipped.load(std::sync::atomic::Ordering::Relaxed);
    out.push(Check {
        name: "valid requests",
        pass: t.valid_failed == 0 && skipped == 0,
        detail: format!(
            "{} ok, {} failed, {skipped} sessions not started (driver saturated)",
            t.valid_ok, t.valid_failed
        ),
    });
    out.push(Check {
        name: "hostile requests refused as expected",
        pass: t.hostile_unexpected == 0,
        detail: format!("{} as expected, {} unexpected answers", t.hostile_ok, t.hostile_unexpected),
    });
    out
}

/// The run's section of the Markdown report.
pub(crate) fn markdown(run: &Run<'_>, checks: &[Check]) -> String {
    let pass = checks.iter().all(|c| c.pass);
    let t = run.stats.totals();
    let mut md = String::new();
    let _ = writeln!(md, "## Upstream `{}`: {}\n", run.label, if pass { "PASS" } else { "FAIL" });
    let _ = writeln!(md, "{}\n", run.settings);
    let _ = writeln!(
        md,
        "Load: {:.0} s, {} requests ({:.1} req/s), {} sessions; valid p50 {} µs, p99 {} µs after warm-up.\n",
        run.load_secs,
        t.requests(),
        t.requests() as f64 / run.load_secs.max(1e-9),
        run.sessions,
        us(run.p50_us),
        us(run.p99_us)
    );
    for c in checks {
        let _ = writeln!(md, "- **{}**: {}: {}", c.name, if c.pass { "pass" } else { "FAIL" }, c.detail);
    }
    let _ = writeln!(
        md,
        "\n| minute | req/s | p50 µs | p99 µs | max RSS | max fds | gateway CPU |\n|---:|---:|---:|---:|---:|---:|---:|"
    );
    for m in run.minutes {
        let _ = writeln!(
            md,
            "| {} | {:.1} | {} | {} | {} | {} | {:.0}% |",
            m.minute,
            m.req_per_s,
            us(m.p50_us),
            us(m.p99_us),
            mib(m.max_rss_kb),
            m.max_fds,
            m.cpu_pct
        );
    }
    let _ = writeln!(md, "\n| request | as expected | failed / unexpected |\n|---|---:|---:|");
    for &class in Class::ALL {
        let (ok, bad) = run.stats.counts(class);
        let kind = if class.hostile() { "hostile: " } else { "" };
        let _ = writeln!(md, "| {kind}{} | {ok} | {bad} |", class.name());
    }
    let failures = run.stats.failures();
    if !failures.is_empty() {
        let _ = writeln!(md, "\nFirst failures:\n");
        for f in failures {
            let _ = writeln!(md, "- `{}`", f.replace('`', "'").replace('\n', "\\n").replace('\r', ""));
        }
    }
    md.push('\n');
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;

    /// 24 samples (2 min at 5 s), the first 12 warm-up, RSS and fds given
    /// for the 12 measured ones.
    fn samples(rss: impl Fn(usize) -> u64, fds: impl Fn(usize) -> u64) -> Vec<Sample> {
        (0..24usize)
            .map(|i| {
                let m = i.saturating_sub(12);
                Sample {
                    t: 5.0 * (i + 1) as f64,
                    warmup: i < 12,
                    // Warm-up values far off: they must not count.
                    proc: ProcState {
                        rss_kb: if i < 12 { 1 } else { rss(m) },
                        fds: if i < 12 { 1000 } else { fds(m) },
                        ..ProcState::default()
                    },
                    cpu_pct: 0.0,
                    p50_us: None,
                    p99_us: None,
                    window: Totals::default(),
                    req_per_s: 0.0,
                }
            })
            .collect()
    }

    fn check(samples: &[Sample], stats: &Stats, name: &str) -> bool {
        let run = Run {
            label: "t",
            settings: String::new(),
            stdio: false,
            samples,
            minutes: &[],
            idle: ProcState::default(),
            after: ProcState::default(),
            p50_us: None,
            p99_us: None,
            stats,
            load_secs: 120.0,
            sessions: 0,
        };
        let checks = checks(&run);
        checks.iter().find(|c| c.name == name).map(|c| c.pass).expect("the check is there")
    }

    const RSS: &str = "RSS growth after warm-up";

    #[test]
    fn rss_growth_is_judged_on_medians_after_warm_up() {
        let stats = Stats::new();
        // Flat at 20,000 kB with a spike in each window: medians ignore it.
        let flat = samples(|m| if m % 3 == 1 { 30_000 } else { 20_000 }, |_| 20);
        assert!(check(&flat, &stats, RSS));
        // +4% at the end passes, +6% fails.
        let up4 = samples(|m| if m >= 9 { 20_800 } else { 20_000 }, |_| 20);
        assert!(check(&up4, &stats, RSS));
        let up6 = samples(|m| if m >= 9 { 21_200 } else { 20_000 }, |_| 20);
        assert!(!check(&up6, &stats, RSS));
        // A steady climb of 1% per sample fails.
        let climb = samples(|m| 20_000 + 200 * m as u64, |_| 20);
        assert!(!check(&climb, &stats, RSS));
    }

    #[test]
    fn open_files_may_move_by_the_slack_not_more() {
        let stats = Stats::new();
        assert!(check(&samples(|_| 1, |m| if m >= 9 { 20 + FD_SLACK } else { 20 }), &stats, "open files"));
        assert!(!check(&samples(|_| 1, |m| if m >= 9 { 21 + FD_SLACK } else { 20 }), &stats, "open files"));
        // Half the baseline when that is more.
        assert!(check(&samples(|_| 1, |m| if m >= 9 { 300 } else { 200 }), &stats, "open files"));
        assert!(!check(&samples(|_| 1, |m| if m >= 9 { 301 } else { 200 }), &stats, "open files"));
    }

    #[test]
    fn one_failed_request_fails_the_run() {
        let s = samples(|_| 1, |_| 1);
        let stats = Stats::new();
        stats.record(Class::Echo, Ok(()), None);
        stats.record(Class::BadHost, Ok(()), None);
        assert!(check(&s, &stats, "valid requests"));
        assert!(check(&s, &stats, "hostile requests refused as expected"));
        stats.record(Class::Echo, Err("timeout".into()), None);
        stats.record(Class::BadHost, Err("HTTP 200".into()), None);
        assert!(!check(&s, &stats, "valid requests"));
        assert!(!check(&s, &stats, "hostile requests refused as expected"));
    }
}
