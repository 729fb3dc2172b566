//! `mcp-soak`: the load driver of `bench/soak/run.sh` (issue 9).
//!
//! Drives one running gateway at a fixed rate for a fixed time with whole
//! MCP sessions (initialize, initialized, tool calls, lists, sometimes a
//! streamed progress call, DELETE) and a share of hostile requests that
//! must each be refused with a given status and stable reason. Every
//! `--sample` it reads the gateway's VmRSS, open files and children from
//! `/proc` and the window's latency percentiles; at the end it judges the
//! run (see `report.rs` for the criteria) and writes a CSV and a Markdown
//! section. Exit status: 0 pass, 1 fail, 2 bad usage or setup.
//!
//! The load is open-loop at the session level: sessions and hostile
//! requests start on a fixed schedule whatever the gateway's latency, so
//! a slow gateway means more concurrent sessions, not a gentler load.
//! Within a session requests are sequential, with a think time before
//! each, as a real client sends them; sessions therefore overlap.
//!
//! ```text
//! mcp-soak --url http://127.0.0.1:8001/mcp --pid 1234 [--label http] [--stdio]
//!          [--duration 10m] [--warmup 60s] [--sample 5s] [--rate 200]
//!          [--hostile-share 0.2] [--timeout 5s] [--think 20ms] [--max-body 4194304]
//!          [--denied-tool delete_everything] [--origin http://localhost:3000]
//!          [--csv FILE] [--md FILE]
//! ```

mod http;
mod report;
mod stats;
mod traffic;

use std::{
    collections::BTreeMap,
    io::Write as _,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use tokio::time::{Instant, sleep, sleep_until};

use crate::{
    report::{Minute, Run, Sample},
    stats::{Totals, percentile, read_proc},
    traffic::Target,
};

/// Sessions and hostile requests in flight beyond which new ones are
/// skipped (and the run fails): the gateway is not keeping up.
const MAX_IN_FLIGHT: usize = 2048;
/// Idle keep-alive connections the driver keeps.
const POOL: usize = 32;

#[derive(Debug)]
struct Args {
    url: String,
    pid: u32,
    label: String,
    stdio: bool,
    duration: Duration,
    warmup: Duration,
    sample: Duration,
    rate: f64,
    hostile_share: f64,
    timeout: Duration,
    think: Duration,
    max_body: usize,
    denied_tool: String,
    origin: Option<String>,
    csv: Option<String>,
    md: Option<String>,
}

fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().with_context(|| format!("`{text}` is not a duration (e.g. 30s, 10m, 1h)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("`{text}`: unknown unit (ms, s, m, h)"),
    };
    Duration::try_from_secs_f64(secs).with_context(|| format!("`{text}` is not a duration"))
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        url: String::new(),
        pid: 0,
        label: "gateway".into(),
        stdio: false,
        duration: Duration::from_secs(600),
        warmup: Duration::from_secs(60),
        sample: Duration::from_secs(5),
        rate: 200.0,
        hostile_share: 0.2,
        timeout: Duration::from_secs(5),
        think: Duration::from_millis(20),
        max_body: 4 << 20,
        denied_tool: "delete_everything".into(),
        origin: None,
        csv: None,
        md: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--stdio" {
            a.stdio = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => a.url = value,
            "--pid" => a.pid = value.parse().context("--pid")?,
            "--label" => a.label = value,
            "--duration" => a.duration = parse_duration(&value)?,
            "--warmup" => a.warmup = parse_duration(&value)?,
            "--sample" => a.sample = parse_duration(&value)?,
            "--rate" => a.rate = value.parse().context("--rate")?,
            "--hostile-share" => a.hostile_share = value.parse().context("--hostile-share")?,
            "--timeout" => a.timeout = parse_duration(&value)?,
            "--think" => a.think = parse_duration(&value)?,
            "--max-body" => a.max_body = value.parse().context("--max-body")?,
            "--denied-tool" => a.denied_tool = value,
            "--origin" => a.origin = Some(value),
            "--csv" => a.csv = Some(value),
            "--md" => a.md = Some(value),
            _ => bail!("unknown option {flag}"),
        }
    }
    if a.url.is_empty() || a.pid == 0 {
        bail!("--url and --pid are required");
    }
    if !(a.rate > 0.0 && (0.0..1.0).contains(&a.hostile_share)) {
        bail!("--rate must be positive and --hostile-share in [0, 1)");
    }
    if a.sample.is_zero() || a.warmup + a.sample * 2 > a.duration {
        bail!("--duration must cover --warmup and at least two --sample windows");
    }
    Ok(a)
}

