use std::{num::NonZeroU32, sync::Arc, time::Duration};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::NoOpMiddleware,
    nanos::Nanos,
    state::{
        InMemoryState, NotKeyed, StateStore,
        keyed::{DashMapStateStore, ShrinkableKeyedStateStore},
    },
};
use tower::Layer;

use super::{LimitScope, RateLimit, RateLimitExceeded};
use crate::{identity::CallerKey, jsonrpc::MessageInfo};

/// 60: the default caller quota per minute.
const SIXTY: NonZeroU32 = NonZeroU32::MIN.saturating_add(59);

/// One limit: a sustained rate per minute and a burst capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateQuota {
    /// Sustained rate: requests (JSON-RPC messages) per minute. One unit of
    /// capacity returns every `60 s / per_minute`.
    pub per_minute: NonZeroU32,
    /// How many may be spent at once. Default (`None`): `per_minute`, a whole
    /// minute's quota.
    pub burst: Option<NonZeroU32>,
}

impl RateQuota {
    /// `per_minute` requests a minute, all of which may be spent at once.
    pub const fn per_minute(per_minute: NonZeroU32) -> Self {
        RateQuota { per_minute, burst: None }
    }

    /// The same rate with a burst capacity of `burst`.
    pub const fn with_burst(self, burst: NonZeroU32) -> Self {
        RateQuota { burst: Some(burst), ..self }
    }

    /// The burst capacity in effect: `burst`, else `per_minute`.
    pub fn effective_burst(&self) -> NonZeroU32 {
        self.burst.unwrap_or(self.per_minute)
    }

    fn governor_quota(&self) -> Quota {
        Quota::per_minute(self.per_minute).allow_burst(self.effective_burst())
    }
}

/// What [`RateLimitLayer`] enforces.
///
/// Every request must pass the per-caller limit and every per-method and
/// per-tool limit that applies to one of its messages. Each limit keeps one
/// bucket per caller ([`CallerKey`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Per-caller sustained rate, in JSON-RPC messages per minute (a request
    /// without an [`Inspection`](crate::jsonrpc::Inspection), such as a GET,
    /// counts as one). Default: 60.
    pub per_minute: NonZeroU32,
    /// Per-caller burst capacity. Default (`None`): `per_minute`, so a whole
    /// minute's quota may be spent at once and capacity then returns at
    /// `per_minute`'s rate.
    pub burst: Option<NonZeroU32>,
    /// Extra limits for a JSON-RPC method (e.g. `"tools/call"`), per caller;
    /// every message with that `method` (request or notification) counts.
    /// Default: none.
    pub per_method: Vec<(String, RateQuota)>,
    /// Extra limits for `tools/call` of one tool name, per caller. Default:
    /// none.
    pub per_tool: Vec<(String, RateQuota)>,
}

impl Default for RateLimitConfig {
    /// 60 messages a minute per caller, burst 60, no method or tool limits.
    fn default() -> Self {
        RateLimitConfig::new(SIXTY)
    }
}

impl RateLimitConfig {
    /// `per_minute` messages a minute per caller, burst `per_minute`, no
    /// method or tool limits.
    pub fn new(per_minute: NonZeroU32) -> Self {
        RateLimitConfig { per_minute, burst: None, per_method: Vec::new(), per_tool: Vec::new() }
    }

    /// Sets the per-caller burst capacity.
    pub fn with_burst(mut self, burst: NonZeroU32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Adds a limit for the JSON-RPC method `method`.
    pub fn limit_method(mut self, method: impl Into<String>, quota: RateQuota) -> Self {
        self.per_method.push((method.into(), quota));
        self
    }

    /// Adds a limit for `tools/call` of the tool `tool`.
    pub fn limit_tool(mut self, tool: impl Into<String>, quota: RateQuota) -> Self {
        self.per_tool.push((tool.into(), quota));
        self
    }

    /// The per-caller limit as a [`RateQuota`].
    pub fn caller_quota(&self) -> RateQuota {
        RateQuota { per_minute: self.per_minute, burst: self.burst }
    }
}

/// Applies [`RateLimit`] to a service.
///
/// Cheap to clone: every clone, and every service it builds, shares the same
/// buckets. Call [`housekeeping`](Self::housekeeping) periodically.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    limits: Arc<Limits>,
}

