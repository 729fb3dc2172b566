//! Global rate limits in Redis, against real `redis-server`s on free ports
//! (never the system's 6379): the GCRA script agrees with the in-memory
//! limiter, replicas share one limit (one server and a three-node cluster),
//! and an outage gives the configured failure mode, then recovers without a
//! restart. Every Redis process is killed by PID when its guard drops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{Gateway, post_as};
use mcp_guard::{
    config::{Config, Overrides, hash_api_key, load_from_str},
    redis::{GlobalRateLimitLayer, Verdict, rate_limit_config},
};
use mcp_guard_layers::{
    identity::PeerAddr,
    jsonrpc::{Limits, inspect},
    rate_limit::{RateLimitExceeded, RateLimitLayer},
};
use mcp_guard_testkit::redis::{RedisCluster, RedisServer};

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

fn redis() -> RedisServer {
    RedisServer::start().expect("redis-server on PATH (scripts/test installs it: apt-get install redis-server)")
}

fn config(toml: &str) -> Config {
    let overrides = Overrides { listen: Some("127.0.0.1:0".into()), ..Overrides::default() };
    load_from_str(toml, "test.toml", std::iter::empty(), &overrides).expect("valid test config")
}

fn layer(toml: &str) -> GlobalRateLimitLayer {
    GlobalRateLimitLayer::from_config(&config(toml)).expect("valid redis config").expect("redis backend")
}

/// A request's extensions as the pipeline has them at the rate limit.
fn request(body: Option<&str>) -> http::Extensions {
    let mut ext = http::Extensions::new();
    ext.insert(PeerAddr("192.0.2.7:5000".parse::<SocketAddr>().unwrap()));
    if let Some(body) = body {
        ext.insert(inspect(body.as_bytes(), Limits::default()).unwrap());
    }
    ext
}

/// A verdict as (admitted, refusing limit, Retry-After seconds).
fn outcome(verdict: Result<(), RateLimitExceeded>) -> (bool, String, u64) {
    match verdict {
        Ok(()) => (true, String::new(), 0),
        Err(r) => (false, r.scope.to_string(), r.retry_after_secs()),
    }
}

fn global(verdict: Verdict) -> Result<(), RateLimitExceeded> {
    match verdict {
        Verdict::Admit => Ok(()),
        Verdict::Limited(refusal) => Err(refusal),
        Verdict::Unavailable => panic!("redis is up"),
    }
}

/// Polls `done` every 50 ms for up to `within`.
async fn eventually(within: Duration, mut done: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn script_decides_as_the_in_memory_limiter_does() {
    let server = redis();
    let limits = "[rate_limit]\nper_minute = 10\nburst = 3\nbackend = \"redis\"\n\
                  [rate_limit.per_method.\"tools/list\"]\nper_minute = 60\nburst = 2\n\
                  [rate_limit.per_tool.echo]\nper_minute = 6\nburst = 1\n";
    let redis_layer = layer(&format!("{limits}[redis]\nurl = \"{}\"\n", server.url()));
    let memory = memory_twin(limits);
    let call = |tool: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}"}}}}"#);
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.to_owned();
    let two_echoes = format!("[{},{}]", call("echo"), call("echo"));
    // Refused requests spend nothing; a batch over a burst never passes.
    let sequence = [call("echo"), call("echo"), list.clone(), list.clone(), list, two_echoes, call("add"), call("add")];
    for (i, body) in sequence.iter().enumerate() {
        let want = outcome(memory.check(&request(Some(body))));
        let got = outcome(global(redis_layer.check(&request(Some(body))).await));
        assert_eq!(got, want, "request {i}: {body}");
    }
    // The caller's buckets share one hash tag and expire once full again.
    let key = "{mcp-guard:rl:ip:192.0.2.7}:caller";
    let pttl: i64 = server.command(&["PTTL", key]).unwrap().parse().unwrap();
    assert!((1..=18_000).contains(&pttl), "caller bucket: 3 units at 6 s each, PTTL {pttl}");
    let pttl: i64 = server.command(&["PTTL", "{mcp-guard:rl:ip:192.0.2.7}:tool:echo"]).unwrap().parse().unwrap();
    assert!((1..=10_000).contains(&pttl), "echo bucket: PTTL {pttl}");
    // A flushed script cache (a restarted server) costs a reload, not a failure.
    server.command(&["SCRIPT", "FLUSH"]).unwrap();
    assert!(matches!(redis_layer.check(&request(None)).await, Verdict::Limited(_)));
    assert_eq!(redis_layer.degraded(), None);
}

/// The in-memory limiter with the rules of `limits` (a `[rate_limit]` section).
fn memory_twin(limits: &str) -> RateLimitLayer {
    let config = config(&limits.replace("backend = \"redis\"\n", ""));
    RateLimitLayer::new(rate_limit_config(config.rate_limit.as_ref().expect("limits on")))
}

