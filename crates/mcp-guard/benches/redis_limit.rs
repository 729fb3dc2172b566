//! The cost of one rate-limit check, in memory vs in Redis:
//! `REDIS_URL=redis://127.0.0.1:6390 cargo bench -p mcp-guard --bench redis_limit`.
//!
//! `memory` is the in-memory limiter (`RateLimitLayer::check`); `redis` is
//! the same check as `GlobalRateLimitLayer::check` (one `EVALSHA` round
//! trip), one at a time (latency); `redis_64_concurrent` sends 64 at once
//! over the multiplexed connection (throughput: see its items/s). Both check
//! a `tools/call` against a caller, a method and a tool limit, with quotas
//! high enough never to refuse. Without `REDIS_URL` the Redis benches are
//! skipped, so `cargo bench` works without a server.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, clippy::print_stdout)]

use std::{net::SocketAddr, sync::OnceLock};

use divan::{Bencher, counter::ItemsCount};
use mcp_guard::{
    config::{Overrides, load_from_str},
    redis::{GlobalRateLimitLayer, Verdict, rate_limit_config},
};
use mcp_guard_layers::{
    identity::PeerAddr,
    jsonrpc::{Limits, inspect},
    rate_limit::RateLimitLayer,
};
use tokio::runtime::Runtime;

const CALL: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"get_weather","arguments":{}}}"#;

/// One unit per microsecond and a burst as large: never refused.
const LIMITS: &str = "[rate_limit]\nper_minute = 60000000\nburst = 60000000\n\
                      [rate_limit.per_method.\"tools/call\"]\nper_minute = 60000000\nburst = 60000000\n\
                      [rate_limit.per_tool.get_weather]\nper_minute = 60000000\nburst = 60000000\n";

fn main() {
    let divan = divan::Divan::from_args();
    if std::env::var_os("REDIS_URL").is_none() {
        println!("REDIS_URL is not set: skipping the Redis benches (memory only)");
        divan.skip_regex("::redis").main();
    } else {
        divan.main();
    }
}

fn request() -> http::Extensions {
    let mut ext = http::Extensions::new();
    ext.insert(PeerAddr("192.0.2.7:5000".parse::<SocketAddr>().unwrap()));
    ext.insert(inspect(CALL.as_bytes(), Limits::default()).unwrap());
    ext
}

fn config(toml: &str) -> mcp_guard::config::Config {
    load_from_str(toml, "bench.toml", std::iter::empty(), &Overrides::default()).unwrap()
}

#[divan::bench]
fn memory(bencher: Bencher) {
    let config = config(LIMITS);
    let layer = RateLimitLayer::new(rate_limit_config(config.rate_limit.as_ref().unwrap()));
    let ext = request();
    bencher.bench_local(|| layer.check(&ext).unwrap());
}

/// The runtime the connection lives on, and the layer, connected.
fn redis_layer() -> &'static (Runtime, GlobalRateLimitLayer) {
    static LAYER: OnceLock<(Runtime, GlobalRateLimitLayer)> = OnceLock::new();
    LAYER.get_or_init(|| {
        let url = std::env::var("REDIS_URL").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let limits = LIMITS.replacen("[rate_limit]\n", "[rate_limit]\nbackend = \"redis\"\n", 1);
        let config = config(&format!("{limits}[redis]\nurl = \"{url}\"\ntimeout = \"2s\"\n"));
        let layer = rt.block_on(async {
            let layer = GlobalRateLimitLayer::from_config(&config).unwrap().unwrap();
            assert_eq!(layer.check(&request()).await, Verdict::Admit, "Redis at REDIS_URL answers");
            layer
        });
        (rt, layer)
    })
}

#[divan::bench]
fn redis(bencher: Bencher) {
    let (rt, layer) = redis_layer();
    let ext = request();
    bencher.bench_local(|| rt.block_on(async { assert_eq!(layer.check(&ext).await, Verdict::Admit) }));
}

#[divan::bench]
fn redis_64_concurrent(bencher: Bencher) {
    let (rt, layer) = redis_layer();
    let ext = request();
    bencher.counter(ItemsCount::new(64usize)).bench_local(|| {
        rt.block_on(async {
            let checks = (0..64).map(|_| layer.check(&ext));
            for verdict in futures_util::future::join_all(checks).await {
                assert_eq!(verdict, Verdict::Admit);
            }
        })
    });
}
