//! Property tests: the limiter against a plain bucket model, on governor's
//! fake clock so arrival times are exact and nothing sleeps.
//!
//! The model keeps, per caller and limit, the theoretical arrival time of
//! the next unit (GCRA in its "virtual scheduling" form): a request of cost
//! `n` at time `t` passes when `max(tat, t) + n·I ≤ t + burst·I`, and only
//! then moves `tat` there. It is written from the module docs, not from
//! governor's code, and every limit of a request is judged before any is
//! spent, which is the all-or-nothing rule under test.
//!
//! Case counts are fixed and small (the whole file runs in about a second in
//! a debug build); failures are not persisted: a failing input is printed,
//! shrunk, and belongs in a named unit test once understood.

use std::{collections::HashMap, net::SocketAddr, num::NonZeroU32, time::Duration};

use governor::clock::FakeRelativeClock;
use proptest::{prelude::*, test_runner::Config};

use super::{Charge, LimitScope, RateLimitConfig, RateLimitExceeded, RateLimitLayer, RateQuota, layer::Limits};
use crate::{
    identity::PeerAddr,
    jsonrpc::{Limits as InspectLimits, inspect},
};

/// One message of a request, as far as the limits can tell messages apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Msg {
    Ping,
    List,
    /// `tools/call` of `t0`, `t1` or `t2` (the tests limit `t0` and `t1` at most).
    Call(u8),
}

impl Msg {
    fn method(self) -> &'static str {
        match self {
            Msg::Ping => "ping",
            Msg::List => "tools/list",
            Msg::Call(_) => "tools/call",
        }
    }

    fn json(self, id: usize) -> String {
        match self {
            Msg::Call(tool) => {
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"t{tool}"}}}}"#)
            }
            other => format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{}"}}"#, other.method()),
        }
    }
}

