//! The tower layer: the in-memory limiter's rules, buckets in Redis.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use mcp_guard_layers::{
    Rejection,
    rate_limit::{RateLimitExceeded, RateLimitLayer},
};
use tokio_util::sync::DropGuard;
use tower::{Layer, Service};

use super::{
    RedisSetupError,
    backend::{Connection, Health, Supervisor, timed_out},
    limiter::Limiter,
    rate_limit_config,
};
use crate::config::{BackendFailure, Config, RateLimitBackend};

/// What a check decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within every limit; the cost is spent.
    Admit,
    /// Over a limit: answer `429` ([`RateLimitExceeded::into_response`]).
    Limited(RateLimitExceeded),
    /// Redis is unreachable and `on_backend_failure = "closed"`: answer
    /// `503` ([`Rejection::RateLimitUnavailable`], `Retry-After`).
    Unavailable,
}

/// Global rate limits: the same rules, costs and `429` as
/// [`RateLimitLayer`], with every bucket in Redis so that all replicas
/// sharing it admit, together, at most the configured limit (plus burst).
///
/// While Redis is unreachable, `on_backend_failure` applies: `local` checks
/// an in-memory limiter whose quotas are divided by `replicas`; `closed`
/// refuses with `503`. See the [module docs](super).
///
/// Cheap to clone; the background tasks end with the last clone.
#[derive(Clone, Debug)]
pub struct GlobalRateLimitLayer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    conn: Connection,
    limiter: Limiter,
    timeout: Duration,
    health: Arc<Health>,
    /// The full limits: asked what a request costs, never spent from.
    rules: RateLimitLayer,
    /// The per-replica share, spent from while Redis is down (`local`).
    fallback: Option<RateLimitLayer>,
    on_failure: BackendFailure,
    _tasks: DropGuard,
}

impl GlobalRateLimitLayer {
    /// The layer for `rate_limit.backend = "redis"`; `None` when limits are
    /// off or kept in memory. Connects in the background (a Redis that is
    /// down at start is an outage like any other). Fails on a `[redis]` URL
    /// the client refuses, or outside a tokio runtime.
    pub fn from_config(config: &Config) -> Result<Option<Self>, RedisSetupError> {
        let Some(settings) = &config.rate_limit else { return Ok(None) };
        let RateLimitBackend::Redis { on_failure, replicas } = settings.backend else { return Ok(None) };
        let redis = config.redis.as_ref().ok_or(RedisSetupError::NoUrl)?;
        // The client and the supervisor spawn tasks: fail, don't panic, without a runtime.
        tokio::runtime::Handle::try_current().map_err(|_| RedisSetupError::NoRuntime)?;
        let limits = rate_limit_config(settings);
        let fallback = match on_failure {
            BackendFailure::Local => Some(RateLimitLayer::new(limits.per_replica(replicas))),
            BackendFailure::Closed => None,
        };
        let conn = Connection::open(redis)?;
        let limiter = Limiter::new(&redis.key_prefix);
        let mode = match on_failure {
            BackendFailure::Local => "local",
            BackendFailure::Closed => "closed",
        };
        let health = Arc::new(Health::new(mode));
        let tasks = Supervisor {
            conn: conn.clone(),
            script: limiter.script().clone(),
            timeout: redis.timeout,
            health: Arc::clone(&health),
            fallback: fallback.clone(),
        }
        .spawn();
        let inner = Inner {
            conn,
            limiter,
            timeout: redis.timeout,
            health,
            rules: RateLimitLayer::new(limits),
            fallback,
            on_failure,
            _tasks: tasks,
        };
        Ok(Some(GlobalRateLimitLayer { inner: Arc::new(inner) }))
    }

    /// Checks a request's extensions (caller, inspection) against every
    /// applicable limit and spends its cost if all pass: one Redis round
    /// trip, bounded by `redis.timeout`; none at all while Redis is down.
    pub async fn check(&self, extensions: &http::Extensions) -> Verdict {
        let inner = &self.inner;
        if inner.health.is_up() {
            let charges = inner.rules.charges(extensions);
            let mut conn = inner.conn.clone();
            let checked = tokio::time::timeout(inner.timeout, inner.limiter.check(&mut conn, &charges)).await;
            match checked {
                Ok(Ok(Ok(()))) => return Verdict::Admit,
                Ok(Ok(Err(refusal))) => return Verdict::Limited(refusal),
                Ok(Err(error)) => inner.health.mark_down(&error),
                Err(_elapsed) => inner.health.mark_down(&timed_out()),
            }
        }
        match &inner.fallback {
            Some(local) => match local.check(extensions) {
                Ok(()) => Verdict::Admit,
                Err(refusal) => Verdict::Limited(refusal),
            },
            None => Verdict::Unavailable,
        }
    }

    /// `None` while Redis answers; otherwise why `/ready` should say the
    /// gateway is degraded. See [`on_failure`](Self::on_failure) for whether
    /// requests are still served meanwhile.
    pub fn degraded(&self) -> Option<&'static str> {
        if self.inner.health.is_up() {
            return None;
        }
        Some(match self.inner.on_failure {
            BackendFailure::Local => "rate_limit_backend_unavailable: per-replica limits in effect",
            BackendFailure::Closed => "rate_limit_backend_unavailable: refusing requests",
        })
    }

    /// The configured failure mode: with `Closed`, a degraded gateway refuses
    /// every MCP request, so `/ready` should answer 503.
    pub fn on_failure(&self) -> BackendFailure {
        self.inner.on_failure
    }
}

impl<S> Layer<S> for GlobalRateLimitLayer {
    type Service = GlobalRateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GlobalRateLimit { inner, layer: self.clone() }
    }
}

/// Middleware built by [`GlobalRateLimitLayer`].
#[derive(Clone, Debug)]
pub struct GlobalRateLimit<S> {
    inner: S,
    layer: GlobalRateLimitLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GlobalRateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request; the fresh
        // clone stays behind for the next `poll_ready`.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            match layer.check(req.extensions()).await {
                Verdict::Admit => inner.call(req).await,
                Verdict::Limited(refusal) => {
                    tracing::debug!(limit = %refusal.scope, retry_after = ?refusal.retry_after, "rate limited");
                    Ok(refusal.into_response())
                }
                Verdict::Unavailable => Ok(Rejection::RateLimitUnavailable.into_response()),
            }
        })
    }
}
