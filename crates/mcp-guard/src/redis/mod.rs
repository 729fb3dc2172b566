//! Global rate limits in Redis (`rate_limit.backend = "redis"`).
//!
//! The in-memory limiter ([`mcp_guard_layers::rate_limit`]) keeps its
//! buckets per process, so *n* replicas admit *n* times the limit. Here the
//! buckets live in Redis — one server (`redis://`, `rediss://`) or a Redis
//! Cluster (`[redis] nodes`) — and every replica admits from the same ones:
//! together they stay within the configured limit plus burst.
//!
//! # One check, one round trip
//!
//! The rules (which limits apply, what a request costs) are the in-memory
//! limiter's own, from [`RateLimitLayer::charges`](mcp_guard_layers::rate_limit::RateLimitLayer::charges).
//! `gcra.lua` runs them in Redis atomically: it tests every bucket of the
//! request first and spends from all of them only if all pass, so a refused
//! request costs nothing anywhere and two replicas cannot both spend the
//! last unit. It refuses with the wait of the bucket that frees up last,
//! and the refusal is the same `429` (`Retry-After`, `RateLimit-*`) as in
//! memory. Time is the Redis server's (`TIME`), so replicas' clocks never
//! matter. The script is loaded once (`SCRIPT LOAD`) and run by its SHA
//! (`EVALSHA`), reloaded when a restarted server has forgotten it.
//!
//! Keys are `{<key_prefix>:rl:<caller>}:<limit>`, e.g.
//! `{mcp-guard:rl:principal:alice}:tool:delete_all`. The braces are a
//! cluster hash tag: all buckets of one caller share a slot, which a
//! multi-key script needs, while different callers spread over the cluster.
//! Each key expires when its bucket would be full again, so idle callers
//! leave nothing behind.
//!
//! # When Redis is unreachable
//!
//! A check that fails or outlives `redis.timeout` (default 250 ms) starts an
//! outage: `rate_limit_backend_unavailable` is logged once (warn), the counter
//! `mcp_guard_rate_limit_backend_unavailable_total` goes up by one, and the
//! gauge `mcp_guard_rate_limit_backend_up` drops to 0. Until Redis answers
//! again, requests do not wait for it:
//!
//! - `on_backend_failure = "local"` (default): each replica enforces its
//!   share in memory, every quota divided by `rate_limit.replicas` (at least
//!   1), so the replicas together still stay near the limit;
//! - `"closed"`: every request is refused with `503`, reason
//!   `rate_limit_unavailable`, and `Retry-After`.
//!
//! A background task probes Redis with backoff (100 ms doubling to 2 s);
//! the first answer ends the outage (`rate_limit_backend_recovered`, info)
//! and limits are global again. No restart is needed. While Redis is up the
//! task probes every 5 s, so an idle replica notices an outage too.
//!
//! The same deployment records ended sessions ([`RedisEndedSessions`]), so a
//! session deleted through one replica cannot be replayed through another.
//!
//! [`GlobalRateLimitLayer::degraded`] tells `/ready` about an outage: with
//! `local` the replica still serves (under its share), so it should stay
//! ready (200) and name the degradation; with `closed` it refuses every
//! request, so it should not be (503).

mod backend;
mod layer;
mod limiter;
mod sessions;

pub use layer::{GlobalRateLimit, GlobalRateLimitLayer, Verdict};
use mcp_guard_layers::rate_limit::{RateLimitConfig, RateQuota};
pub use sessions::{RedisEndedSessions, ended_sessions};

use crate::config::{Quota, RateLimitSettings};

/// Why the Redis backend could not be set up. Never shows a URL: it may
/// carry a password.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    /// `backend = "redis"` without a `[redis]` URL (config validation
    /// prevents this).
    #[error("rate_limit.backend = \"redis\" needs a [redis] url or nodes")]
    NoUrl,
    /// The client refused the URL or its options.
    #[error("redis: {0}")]
    Client(redis::RedisError),
    /// Set up outside a tokio runtime, which the connection's tasks need.
    #[error("the Redis rate limiter must be set up inside a tokio runtime")]
    NoRuntime,
}

/// The in-memory limiter's configuration for these settings: the rules
/// both backends enforce.
pub fn rate_limit_config(settings: &RateLimitSettings) -> RateLimitConfig {
    let quota = |q: &Quota| RateQuota::per_minute(q.per_minute).with_burst(q.burst);
    let mut limits = RateLimitConfig::new(settings.caller.per_minute).with_burst(settings.caller.burst);
    for (method, q) in &settings.per_method {
        limits = limits.limit_method(method.clone(), quota(q));
    }
    for (tool, q) in &settings.per_tool {
        limits = limits.limit_tool(tool.clone(), quota(q));
    }
    limits
}