/// Admitted checks of `n`, spread over `layers` in turn.
async fn admitted(layers: &[&GlobalRateLimitLayer], n: usize) -> usize {
    let mut count = 0;
    for i in 0..n {
        if layers[i % layers.len()].check(&request(None)).await == Verdict::Admit {
            count += 1;
        }
    }
    count
}

#[tokio::test]
async fn outage_gives_the_failure_mode_and_recovery_needs_no_restart() {
    let mut server = redis();
    let toml = |mode: &str| {
        format!(
            "[rate_limit]\nper_minute = 20\nburst = 20\nbackend = \"redis\"\nreplicas = 2\non_backend_failure = \"{mode}\"\n\
             [redis]\nurl = \"{}\"\n",
            server.url()
        )
    };
    let (a, b, closed) = (layer(&toml("local")), layer(&toml("local")), layer(&toml("closed")));
    // Two replicas share one bucket of 20.
    assert_eq!(admitted(&[&a, &b], 30).await, 20);

    server.stop();
    // Each replica falls back to its share, 20 / 2, and waits for no Redis.
    let started = Instant::now();
    assert_eq!(admitted(&[&a], 15).await, 10);
    assert_eq!(admitted(&[&b], 15).await, 10);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(closed.check(&request(None)).await, Verdict::Unavailable);
    for replica in [&a, &b] {
        assert!(replica.degraded().is_some_and(|why| why.starts_with("rate_limit_backend_unavailable")));
    }
    assert!(closed.degraded().is_some());

    server.restart().unwrap();
    let recovered =
        eventually(Duration::from_secs(5), async || [&a, &b, &closed].iter().all(|l| l.degraded().is_none())).await;
    assert!(recovered, "all three back on Redis within 5 s");
    // Global again: the restarted server is empty, so one fresh bucket of 20
    // (the exhausted local shares would admit nothing).
    assert_eq!(admitted(&[&a, &b], 30).await, 20);
    assert!(matches!(closed.check(&request(None)).await, Verdict::Limited(_)));
}

fn gateway_toml(limits: &str, redis: &str) -> String {
    format!("[rate_limit]\nbackend = \"redis\"\n{limits}\n[redis]\n{redis}\n")
}

/// Statuses of `n` pings, sent to `urls` in turn.
async fn pings(urls: &[&str], token: Option<&str>, n: usize) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(n);
    for i in 0..n {
        statuses.push(post_as(urls[i % urls.len()], token, None, PING).await.status().as_u16());
    }
    statuses
}

fn passed(statuses: &[u16]) -> usize {
    statuses.iter().filter(|s| **s != 429 && **s != 503).count()
}

async fn ready(gw: &Gateway) -> (u16, String) {
    let res = reqwest::get(format!("http://127.0.0.1:{}/ready", gw.port)).await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn two_gateways_admit_one_global_limit() {
    let server = redis();
    let toml = gateway_toml("per_minute = 20\nburst = 20", &format!("url = \"{}\"", server.url()));
    let (one, two) = (Gateway::start(&toml).await, Gateway::start(&toml).await);
    let statuses = pings(&[&one.url, &two.url], None, 60).await;
    // One unit returns every 3 s: a slow run may see one more.
    assert!((20..=21).contains(&passed(&statuses)), "{statuses:?}");
    // The refusal is the in-memory limiter's 429, headers and all.
    let res = post_as(&two.url, None, None, PING).await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["ratelimit-limit"], "20");
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(common::reason(res).await, "rate_limited");
}

#[tokio::test]
async fn cluster_keeps_every_callers_limit_across_gateways() {
    let cluster = RedisCluster::start().expect("a three-node Redis Cluster (redis-server, redis-cli on PATH)");
    // One principal per node: `redis-cli --cluster create` gives three nodes
    // equal slot ranges in order, and each name's hash tag picks a slot.
    let node = cluster.nodes().first().unwrap();
    let mut names = [None, None, None];
    for i in 0.. {
        let name = format!("caller-{i}");
        let slot: usize = node
            .command(&["CLUSTER", "KEYSLOT", &format!("{{mcp-guard:rl:principal:{name}}}")])
            .unwrap()
            .parse()
            .unwrap();
        names[slot * 3 / 16384].get_or_insert(name);
        if names.iter().all(Option::is_some) {
            break;
        }
    }
    let keys: Vec<(String, String)> =
        names.into_iter().flatten().map(|name| (name, mcp_guard::auth::api_key::generate().unwrap())).collect();
    let mut auth = String::from("[auth]\n");
    for (name, key) in &keys {
        auth.push_str(&format!("[[auth.api_keys]]\nname = \"{name}\"\nhash = \"{}\"\n", hash_api_key(key)));
    }
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let toml =
        format!("{auth}{}", gateway_toml("per_minute = 5\nburst = 5", &format!("nodes = [{}]", nodes.join(", "))));
    let (one, two) = (Gateway::start(&toml).await, Gateway::start(&toml).await);
    for (name, key) in &keys {
        let statuses = pings(&[&one.url, &two.url], Some(key), 12).await;
        assert!((5..=6).contains(&passed(&statuses)), "{name}: {statuses:?}");
    }
    for node in cluster.nodes() {
        let keys: u64 = node.command(&["DBSIZE"]).unwrap().parse().unwrap();
        assert!(keys >= 1, "node {} holds a caller's buckets", node.port());
    }
}