/// `http://HOST:PORT/PATH` → the address, the authority and the path.
fn split_url(url: &str) -> anyhow::Result<(SocketAddr, String, String)> {
    let rest = url.strip_prefix("http://").context("--url must be http://IP:PORT/PATH")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let addr = authority.parse().with_context(|| format!("{authority} is not IP:PORT"))?;
    Ok((addr, authority.to_owned(), format!("/{path}")))
}

#[tokio::main]
async fn main() {
    let code = match parse_args() {
        Ok(args) => match soak(args).await {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                eprintln!("mcp-soak: {e:#}");
                2
            }
        },
        Err(e) => {
            eprintln!("mcp-soak: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

/// Decrements the in-flight count when a request task ends, however it ends.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn soak(args: Args) -> anyhow::Result<bool> {
    let (addr, host, path) = split_url(&args.url)?;
    let target = Arc::new(Target::new(
        http::Client::new(addr, path, POOL),
        host,
        args.origin.clone(),
        args.denied_tool.clone(),
        args.timeout,
        args.think,
        args.max_body,
        args.hostile_share > 0.0,
    ));
    let idle = read_proc(args.pid).with_context(|| format!("reading /proc/{}", args.pid))?;
    let mut csv = match &args.csv {
        Some(path) => {
            let mut f = std::fs::File::create(path).with_context(|| format!("creating {path}"))?;
            writeln!(f, "{}", report::CSV_HEADER)?;
            Some(f)
        }
        None => None,
    };

    // The schedule: sessions carry the valid share (and their own hostile
    // requests), sessionless hostile requests make up the rest.
    let session_rate = args.rate * (1.0 - args.hostile_share) / traffic::VALID_PER_SESSION;
    let in_session = if target.in_session_hostile { session_rate * traffic::HOSTILE_PER_SESSION } else { 0.0 };
    let hostile_rate = (args.rate * args.hostile_share - in_session).max(0.0);
    let start = Instant::now();
    let end = start + args.duration;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let sampler = tokio::spawn(sample_loop(
        args.label.clone(),
        target.clone(),
        args.pid,
        start,
        args.duration,
        args.warmup,
        args.sample,
    ));
    let (mut sessions, mut hostiles) = (0u64, 0u64);
    let session_every = Duration::from_secs_f64(1.0 / session_rate);
    let hostile_every = (hostile_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / hostile_rate));
    let (mut next_session, mut next_hostile) = (start, start + session_every / 2);
    loop {
        let hostile_first = hostile_every.is_some() && next_hostile < next_session;
        let at = if hostile_first { next_hostile } else { next_session };
        if at >= end {
            break;
        }
        sleep_until(at).await;
        if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            target.stats.skipped.fetch_add(1, Ordering::Relaxed);
        } else {
            in_flight.fetch_add(1, Ordering::Relaxed);
            let guard = InFlight(in_flight.clone());
            let t = target.clone();
            if hostile_first {
                tokio::spawn(async move {
                    let _guard = guard;
                    traffic::hostile(t, hostiles).await;
                });
            } else {
                tokio::spawn(async move {
                    let _guard = guard;
                    traffic::session(t, sessions).await;
                });
            }
        }
        match hostile_every {
            Some(every) if hostile_first => {
                next_hostile += every;
                hostiles += 1;
            }
            _ => {
                next_session += session_every;
                sessions += 1;
            }
        }
    }
    let load_secs = start.elapsed().as_secs_f64();
    // What is still in flight finishes (each request is bounded by --timeout).
    let drain_until = Instant::now() + args.timeout * 12;
    while in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < drain_until {
        sleep(Duration::from_millis(20)).await;
    }
    let (samples, minutes, all) = sampler.await.context("the sampler panicked")?;
    for s in &samples {
        if let Some(f) = csv.as_mut() {
            writeln!(f, "{}", report::csv_row(&args.label, s))?;
        }
    }
    target.client.close_idle();
    let after = settle(args.pid, args.stdio).await?;

    let settings = format!(
        "Settings: target {} req/s, hostile share {}, duration {:?}, warm-up {:?}, sample {:?}, timeout {:?}, think time {:?}; gateway pid {} at {}.",
        args.rate,
        args.hostile_share,
        args.duration,
        args.warmup,
        args.sample,
        args.timeout,
        args.think,
        args.pid,
        args.url
    );
    let run = Run {
        label: &args.label,
        settings,
        stdio: args.stdio,
        samples: &samples,
        minutes: &minutes,
        idle,
        after,
        p50_us: percentile(&all, 0.50),
        p99_us: percentile(&all, 0.99),
        stats: &target.stats,
        load_secs,
        sessions,
    };
    let checks = report::checks(&run);
    let md = report::markdown(&run, &checks);
    if let Some(path) = &args.md {
        std::fs::write(path, &md).with_context(|| format!("writing {path}"))?;
    }
    eprint!("{md}");
    Ok(checks.iter().all(|c| c.pass))
}

