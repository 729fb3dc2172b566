//! The connection to Redis (one server or a cluster), whether it is up, and
//! the task that finds out when it is back.
//!
//! Health is one flag. A check or probe that fails or times out marks Redis
//! down (logged and counted once per outage); while down, requests do not
//! wait on Redis at all but take the failure mode at once, and a supervisor
//! task probes with `SCRIPT LOAD` (which also reloads the script into a
//! restarted server) with exponential backoff until it answers, then marks
//! it up. While up, it probes every few seconds, so an idle gateway's
//! `/ready` is current too.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use mcp_guard_layers::rate_limit::RateLimitLayer;
use redis::{
    Client, Cmd, Pipeline, RedisError, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::{ClusterClientBuilder, ClusterConfig},
    cluster_async::ClusterConnection,
};
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::RedisSetupError;
use crate::config::RedisConfig;

/// First probe delay after an outage starts, doubled per failed probe.
const FIRST_PROBE: Duration = Duration::from_millis(100);
/// Longest wait between probes: how late a recovery may be noticed.
const MAX_PROBE: Duration = Duration::from_secs(2);
/// Probe interval while Redis is up, so an idle gateway notices an outage.
const HEALTH_CHECK: Duration = Duration::from_secs(5);
/// How often the in-memory fallback forgets full buckets (as the janitor
/// does for the in-memory limiter).
const HOUSEKEEPING: Duration = Duration::from_secs(30);

/// A connection to a single server or a cluster, as one `ConnectionLike`.
///
/// Both multiplex every request over shared sockets and reconnect by
/// themselves; cloning is cheap. `Debug` shows the kind only: the client
/// holds the URL, which may hold a password.
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Connection::Single(_) => "Connection::Single",
            Connection::Cluster(_) => "Connection::Cluster",
        })
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

impl Connection {
    /// Builds the connection without waiting for it: Redis may be down at
    /// start, and the gateway must start anyway (and recover without a
    /// restart). Must run inside a tokio runtime.
    pub(super) fn open(config: &RedisConfig) -> Result<Connection, RedisSetupError> {
        let timeout = config.timeout;
        // Urls are exposed only to the client; a parse error names no URL.
        let urls: Vec<&str> = config.urls.iter().map(|u| u.expose()).collect();
        if config.cluster {
            let client = ClusterClientBuilder::new(urls)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                // A MOVED redirect or a node reconnect is retried, within the timeout.
                .retries(2)
                .build()
                .map_err(RedisSetupError::Client)?;
            let config = ClusterConfig::new().set_connection_timeout(timeout).set_response_timeout(timeout);
            Ok(Connection::Cluster(client.get_pending_async_connection_with_config(config)))
        } else {
            let url = urls.first().copied().ok_or(RedisSetupError::NoUrl)?;
            let client = Client::open(url).map_err(RedisSetupError::Client)?;
            // Its own reconnect gives up quickly: the supervisor owns the backoff.
            let manager = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(10))
                .set_max_delay(timeout);
            ConnectionManager::new_lazy_with_config(client, manager)
                .map(Connection::Single)
                .map_err(RedisSetupError::Client)
        }
    }
}

/// Whether Redis answers, and who to wake when it stops.
#[derive(Debug)]
pub(super) struct Health {
    up: AtomicBool,
    down_since: Mutex<Option<Instant>>,
    wake: Notify,
    /// For the log line: what happens to requests meanwhile.
    mode: &'static str,
}

impl Health {
    /// Starts up: the first check or probe finds out otherwise.
    pub(super) fn new(mode: &'static str) -> Self {
        Health { up: AtomicBool::new(true), down_since: Mutex::new(None), wake: Notify::new(), mode }
    }

    pub(super) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Redis failed: logged and counted only by the call that ends an up period.
    pub(super) fn mark_down(&self, error: &RedisError) {
        if self.up.swap(false, Ordering::AcqRel) {
            if let Ok(mut since) = self.down_since.lock() {
                *since = Some(Instant::now());
            }
            tracing::warn!(target: "mcp_guard", error = %error, fallback = self.mode, "rate_limit_backend_unavailable");
            metrics::counter!("mcp_guard_rate_limit_backend_unavailable_total").increment(1);
            metrics::gauge!("mcp_guard_rate_limit_backend_up").set(0.0);
            self.wake.notify_one();
        }
    }

    fn mark_up(&self) {
        // Set on every successful probe, the first included: the gauge must
        // exist even if Redis never fails.
        metrics::gauge!("mcp_guard_rate_limit_backend_up").set(1.0);
        if !self.up.swap(true, Ordering::AcqRel) {
            let since = self.down_since.lock().ok().and_then(|mut s| s.take());
            let down_ms = since.map_or(0, |s| u64::try_from(s.elapsed().as_millis()).unwrap_or(u64::MAX));
            tracing::info!(target: "mcp_guard", down_ms, "rate_limit_backend_recovered");
        }
    }
}

/// What the supervisor needs; it ends when the returned guard is dropped
/// (with the last clone of the layer).
pub(super) struct Supervisor {
    pub(super) conn: Connection,
    pub(super) script: redis::Script,
    pub(super) timeout: Duration,
    pub(super) health: Arc<Health>,
    /// Fallback buckets to prune: the gateway's janitor only sees its own.
    pub(super) fallback: Option<RateLimitLayer>,
}

impl Supervisor {
    /// Starts the probing task and, for the fallback, a housekeeping task.
    pub(super) fn spawn(self) -> DropGuard {
        let stop = CancellationToken::new();
        if let Some(fallback) = self.fallback.clone() {
            tokio::spawn(stop.clone().run_until_cancelled_owned(async move {
                let mut tick = tokio::time::interval(HOUSEKEEPING);
                loop {
                    tick.tick().await;
                    fallback.housekeeping();
                }
            }));
        }
        tokio::spawn(stop.clone().run_until_cancelled_owned(self.run()));
        stop.drop_guard()
    }

    async fn run(mut self) {
        // The first probe loads the script and finds an outage before a request does.
        self.probe_until_up().await;
        loop {
            // A failed check wakes us at once; without traffic, a periodic
            // probe keeps `/ready` honest.
            let woken = tokio::time::timeout(HEALTH_CHECK, self.health.wake.notified()).await.is_ok();
            if woken || !self.probe().await {
                self.probe_until_up().await;
            }
        }
    }

    /// One `SCRIPT LOAD` (on a cluster, sent to every primary): proves that
    /// Redis answers and that `EVALSHA` will find the script. A failure
    /// starts an outage; a success ends one.
    async fn probe(&mut self) -> bool {
        match tokio::time::timeout(self.timeout, self.script.load_async(&mut self.conn)).await {
            Ok(Ok(_sha)) => {
                self.health.mark_up();
                true
            }
            Ok(Err(error)) => {
                self.health.mark_down(&error);
                false
            }
            Err(_elapsed) => {
                self.health.mark_down(&timed_out());
                false
            }
        }
    }

    /// Probes with backoff until Redis answers.
    async fn probe_until_up(&mut self) {
        let mut delay = FIRST_PROBE;
        while !self.probe().await {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_PROBE);
        }
    }
}

/// The error a check or probe that outlived `redis.timeout` is reported as.
pub(super) fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within redis.timeout"))
}
