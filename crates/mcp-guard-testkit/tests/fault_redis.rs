//! Redis killed and restarted under load: three gateways share one real
//! `redis-server` (a free loopback port, killed by PID) while eight clients
//! keep sending. Two gateways fall back to per-replica limits, one refuses
//! (`on_backend_failure = "closed"`); no request sees anything else, none
//! waits on the dead server, and all three return to the global limit once
//! it is back, without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use common::{
    Gateway,
    load::{percentile, session_post, summary},
    raw_initialize,
};
use mcp_guard_testkit::redis::RedisServer;

/// What a client saw for one `ping`.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Served,
    /// 429 `rate_limited`.
    Limited,
    /// 503 `rate_limit_unavailable`.
    Unavailable,
    Unexpected(String),
}

/// One request: which gateway, when it was sent, how long it took, what it got.
type Record = (usize, Instant, Duration, Outcome);

async fn ping(client: &reqwest::Client, url: &str, session: &str) -> Outcome {
    let sent = session_post(client, url, session, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).send().await;
    let res = match sent {
        Ok(res) => res,
        Err(e) => return Outcome::Unexpected(format!("{e:?}")),
    };
    let status = res.status().as_u16();
    let body = match res.text().await {
        Ok(body) => body,
        Err(e) => return Outcome::Unexpected(format!("{status}, body cut: {e:?}")),
    };
    let reason = || serde_json::from_str::<serde_json::Value>(&body).ok().map(|v| v["error"]["data"]["reason"].clone());
    match status {
        200 if body.contains(r#""result":{}"#) => Outcome::Served,
        429 if reason().is_some_and(|r| r == "rate_limited") => Outcome::Limited,
        503 if reason().is_some_and(|r| r == "rate_limit_unavailable") => Outcome::Unavailable,
        _ => Outcome::Unexpected(format!("{status}: {body}")),
    }
}

async fn ready(gw: &Gateway) -> (u16, String) {
    let res = reqwest::get(format!("http://127.0.0.1:{}/ready", gw.port)).await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn toml(limits: &str, redis: &str) -> String {
    format!("[rate_limit]\nbackend = \"redis\"\n{limits}\n[redis]\n{redis}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load() {
    let mut server = RedisServer::start().expect("redis-server on PATH (scripts/test installs it)");
    let url = format!("url = \"{}\"", server.url());
    // Two replicas of one deployment: a global 20 (2 a second), and a
    // quarter of it each while Redis is away, so the two are told apart.
    let shared = toml("per_minute = 120\nburst = 20\nreplicas = 4", &url);
    // A third with limits far above the load and its own keys: what it
    // refuses, it refuses for the outage alone.
    let closed = toml(
        "per_minute = 600000\nburst = 10000\non_backend_failure = \"closed\"",
        &format!("{url}\nkey_prefix = \"fault-closed\""),
    );
    let gateways =
        Arc::new([Gateway::start(&shared).await, Gateway::start(&shared).await, Gateway::start(&closed).await]);
    // Clients 0-2 on the first gateway, 3-5 on the second, 6-7 on the closed one.
    let which = |client: usize| [0, 0, 0, 1, 1, 1, 2, 2][client];
    let mut sessions = Vec::new();
    for client in 0..8 {
        sessions.push(raw_initialize(&gateways[which(client)].url).await);
    }

    let start = Instant::now();
    let (kill_at, restart_at, end_at) =
        (start + Duration::from_millis(1500), start + Duration::from_millis(3000), start + Duration::from_secs(7));
    let http = reqwest::Client::new();
    let mut load = Vec::new();
    for (client, session) in sessions.iter().cloned().enumerate() {
        let (gateways, http) = (Arc::clone(&gateways), http.clone());
        load.push(tokio::spawn(async move {
            let gw = which(client);
            let mut records: Vec<Record> = Vec::new();
            while Instant::now() < end_at {
                let sent = Instant::now();
                let outcome = ping(&http, &gateways[gw].url, &session).await;
                records.push((gw, sent, sent.elapsed(), outcome));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            records
        }));
    }
    tokio::time::sleep_until(kill_at.into()).await;
    // Taken before the kill: a request may fail while `stop` still reaps.
    let killed = Instant::now();
    server.stop();
    tokio::time::sleep_until(restart_at.into()).await;
    tokio::task::block_in_place(|| server.restart()).expect("redis-server restarts on the same port");
    let restarted = Instant::now();
    let mut records: Vec<Record> = Vec::new();
    for handle in load {
        records.extend(handle.await.unwrap());
    }

    // The closed gateway notices the recovery at its next probe: at most
    // 2 s apart while Redis is down.
    let recovery_bound = restarted + Duration::from_secs(3);
    let phase = |sent: Instant| match sent {
        s if s < killed => "before",
        s if s < restarted => "outage",
        _ => "after",
    };
    for gw in 0..3 {
        for name in ["before", "outage", "after"] {
            let mine: Vec<&Record> = records.iter().filter(|r| r.0 == gw && phase(r.1) == name).collect();
            let n = |o: Outcome| mine.iter().filter(|r| r.3 == o).count();
            let times: Vec<Duration> = mine.iter().map(|r| r.2).collect();
            eprintln!(
                "gateway {gw} {name:>6}: {} served, {} limited, {} unavailable, {} other; {}",
                n(Outcome::Served),
                n(Outcome::Limited),
                n(Outcome::Unavailable),
                mine.iter().filter(|r| matches!(r.3, Outcome::Unexpected(_))).count(),
                if times.is_empty() { "no requests".to_owned() } else { summary(&times) }
            );
        }
    }
    let unexpected: Vec<&Record> = records.iter().filter(|r| matches!(r.3, Outcome::Unexpected(_))).collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    // No request waited on the dead server longer than its timeout allows
    // (250 ms, with room for a loaded CI box).
    let latencies: Vec<Duration> = records.iter().map(|r| r.2).collect();
    assert!(percentile(&latencies, 100.0) < Duration::from_secs(1), "{}", summary(&latencies));
    let outage: Vec<&Record> = records.iter().filter(|r| phase(r.1) == "outage").collect();
    assert!(!outage.is_empty());

    for gw in [0, 1] {
        let mine = |p: &str, o: Outcome| records.iter().filter(|r| r.0 == gw && phase(r.1) == p && r.3 == o).count();
        assert_eq!(records.iter().filter(|r| r.0 == gw && r.3 == Outcome::Unavailable).count(), 0, "gateway {gw}");
        // Still serving during the outage, from its local share.
        assert!(mine("outage", Outcome::Served) >= 1, "gateway {gw} served nothing during the outage");
        assert!(mine("outage", Outcome::Limited) >= 1, "gateway {gw} limited nothing during the outage");
    }
    let closed_records: Vec<&Record> = records.iter().filter(|r| r.0 == 2).collect();
    for r in &closed_records {
        if r.3 == Outcome::Unavailable {
            assert!(r.1 + r.2 >= killed && r.1 < recovery_bound, "503 outside the outage: {:?}", r.1 - start);
        } else {
            assert_eq!(r.3, Outcome::Served, "{r:?}");
        }
    }
    assert!(closed_records.iter().any(|r| r.3 == Outcome::Unavailable), "the closed gateway never refused");
    assert!(closed_records.iter().any(|r| r.1 >= recovery_bound && r.3 == Outcome::Served), "no recovery");

    // All three back on Redis, none restarted.
    let deadline = Instant::now() + Duration::from_secs(5);
    for gw in gateways.iter() {
        while ready(gw).await != (200, "ready".to_owned()) {
            assert!(Instant::now() < deadline, "gateway {} still {:?}", gw.port, ready(gw).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Global again: after a flush, one bucket of 20 across both replicas
    // (their local shares would admit 5 each).
    server.command(&["FLUSHALL"]).unwrap();
    let mut passed = 0;
    for i in 0..40 {
        let client = [0, 3][i % 2];
        if ping(&http, &gateways[which(client)].url, &sessions[client]).await == Outcome::Served {
            passed += 1;
        }
    }
    eprintln!("after recovery: {passed} of 40 pings across both replicas admitted");
    assert!((20..=22).contains(&passed), "{passed}");
    let keys: u64 = server.command(&["DBSIZE"]).unwrap().parse().unwrap();
    assert!(keys >= 1, "the buckets are in Redis again");
}