/// After the load: a moment for the driver's closed connections to close
/// on the gateway's side too and, for stdio, every session's child to be
/// reaped (up to 10 s).
async fn settle(pid: u32, stdio: bool) -> anyhow::Result<stats::ProcState> {
    sleep(Duration::from_secs(2)).await;
    let mut after = read_proc(pid)?;
    let until = Instant::now() + Duration::from_secs(10);
    while stdio && after.children > 0 && Instant::now() < until {
        sleep(Duration::from_millis(200)).await;
        after = read_proc(pid)?;
    }
    Ok(after)
}

type Sampled = (Vec<Sample>, Vec<Minute>, Vec<u32>);

/// The minute (from 1) a sample taken at `t` seconds reports on: the one
/// its window ends in, a sample at 60 s closing minute 1.
fn minute_of(t: f64) -> u64 {
    ((t - 1e-3).max(0.0) / 60.0) as u64 + 1
}

/// Every `sample` until the end of the load: the gateway's state and the
/// window's numbers; a line on stderr each time.
async fn sample_loop(
    label: String,
    target: Arc<Target>,
    pid: u32,
    start: Instant,
    duration: Duration,
    warmup: Duration,
    every: Duration,
) -> Sampled {
    let mut samples: Vec<Sample> = Vec::new();
    let mut all: Vec<u32> = Vec::new();
    // Per minute: latencies, requests, seconds, gateway CPU seconds.
    let mut by_minute: BTreeMap<u64, (Vec<u32>, u64, f64, f64)> = BTreeMap::new();
    let mut before = Totals::default();
    let mut ticks_before = read_proc(pid).map(|p| p.cpu_ticks).unwrap_or(0);
    let mut last = start;
    let mut n = 1u32;
    while every * n <= duration {
        // Labelled with the scheduled time (the wake-up is a little later),
        // so that warm-up and minute boundaries fall where asked.
        let tick = every * n;
        sleep_until(start + tick).await;
        n += 1;
        let now = Instant::now();
        let totals = target.stats.totals();
        let window = totals.since(&before);
        before = totals;
        let mut lat = target.stats.take_window();
        lat.sort_unstable();
        let proc = read_proc(pid).unwrap_or_default();
        let t = tick.as_secs_f64();
        let secs = now.duration_since(last).as_secs_f64();
        last = now;
        let warm = tick <= warmup;
        let cpu_secs = proc.cpu_ticks.saturating_sub(ticks_before) as f64 / stats::TICKS_PER_SEC;
        ticks_before = proc.cpu_ticks;
        let sample = Sample {
            t,
            warmup: warm,
            proc,
            cpu_pct: 100.0 * cpu_secs / secs.max(1e-9),
            p50_us: percentile(&lat, 0.50),
            p99_us: percentile(&lat, 0.99),
            window,
            req_per_s: window.requests() as f64 / secs.max(1e-9),
        };
        eprintln!(
            "[soak {label}] t={:>5.0}s{} rss={:.1}MiB fds={} children={} cpu={:.0}% p50={}us p99={}us req/s={:.0} valid ok/failed={}/{} hostile ok/unexpected={}/{}",
            t,
            if warm { " (warm-up)" } else { "" },
            proc.rss_kb as f64 / 1024.0,
            proc.fds,
            proc.children,
            sample.cpu_pct,
            sample.p50_us.unwrap_or(0),
            sample.p99_us.unwrap_or(0),
            sample.req_per_s,
            window.valid_ok,
            window.valid_failed,
            window.hostile_ok,
            window.hostile_unexpected
        );
        let minute = by_minute.entry(minute_of(t)).or_default();
        minute.0.extend_from_slice(&lat);
        minute.1 += window.requests();
        minute.2 += secs;
        minute.3 += cpu_secs;
        if !warm {
            all.extend_from_slice(&lat);
        }
        samples.push(sample);
    }
    all.sort_unstable();
    let minutes = by_minute
        .into_iter()
        .map(|(minute, (mut lat, requests, secs, cpu_secs))| {
            lat.sort_unstable();
            let in_minute = samples.iter().filter(|s| minute_of(s.t) == minute);
            let (rss, fds) = in_minute.fold((0, 0), |(r, f), s| (s.proc.rss_kb.max(r), s.proc.fds.max(f)));
            Minute {
                minute,
                req_per_s: requests as f64 / secs.max(1e-9),
                p50_us: percentile(&lat, 0.50),
                p99_us: percentile(&lat, 0.99),
                max_rss_kb: rss,
                max_fds: fds,
                cpu_pct: 100.0 * cpu_secs / secs.max(1e-9),
            }
        })
        .collect();
    (samples, minutes, all)
}
