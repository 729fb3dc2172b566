//! One limit check: every charge of a request, one `EVALSHA` of `gcra.lua`.

use std::time::Duration;

use mcp_guard_layers::{
    identity::CallerKey,
    rate_limit::{Charges, RateLimitExceeded},
};
use redis::{RedisError, Script};

use super::backend::Connection;

/// The GCRA script and the key names it works on.
#[derive(Clone, Debug)]
pub(super) struct Limiter {
    script: Script,
    prefix: String,
}

impl Limiter {
    pub(super) fn new(prefix: &str) -> Self {
        Limiter { script: Script::new(include_str!("gcra.lua")), prefix: prefix.to_owned() }
    }

    pub(super) fn script(&self) -> &Script {
        &self.script
    }

    /// Tests every charge and, if all pass, spends them, in one round trip.
    ///
    /// `redis::Script` sends `EVALSHA`, and on `NOSCRIPT` (a restarted or
    /// failed-over server) loads the script and retries once.
    pub(super) async fn check(
        &self,
        conn: &mut Connection,
        charges: &Charges,
    ) -> Result<Result<(), RateLimitExceeded>, RedisError> {
        let mut invocation = self.script.prepare_invoke();
        for charge in &charges.charges {
            invocation
                .key(self.key(&charges.caller, &charge.scope.to_string()))
                .arg(micros(charge.interval()).max(1))
                .arg(micros(charge.tolerance()))
                .arg(charge.cost.get());
        }
        let (admitted, index, wait): (i64, usize, u64) = invocation.invoke_async(conn).await?;
        if admitted == 1 {
            return Ok(Ok(()));
        }
        // The script names the refusing bucket by its 1-based position.
        let charge = index.checked_sub(1).and_then(|i| charges.charges.get(i)).ok_or_else(|| {
            RedisError::from((redis::ErrorKind::UnexpectedReturnType, "rate-limit script named no bucket"))
        })?;
        Ok(Err(charge.refusal(Duration::from_micros(wait))))
    }

    /// `{<prefix>:rl:<caller>}:<scope>`: the braces are a cluster hash tag,
    /// so every bucket of one caller lives in one slot and one script can
    /// touch them all. Braces and `%` in names are escaped: a caller named
    /// `a}:x` must not end the tag early and collide with another's bucket.
    fn key(&self, caller: &CallerKey, scope: &str) -> String {
        format!("{{{}:rl:{}}}:{}", self.prefix, escape(&caller.to_string()), escape(scope))
    }
}

fn escape(name: &str) -> std::borrow::Cow<'_, str> {
    if !name.contains(['{', '}', '%']) {
        return name.into();
    }
    name.replace('%', "%25").replace('{', "%7B").replace('}', "%7D").into()
}

/// Whole microseconds, the script's unit. (An interval is sent as at least
/// 1: zero would mean an unlimited rate.)
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn keys_share_a_hash_tag_per_caller_and_cannot_collide() {
        let limiter = Limiter::new("mcp-guard");
        let alice = CallerKey::Principal(Arc::from("alice"));
        assert_eq!(limiter.key(&alice, "caller"), "{mcp-guard:rl:principal:alice}:caller");
        assert_eq!(limiter.key(&alice, "tool:echo"), "{mcp-guard:rl:principal:alice}:tool:echo");
        let ip = CallerKey::Ip("192.0.2.1".parse().expect("ip"));
        assert_eq!(limiter.key(&ip, "method:tools/list"), "{mcp-guard:rl:ip:192.0.2.1}:method:tools/list");
        // A brace in a name cannot close the tag early.
        let tricky = CallerKey::Principal(Arc::from("a}:tool:x"));
        let key = limiter.key(&tricky, "caller");
        assert_eq!(key, "{mcp-guard:rl:principal:a%7D:tool:x}:caller");
        assert_ne!(key, limiter.key(&CallerKey::Principal(Arc::from("a")), "tool:x}:caller"));
        assert_eq!(escape("100%"), "100%25");
    }

    #[test]
    fn micros_truncate() {
        assert_eq!(micros(Duration::from_nanos(1_999)), 1);
        assert_eq!(micros(Duration::from_secs(1)), 1_000_000);
        assert_eq!(micros(Duration::ZERO), 0);
    }
}