/// A request from `caller`: a JSON-RPC body of `msgs` (one message alone, more
/// as a batch), inspected as the inspection layer would; no messages is a bare
/// request (a GET), which costs the caller limit one unit.
fn request(caller: u8, msgs: &[Msg]) -> http::Extensions {
    let mut ext = http::Extensions::new();
    ext.insert(PeerAddr(SocketAddr::from(([10, 0, 0, caller], 4000))));
    let body = match msgs {
        [] => return ext,
        [one] => one.json(1),
        many => format!("[{}]", many.iter().enumerate().map(|(i, m)| m.json(i)).collect::<Vec<_>>().join(",")),
    };
    ext.insert(inspect(body.as_bytes(), InspectLimits::default()).expect("generated bodies are valid JSON-RPC"));
    ext
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

/// One limit of the model: its constants and one theoretical arrival time
/// per caller (nanoseconds on the fake clock; absent means a full bucket).
#[derive(Debug)]
struct ModelLimit {
    scope: LimitScope,
    per_minute: NonZeroU32,
    burst: u64,
    interval: u64,
    tat: HashMap<u8, u64>,
}

impl ModelLimit {
    fn new(scope: LimitScope, quota: RateQuota) -> Self {
        let charge = Charge { scope, per_minute: quota.per_minute, burst: quota.effective_burst(), cost: nz(1) };
        let interval = u64::try_from(charge.interval().as_nanos()).expect("fits");
        ModelLimit {
            scope: charge.scope,
            per_minute: charge.per_minute,
            burst: u64::from(charge.burst.get()),
            interval,
            tat: HashMap::new(),
        }
    }

    fn cost(&self, msgs: &[Msg]) -> u64 {
        let count = match &self.scope {
            LimitScope::Caller => msgs.len().max(1),
            LimitScope::Method(m) => msgs.iter().filter(|msg| msg.method() == &**m).count(),
            LimitScope::Tool(t) => {
                msgs.iter().filter(|msg| matches!(msg, Msg::Call(i) if format!("t{i}") == **t)).count()
            }
        };
        u64::try_from(count).expect("small")
    }

    /// The bucket's next arrival time if `cost` units are taken at `now`,
    /// else how long until they could be.
    fn judge(&self, caller: u8, now: u64, cost: u64) -> Result<u64, Duration> {
        if cost > self.burst {
            // Never passes; the wait reported is the time to fill the whole bucket.
            return Err(Duration::from_secs(60) * u32::try_from(self.burst).expect("small") / self.per_minute.get());
        }
        let start = self.tat.get(&caller).map_or(now, |&tat| tat.max(now));
        let next = start + cost * self.interval;
        let limit = now + self.burst * self.interval;
        if next <= limit { Ok(next) } else { Err(Duration::from_nanos(next - limit)) }
    }
}

/// Every limit of a configuration, in the limiter's order (tools, methods, caller).
#[derive(Debug)]
struct Model {
    limits: Vec<ModelLimit>,
}

impl Model {
    fn new(config: &RateLimitConfig) -> Self {
        let tools = config.per_tool.iter().map(|(t, q)| ModelLimit::new(LimitScope::Tool(t.as_str().into()), *q));
        let methods = config.per_method.iter().map(|(m, q)| ModelLimit::new(LimitScope::Method(m.as_str().into()), *q));
        let caller = ModelLimit::new(LimitScope::Caller, config.caller_quota());
        Model { limits: tools.chain(methods).chain(std::iter::once(caller)).collect() }
    }

    /// Judges every applicable limit first; spends from all of them only when
    /// all agree. A refusal names the limit that frees up last (the first of
    /// equals) and its wait.
    fn request(&mut self, caller: u8, now: u64, msgs: &[Msg]) -> Result<(), (LimitScope, Duration)> {
        let mut spend = Vec::new();
        let mut worst: Option<(LimitScope, Duration)> = None;
        for (i, limit) in self.limits.iter().enumerate() {
            let cost = limit.cost(msgs);
            if cost == 0 {
                continue;
            }
            match limit.judge(caller, now, cost) {
                Ok(next) => spend.push((i, next)),
                Err(wait) if worst.as_ref().is_none_or(|(_, w)| wait > *w) => worst = Some((limit.scope.clone(), wait)),
                Err(_) => {}
            }
        }
        if let Some(refusal) = worst {
            return Err(refusal);
        }
        for (i, next) in spend {
            self.limits[i].tat.insert(caller, next);
        }
        Ok(())
    }

    fn charges(&self, msgs: &[Msg]) -> Vec<(LimitScope, u64)> {
        self.limits.iter().map(|l| (l.scope.clone(), l.cost(msgs))).filter(|(_, c)| *c > 0).collect()
    }
}

fn outcome(result: Result<(), RateLimitExceeded>) -> Result<(), (LimitScope, Duration)> {
    result.map_err(|refusal| (refusal.scope, refusal.retry_after))
}

fn quota() -> impl Strategy<Value = RateQuota> {
    // Rates from one a minute to ten a second; bursts up to 20.
    (1u32..=600, proptest::option::of(1u32..=20))
        .prop_map(|(per_minute, burst)| RateQuota { per_minute: nz(per_minute), burst: burst.map(nz) })
}

/// Time between two requests, in milliseconds: often none at all, often
/// less than one unit's interval, sometimes minutes.
fn gap() -> impl Strategy<Value = u64> {
    prop_oneof![3 => Just(0u64), 5 => 0u64..=2_000, 2 => 0u64..=180_000]
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![Just(Msg::Ping), Just(Msg::List), (0u8..3).prop_map(Msg::Call)]
}

fn config() -> impl Strategy<Value = RateLimitConfig> {
    let limit = |name: &'static str| proptest::option::of(quota().prop_map(move |q| (name.to_owned(), q)));
    (quota(), limit("tools/call"), limit("ping"), limit("t0"), limit("t1")).prop_map(|(caller, call, ping, t0, t1)| {
        RateLimitConfig {
            per_minute: caller.per_minute,
            burst: caller.burst,
            per_method: call.into_iter().chain(ping).collect(),
            per_tool: t0.into_iter().chain(t1).collect(),
        }
    })
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

proptest! {
    #![proptest_config(Config { cases: 256, failure_persistence: None, ..Config::default() })]

    /// One limit, one caller: every decision and every wait is the model's,
    /// and no window admits more than `burst + elapsed / interval` units.
    #[test]
    fn one_limit_follows_the_bucket_and_never_exceeds_burst_plus_rate(
        quota in quota(),
        steps in prop::collection::vec((gap(), 0usize..=22), 1..40),
    ) {
        let config = RateLimitConfig { per_minute: quota.per_minute, burst: quota.burst, ..RateLimitConfig::default() };
        let clock = FakeRelativeClock::default();
        let limits = Limits::new(&config, clock.clone());
        let mut model = Model::new(&config);
        let (mut now, mut admitted) = (0u64, Vec::new());
        for (gap, pings) in steps {
            clock.advance(ms(gap));
            now += gap * 1_000_000;
            let msgs = vec![Msg::Ping; pings];
            let want = model.request(0, now, &msgs);
            prop_assert_eq!(outcome(limits.check(&request(0, &msgs))), want.clone(), "at {} ns, {} pings", now, pings);
            if want.is_ok() {
                admitted.push((now, pings.max(1) as u64));
            }
        }
        let interval = model.limits[0].interval;
        let burst = u64::from(quota.effective_burst().get());
        for (i, &(start, _)) in admitted.iter().enumerate() {
            let mut units = 0;
            for &(end, cost) in &admitted[i..] {
                units += cost;
                prop_assert!(units <= burst + (end - start) / interval, "{} units in {} ns", units, end - start);
            }
        }
    }

    /// At one instant exactly `burst` single requests pass, the first ones;
    /// one interval later exactly one more does.
    #[test]
    fn at_one_instant_exactly_the_burst_passes(quota in quota(), extra in 1u32..8) {
        let config = RateLimitConfig { per_minute: quota.per_minute, burst: quota.burst, ..RateLimitConfig::default() };
        let clock = FakeRelativeClock::default();
        let limits = Limits::new(&config, clock.clone());
        let burst = quota.effective_burst().get();
        let passed: Vec<bool> = (0..burst + extra).map(|_| limits.check(&request(7, &[])).is_ok()).collect();
        let want: Vec<bool> = (0..burst + extra).map(|i| i < burst).collect();
        prop_assert_eq!(passed, want);
        clock.advance(Charge { scope: LimitScope::Caller, per_minute: quota.per_minute, burst: nz(burst), cost: nz(1) }.interval());
        prop_assert!(limits.check(&request(7, &[])).is_ok());
        prop_assert!(limits.check(&request(7, &[])).is_err());
    }

    /// Caller, method and tool limits together: the charges are the model's,
    /// a request passes only when every applicable limit has room, a refused
    /// one spends from none (later decisions would drift from the model
    /// otherwise), the refusal names the limit that frees up last, and
    /// housekeeping at any point changes no decision.
    #[test]
    fn several_limits_are_all_or_nothing(
        config in config(),
        steps in prop::collection::vec(
            (gap(), 0u8..2, prop::collection::vec(msg(), 0..5), prop::bool::weighted(0.2)),
            1..40,
        ),
    ) {
        let clock = FakeRelativeClock::default();
        let limits = Limits::new(&config, clock.clone());
        let layer = RateLimitLayer::new(config.clone());
        let mut model = Model::new(&config);
        let mut now = 0u64;
        for (gap, caller, msgs, housekeeping) in steps {
            clock.advance(ms(gap));
            now += gap * 1_000_000;
            if housekeeping {
                limits.housekeeping();
            }
            let ext = request(caller, &msgs);
            let charges: Vec<(LimitScope, u64)> =
                layer.charges(&ext).charges.into_iter().map(|c| (c.scope, u64::from(c.cost.get()))).collect();
            prop_assert_eq!(charges, model.charges(&msgs));
            let want = model.request(caller, now, &msgs);
            prop_assert_eq!(outcome(limits.check(&ext)), want, "at {} ns, caller {}: {:?}", now, caller, msgs);
        }
        // Once every bucket has refilled, housekeeping forgets them all.
        let latest = model.limits.iter().flat_map(|l| l.tat.values().map(move |tat| tat + l.interval)).max();
        clock.advance(Duration::from_nanos(latest.unwrap_or(0).saturating_sub(now)));
        limits.housekeeping();
        prop_assert_eq!(limits.len(), 0);
    }

    /// A caller's decisions are the same whether or not other callers send
    /// requests in between.
    #[test]
    fn callers_are_independent(
        config in config(),
        steps in prop::collection::vec((gap(), 0u8..3, prop::collection::vec(msg(), 0..4)), 1..40),
    ) {
        let clock = FakeRelativeClock::default();
        let shared = Limits::new(&config, clock.clone());
        let mut together = Vec::new();
        for (gap, caller, msgs) in &steps {
            clock.advance(ms(*gap));
            together.push(outcome(shared.check(&request(*caller, msgs))));
        }
        for alone in 0u8..3 {
            let clock = FakeRelativeClock::default();
            let own = Limits::new(&config, clock.clone());
            for ((gap, caller, msgs), want) in steps.iter().zip(&together) {
                clock.advance(ms(*gap));
                if *caller == alone {
                    prop_assert_eq!(&outcome(own.check(&request(alone, msgs))), want, "caller {}", alone);
                }
            }
        }
    }

    /// Split among replicas, every quota is at least 1 and the shares add up
    /// to no more than the whole (unless the whole is smaller than the count).
    #[test]
    fn per_replica_shares_never_add_up_to_more_than_the_whole(config in config(), replicas in 1u32..=100) {
        let split = config.per_replica(nz(replicas));
        let whole = |q: RateQuota| [q.per_minute.get(), q.effective_burst().get()];
        let quotas = |c: &RateLimitConfig| -> Vec<[u32; 2]> {
            let named = c.per_method.iter().chain(&c.per_tool).map(|(_, q)| whole(*q));
            std::iter::once(whole(c.caller_quota())).chain(named).collect()
        };
        for (share, total) in quotas(&split).into_iter().zip(quotas(&config)) {
            for (share, total) in share.into_iter().zip(total) {
                prop_assert!(share >= 1);
                prop_assert!(share.saturating_mul(replicas) <= total || share == 1, "{} x {} > {}", share, replicas, total);
                prop_assert!(replicas > 1 || share == total);
            }
        }
        prop_assert_eq!(split.burst.is_some(), config.burst.is_some());
    }
}