impl RateLimitLayer {
    /// Enforces `config`.
    pub fn new(config: RateLimitConfig) -> Self {
        RateLimitLayer { limits: Arc::new(Limits::new(&config, DefaultClock::default())) }
    }

    /// Checks a request's extensions against every applicable limit and, if
    /// all pass, spends one unit per message from each. On refusal nothing is
    /// spent (but see the [module docs](crate::rate_limit#checking-several-limits)
    /// on concurrent requests).
    pub fn check(&self, extensions: &http::Extensions) -> Result<(), RateLimitExceeded> {
        self.limits.check(extensions)
    }

    /// What [`check`](Self::check) would test and spend for a request,
    /// without looking at or allocating a bucket: for a limiter that keeps
    /// the buckets elsewhere (a shared backend) but applies these rules.
    pub fn charges(&self, extensions: &http::Extensions) -> super::Charges {
        self.limits.charges(extensions)
    }

    /// Forgets callers whose buckets are full again (indistinguishable from a
    /// caller never seen) and releases the memory they held, in every limit.
    ///
    /// The gateway calls this periodically; a standalone user must call it
    /// too (once a minute is plenty), or the number of tracked callers only
    /// grows.
    pub fn housekeeping(&self) {
        self.limits.housekeeping();
    }

    /// How many (caller, limit) buckets are tracked, summed over all limits.
    pub fn len(&self) -> usize {
        self.limits.len()
    }

    /// True when no bucket is tracked.
    pub fn is_empty(&self) -> bool {
        self.limits.rules.iter().all(|rule| rule.limiter.is_empty())
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit { inner, limits: Arc::clone(&self.limits) }
    }
}

/// Every limit, most specific first. Generic over the clock so property
/// tests can drive time with governor's fake clock; the gateway uses the default.
#[derive(Debug)]
pub(super) struct Limits<C: Clock = DefaultClock> {
    pub(super) rules: Box<[Rule<C>]>,
}

impl<C: Clock + Clone> Limits<C> {
    pub(super) fn new(config: &RateLimitConfig, clock: C) -> Self {
        let rule = |scope, quota| Rule::new(scope, quota, clock.clone());
        let caller = rule(LimitScope::Caller, config.caller_quota());
        // Most specific first: tool, then method, then caller.
        let tools = config.per_tool.iter().map(|(tool, q)| rule(LimitScope::Tool(tool.as_str().into()), *q));
        let methods = config.per_method.iter().map(|(method, q)| rule(LimitScope::Method(method.as_str().into()), *q));
        Limits { rules: tools.chain(methods).chain(std::iter::once(caller)).collect() }
    }
}

impl<C: Clock> Limits<C> {
    pub(super) fn housekeeping(&self) {
        for rule in self.rules.iter() {
            rule.limiter.retain_recent();
            rule.limiter.shrink_to_fit();
        }
    }

    pub(super) fn len(&self) -> usize {
        self.rules.iter().map(|rule| rule.limiter.len()).sum()
    }

    pub(super) fn check(&self, extensions: &http::Extensions) -> Result<(), RateLimitExceeded> {
        let messages = extensions.get::<crate::jsonrpc::Inspection>().map_or(&[][..], |i| &i.messages[..]);
        let mut probe = Probe { caller: CallerKey::of(extensions), mode: Mode::Peek };
        // Pass 1 spends nothing and reports the refusal with the longest wait
        // (the request cannot pass before then); pass 2 spends.
        let mut worst: Option<RateLimitExceeded> = None;
        for rule in self.rules.iter() {
            if let Err(refusal) = rule.test(&probe, messages)
                && worst.as_ref().is_none_or(|w| refusal.retry_after > w.retry_after)
            {
                worst = Some(refusal);
            }
        }
        if let Some(refusal) = worst {
            return Err(refusal);
        }
        probe.mode = Mode::Commit;
        // A concurrent request of the same caller may have spent the capacity
        // in between: then the limits already spent stay spent.
        self.rules.iter().try_for_each(|rule| rule.test(&probe, messages))
    }
}

