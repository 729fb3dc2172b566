//! Sealed session tokens: session ids any replica can check, and no one can forge.
//!
//! With `[sessions]` configured, the `Mcp-Session-Id` a client gets is not
//! the upstream's session id but a token, AES-256-GCM encrypted and
//! authenticated ([`Sealer`]), holding the upstream's id, the caller that
//! created the session ([`Owner`]), the upstream it lives in (its target)
//! and an expiry ([`SessionClaims`]). Every replica with the same keys opens
//! it, so no replica needs to remember who owns which session; a token from
//! another caller, for another target, expired, or altered in any bit gets
//! `404` like an unknown session ([`SealedSessionLayer`]).
//!
//! - **Targets.** An HTTP upstream's target is its URL: replicas in front of
//!   the same upstream (configured with the same URL) share sessions. A
//!   stdio or demo upstream's sessions live in one gateway process, so their
//!   target names the replica (`stdio:<replica_id>`), and another replica
//!   refuses the token rather than pass an unknown id to its own children.
//! - **Rotation.** Several keys may be configured: the first seals, all
//!   open. Add the new key first, and remove the old one once its tokens
//!   have expired (`sessions.ttl`).
//! - **Ending.** A token is valid until its expiry whatever the upstream
//!   did; a successful DELETE is recorded in [`EndedSessions`] (Redis when
//!   configured, else in memory) so the token cannot be replayed.
//! - **Expiry** is absolute, not sliding: after `sessions.ttl` (default 24 h)
//!   the client gets `404` and, as the specification says, starts a new session.

mod claims;
mod ended;
mod layer;
mod seal;

use std::sync::Arc;

pub use claims::{EncodeError, Owner, SessionClaims};
pub use ended::{EndedId, EndedSessions, MemoryEndedSessions, StoreError, StoreFuture};
pub use layer::{SealedFuture, SealedSessionLayer, SealedSessions};
use rand::Rng;
pub use seal::{MAX_TOKEN_LEN, OpenError, SealError, Sealer};

use crate::config::{Config, SessionSealing, UpstreamConfig};

/// The target name of `upstream`, as sealed into its tokens.
pub fn target(upstream: &UpstreamConfig, replica_id: &str) -> String {
    match upstream {
        UpstreamConfig::Http(http) => http.url.to_string(),
        UpstreamConfig::Stdio(_) => format!("stdio:{replica_id}"),
        UpstreamConfig::Demo => format!("demo:{replica_id}"),
    }
}

/// This replica's name: `sessions.replica_id`, else 64 random bits in hex,
/// new at every start (a restarted stdio gateway has lost its sessions anyway).
pub fn replica_id(sealing: &SessionSealing) -> String {
    if let Some(id) = &sealing.replica_id {
        return id.clone();
    }
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The layer for `config`, when `[sessions]` is set: sealing for this
/// upstream and replica, ended sessions in `ended` (the Redis store), else
/// in this process.
pub fn layer_for(
    config: &Config,
    ended: Option<Arc<dyn EndedSessions>>,
) -> Result<Option<SealedSessionLayer>, SealError> {
    let Some(sealing) = &config.sessions else { return Ok(None) };
    let sealer = Sealer::new(sealing, target(&config.upstream, &replica_id(sealing)))?;
    let ended = ended.unwrap_or_else(|| Arc::new(MemoryEndedSessions::default()));
    tracing::info!(target: "mcp_guard", keys = sealing.keys.len(), ttl_secs = sealing.ttl.as_secs(), "sealed_sessions_enabled");
    Ok(Some(SealedSessionLayer::new(sealer, ended)))
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