/// Log lines, captured for the test's thread (the current-thread runtime
/// runs every gateway task on it).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    /// Captures this thread's log lines until the guards drop.
    fn capture() -> (Logs, (tracing::subscriber::DefaultGuard, tracing::Dispatch)) {
        let logs = Logs::default();
        let guard = tracing::subscriber::set_default(tracing_subscriber::fmt().with_writer(logs.clone()).finish());
        // tracing caches whether a callsite is wanted globally, and while a
        // single dispatcher exists it asks only the registering thread's:
        // another test's thread, without a subscriber, would cache "never"
        // for the events this test counts. A second live dispatcher makes it
        // ask them all.
        let second = tracing::Dispatch::new(tracing_subscriber::registry());
        (logs, (guard, second))
    }

    fn count(&self, event: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap()).matches(event).count()
    }
}

#[tokio::test]
async fn gateways_fall_back_to_their_share_during_an_outage() {
    let (logs, _capturing) = Logs::capture();
    let mut server = redis();
    let toml = gateway_toml("per_minute = 20\nburst = 20\nreplicas = 2", &format!("url = \"{}\"", server.url()));
    let (one, two) = (Gateway::start(&toml).await, Gateway::start(&toml).await);
    assert_eq!(passed(&pings(&[&one.url, &two.url], None, 4).await), 4);

    server.stop();
    // Each gateway now enforces its share alone: 20 / 2 replicas.
    assert_eq!(passed(&pings(&[&one.url], None, 15).await), 10);
    assert_eq!(passed(&pings(&[&two.url], None, 15).await), 10);
    for gw in [&one, &two] {
        let (status, body) = ready(gw).await;
        assert_eq!(status, 200, "still serving, so still in rotation");
        assert!(body.contains("rate_limit_backend_unavailable"), "{body}");
    }
    // Failed probes and 30 requests later: one warning per gateway and outage.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(logs.count("rate_limit_backend_unavailable"), 2);

    server.restart().unwrap();
    let recovered = eventually(Duration::from_secs(5), async || {
        ready(&one).await == (200, "ready".into()) && ready(&two).await == (200, "ready".into())
    })
    .await;
    assert!(recovered, "both gateways back on Redis, neither restarted");
    assert_eq!(logs.count("rate_limit_backend_recovered"), 2);
    // Global again: the restarted (empty) server's one bucket of 20; the
    // exhausted local shares would have admitted nothing.
    let statuses = pings(&[&one.url, &two.url], None, 30).await;
    assert!((20..=21).contains(&passed(&statuses)), "{statuses:?}");
}

#[tokio::test]
async fn closed_mode_refuses_with_503_until_redis_is_back() {
    let mut server = redis();
    let toml = gateway_toml("on_backend_failure = \"closed\"", &format!("url = \"{}\"", server.url()));
    let gw = Gateway::start(&toml).await;
    assert_ne!(post_as(&gw.url, None, None, PING).await.status(), 503);

    server.stop();
    let res = post_as(&gw.url, None, None, PING).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(common::reason(res).await, "rate_limit_unavailable");
    let (status, body) = ready(&gw).await;
    assert_eq!(status, 503, "refusing every request: out of rotation");
    assert!(body.contains("rate_limit_backend_unavailable"), "{body}");

    server.restart().unwrap();
    assert!(eventually(Duration::from_secs(5), async || ready(&gw).await.0 == 200).await);
    assert_ne!(post_as(&gw.url, None, None, PING).await.status(), 503);
}

#[tokio::test]
async fn an_idle_replica_notices_an_outage_and_the_recovery() {
    let mut server = redis();
    let idle = layer(&format!("[rate_limit]\nbackend = \"redis\"\n[redis]\nurl = \"{}\"\n", server.url()));
    assert_eq!(idle.check(&request(None)).await, Verdict::Admit);
    // Past the first probe: from here on only the periodic one runs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stop();
    // No request fails: the periodic probe (every 5 s) finds the outage.
    let stopped = Instant::now();
    assert!(eventually(Duration::from_secs(7), async || idle.degraded().is_some()).await, "outage seen");
    assert!(stopped.elapsed() > Duration::from_secs(3), "by the periodic probe: {:?}", stopped.elapsed());
    server.restart().unwrap();
    assert!(eventually(Duration::from_secs(5), async || idle.degraded().is_none()).await, "recovery seen");
}