type Limiter<C> = RateLimiter<Probe, PeekableStore, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One limit with its buckets.
#[derive(Debug)]
pub(super) struct Rule<C: Clock = DefaultClock> {
    pub(super) scope: LimitScope,
    pub(super) per_minute: NonZeroU32,
    pub(super) burst: NonZeroU32,
    limiter: Limiter<C>,
}

impl<C: Clock> Rule<C> {
    fn new(scope: LimitScope, quota: RateQuota, clock: C) -> Self {
        Rule {
            scope,
            per_minute: quota.per_minute,
            burst: quota.effective_burst(),
            limiter: RateLimiter::new(quota.governor_quota(), PeekableStore::default(), clock),
        }
    }

    /// How many units `messages` cost under this limit (0: does not apply).
    pub(super) fn cost(&self, messages: &[MessageInfo]) -> u32 {
        let count = match &self.scope {
            LimitScope::Caller => messages.len().max(1),
            LimitScope::Method(method) => messages.iter().filter(|m| m.method.as_deref() == Some(&**method)).count(),
            LimitScope::Tool(tool) => messages
                .iter()
                .filter(|m| m.method.as_deref() == Some("tools/call") && m.tool.as_deref() == Some(&**tool))
                .count(),
        };
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Tests (and, in commit mode, spends) this request's cost.
    fn test(&self, probe: &Probe, messages: &[MessageInfo]) -> Result<(), RateLimitExceeded> {
        let Some(cost) = NonZeroU32::new(self.cost(messages)) else {
            return Ok(());
        };
        let retry_after = match self.limiter.check_key_n(probe, cost) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(not_until)) => not_until.wait_time_from(self.limiter.clock().now()),
            // More than the burst capacity at once: never passes. Report the
            // time the bucket takes to fill up completely.
            Err(_insufficient) => Duration::from_secs(60) * self.burst.get() / self.per_minute.get(),
        };
        Err(RateLimitExceeded { scope: self.scope.clone(), per_minute: self.per_minute, retry_after })
    }
}

/// Whether a check only looks at a bucket or also spends from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Mode {
    Peek,
    Commit,
}

/// The key governor sees: the caller, and whether to spend.
///
/// governor has no "test without updating"; carrying the mode in the key lets
/// [`PeekableStore`] run governor's own GCRA decision either way.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Probe {
    caller: CallerKey,
    mode: Mode,
}

/// governor's dashmap store, keyed by caller, that can also answer a decision
/// without recording it.
#[derive(Debug, Default)]
struct PeekableStore(DashMapStateStore<CallerKey>);

impl StateStore for PeekableStore {
    type Key = Probe;

    fn measure_and_replace<T, F, E>(&self, key: &Probe, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        match key.mode {
            // An unknown caller is not inserted: peeking allocates nothing.
            Mode::Peek => f(self.0.get(&key.caller).and_then(|state| read_tat(&state))).map(|(outcome, _)| outcome),
            Mode::Commit => self.0.measure_and_replace(&key.caller, f),
        }
    }
}

/// The theoretical arrival time in `state`, read without changing it.
fn read_tat(state: &InMemoryState) -> Option<Nanos> {
    // A decision that always refuses never writes; it just reports what it saw.
    match state.measure_and_replace(&NotKeyed::NonKey, Err::<((), Nanos), _>) {
        Err(tat) => tat,
        Ok(()) => None,
    }
}

impl ShrinkableKeyedStateStore<Probe> for PeekableStore {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::<CallerKey>::retain_recent(&self.0, drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::<CallerKey>::shrink_to_fit(&self.0);
    }

    fn len(&self) -> usize {
        ShrinkableKeyedStateStore::<CallerKey>::len(&self.0)
    }

    fn is_empty(&self) -> bool {
        ShrinkableKeyedStateStore::<CallerKey>::is_empty(&self.0)
    }
}
