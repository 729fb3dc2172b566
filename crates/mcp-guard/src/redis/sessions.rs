//! Ended sessions in Redis, so a DELETE through one replica ends the session
//! on all of them (see [`crate::session_seal`]).
//!
//! One key per ended session, `<key_prefix>:ended:<id>`, set with a TTL up
//! to the token's expiry: after it the token is refused as expired anyway,
//! so nothing accumulates. The id is a hash of the session (never the token
//! itself), and single-key commands work unchanged on a cluster.

use std::{sync::Arc, time::Duration};

use redis::AsyncCommands as _;

use super::{RedisSetupError, backend::Connection};
use crate::{
    config::Config,
    session_seal::{EndedId, EndedSessions, StoreError, StoreFuture},
};

/// [`EndedSessions`] in the `[redis]` deployment.
#[derive(Debug)]
pub struct RedisEndedSessions {
    conn: Connection,
    prefix: String,
    timeout: Duration,
}

/// The Redis store when both `[sessions]` and `[redis]` are configured;
/// `None` leaves ended sessions in memory (one replica).
pub fn ended_sessions(config: &Config) -> Result<Option<Arc<dyn EndedSessions>>, RedisSetupError> {
    let (Some(redis), Some(_)) = (&config.redis, &config.sessions) else { return Ok(None) };
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(RedisSetupError::NoRuntime);
    }
    let store =
        RedisEndedSessions { conn: Connection::open(redis)?, prefix: redis.key_prefix.clone(), timeout: redis.timeout };
    Ok(Some(Arc::new(store)))
}

impl RedisEndedSessions {
    fn key(&self, id: EndedId) -> String {
        format!("{}:ended:{id}", self.prefix)
    }
}

impl EndedSessions for RedisEndedSessions {
    fn end(&self, id: EndedId, ttl: Duration) -> StoreFuture<'_, ()> {
        let key = self.key(id);
        let mut conn = self.conn.clone();
        // At least 1 ms: a zero PX is an error, and the token expires anyway.
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        Box::pin(async move {
            let set = conn.pset_ex::<_, _, ()>(key, 1u8, ms);
            tokio::time::timeout(self.timeout, set)
                .await
                .map_err(|_| StoreError::new("redis timed out"))?
                .map_err(|e| StoreError::new(format!("redis: {:?}", e.kind())))
        })
    }

    fn is_ended(&self, id: EndedId) -> StoreFuture<'_, bool> {
        let key = self.key(id);
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let exists = conn.exists::<_, bool>(key);
            tokio::time::timeout(self.timeout, exists)
                .await
                .map_err(|_| StoreError::new("redis timed out"))?
                .map_err(|e| StoreError::new(format!("redis: {:?}", e.kind())))
        })
    }
}
