//! What a request costs, for limiters that keep their buckets elsewhere.
//!
//! [`RateLimitLayer::charges`](super::RateLimitLayer::charges) answers, for a
//! request, exactly what [`RateLimitLayer::check`](super::RateLimitLayer::check)
//! would test and spend — the caller, and per applicable limit its quota and
//! the units the request costs — without touching a bucket. A shared backend
//! (the gateway's Redis limiter) applies the same rules with the same GCRA
//! constants, so a request is judged alike wherever its buckets live.

use std::{num::NonZeroU32, time::Duration};

use super::{LimitScope, RateLimitConfig, RateLimitExceeded, RateQuota, layer::Limits};
use crate::{
    identity::CallerKey,
    jsonrpc::{Inspection, MessageInfo},
};

/// One limit's charge on one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    /// The limit (one bucket per caller and scope).
    pub scope: LimitScope,
    /// Its sustained rate per minute.
    pub per_minute: NonZeroU32,
    /// Its burst capacity (the effective one: `per_minute` when unset).
    pub burst: NonZeroU32,
    /// Units this request takes from the bucket: one per matching message.
    pub cost: NonZeroU32,
}

impl Charge {
    /// GCRA emission interval: one unit returns every `60 s / per_minute`
    /// (truncated to whole nanoseconds, as governor does).
    pub fn interval(&self) -> Duration {
        let nanos = 60_000_000_000u64 / u64::from(self.per_minute.get());
        Duration::from_nanos(nanos.max(1))
    }

    /// GCRA delay tolerance: `interval × (burst − 1)`, how far ahead of real
    /// time a bucket's theoretical arrival time may run.
    pub fn tolerance(&self) -> Duration {
        self.interval() * (self.burst.get() - 1)
    }

    /// True when the cost exceeds the burst: the request can never pass.
    pub fn exceeds_burst(&self) -> bool {
        self.cost > self.burst
    }

    /// The refusal this limit answers with, given the wait.
    pub fn refusal(&self, retry_after: Duration) -> RateLimitExceeded {
        RateLimitExceeded { scope: self.scope.clone(), per_minute: self.per_minute, retry_after }
    }
}

/// Everything a request costs: its caller and one [`Charge`] per limit that
/// applies, most specific first (tools, methods, then the caller limit, which
/// always applies).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charges {
    /// Whose buckets pay.
    pub caller: CallerKey,
    /// The limits that apply; never empty.
    pub charges: Vec<Charge>,
}

impl Limits {
    pub(super) fn charges(&self, extensions: &http::Extensions) -> Charges {
        let messages: &[MessageInfo] = extensions.get::<Inspection>().map_or(&[], |i| &i.messages[..]);
        let charges = self
            .rules
            .iter()
            .filter_map(|rule| {
                let cost = NonZeroU32::new(rule.cost(messages))?;
                Some(Charge { scope: rule.scope.clone(), per_minute: rule.per_minute, burst: rule.burst, cost })
            })
            .collect();
        Charges { caller: CallerKey::of(extensions), charges }
    }
}

impl RateLimitConfig {
    /// This configuration with every quota (rate and burst) divided among
    /// `replicas`, rounded down but at least 1: what one of several replicas
    /// enforces on its own so that together they stay within the whole.
    pub fn per_replica(&self, replicas: NonZeroU32) -> RateLimitConfig {
        let share = |n: NonZeroU32| NonZeroU32::new(n.get() / replicas.get()).unwrap_or(NonZeroU32::MIN);
        let divide = |q: &RateQuota| RateQuota { per_minute: share(q.per_minute), burst: q.burst.map(share) };
        RateLimitConfig {
            per_minute: share(self.per_minute),
            burst: self.burst.map(share),
            per_method: self.per_method.iter().map(|(m, q)| (m.clone(), divide(q))).collect(),
            per_tool: self.per_tool.iter().map(|(t, q)| (t.clone(), divide(q))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::{
        identity::PeerAddr,
        jsonrpc::{Limits as InspectLimits, inspect},
        rate_limit::RateLimitLayer,
    };

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("non-zero")
    }

    fn extensions(body: Option<&str>) -> http::Extensions {
        let mut ext = http::Extensions::new();
        ext.insert(PeerAddr("10.0.0.1:4000".parse::<SocketAddr>().expect("addr")));
        if let Some(body) = body {
            ext.insert(inspect(body.as_bytes(), InspectLimits::default()).expect("valid JSON-RPC"));
        }
        ext
    }

    #[test]
    fn charges_match_the_rules_and_spend_nothing() {
        let config = RateLimitConfig::new(nz(100))
            .with_burst(nz(10))
            .limit_method("tools/call", RateQuota::per_minute(nz(30)))
            .limit_tool("echo", RateQuota::per_minute(nz(6)).with_burst(nz(2)));
        let layer = RateLimitLayer::new(config);
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}},
                        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add"}},
                        {"jsonrpc":"2.0","id":3,"method":"ping"}]"#;
        let charges = layer.charges(&extensions(Some(batch)));
        assert_eq!(charges.caller.to_string(), "ip:10.0.0.1");
        let got: Vec<(String, u32, u32, u32)> = charges
            .charges
            .iter()
            .map(|c| (c.scope.to_string(), c.per_minute.get(), c.burst.get(), c.cost.get()))
            .collect();
        let want = [("tool:echo", 6, 2, 1), ("method:tools/call", 30, 30, 2), ("caller", 100, 10, 3)];
        let want: Vec<_> = want.iter().map(|(s, r, b, c)| ((*s).to_owned(), *r, *b, *c)).collect();
        assert_eq!(got, want);
        // A bare request costs the caller limit one unit, nothing else.
        let bare = layer.charges(&extensions(None));
        assert_eq!(bare.charges.len(), 1);
        assert_eq!((bare.charges[0].scope.clone(), bare.charges[0].cost), (LimitScope::Caller, nz(1)));
        assert!(layer.is_empty(), "asking allocates no bucket");
    }

    #[test]
    fn gcra_constants() {
        let charge = |per_minute, burst, cost| Charge {
            scope: LimitScope::Caller,
            per_minute: nz(per_minute),
            burst: nz(burst),
            cost: nz(cost),
        };
        assert_eq!(charge(60, 60, 1).interval(), Duration::from_secs(1));
        assert_eq!(charge(60, 60, 1).tolerance(), Duration::from_secs(59));
        assert_eq!(charge(7, 1, 1).interval(), Duration::from_nanos(8_571_428_571));
        assert_eq!(charge(7, 1, 1).tolerance(), Duration::ZERO);
        assert!(charge(60, 2, 3).exceeds_burst());
        assert!(!charge(60, 2, 2).exceeds_burst());
    }

    #[test]
    fn per_replica_divides_every_quota_at_least_one() {
        let config = RateLimitConfig::new(nz(20))
            .with_burst(nz(5))
            .limit_method("tools/list", RateQuota::per_minute(nz(3)))
            .limit_tool("echo", RateQuota::per_minute(nz(9)).with_burst(nz(1)));
        let split = config.per_replica(nz(2));
        assert_eq!((split.per_minute, split.burst), (nz(10), Some(nz(2))));
        assert_eq!(split.per_method, vec![("tools/list".to_owned(), RateQuota::per_minute(nz(1)))]);
        assert_eq!(split.per_tool, vec![("echo".to_owned(), RateQuota::per_minute(nz(4)).with_burst(nz(1)))]);
        assert_eq!(config.per_replica(nz(1)), config);
        assert_eq!(config.per_replica(nz(100)).per_minute, nz(1));
    }
}
