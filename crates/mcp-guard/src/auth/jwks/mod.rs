//! Public keys for JWT verification, and the cache that keeps a remote JWKS
//! fresh.
//!
//! Keys are parsed once, when loaded, into an aws-lc public key per algorithm
//! the key may verify, so checking a signature on a warm cache is pure CPU
//! work: no key parsing, no network, no lock held across an await. A JWK with
//! `alg` set gets exactly that algorithm; without it, every allowed algorithm
//! of its family (RSA: RS*/PS*, P-256: ES256, P-384: ES384, Ed25519: EdDSA).
//! Symmetric (`oct`) keys are never loaded from a key set: a public key is
//! only ever a [`ParsedPublicKey`](aws_lc_rs::signature::ParsedPublicKey),
//! never raw bytes, so it cannot become an HMAC secret (the RS256 to HS256
//! confusion attack). RSA keys under 2048 bits are refused.
//!
//! A remote key set ([`JwksCache`]) is fetched with a 5 s timeout and a 1 MiB
//! body cap, over HTTPS unless the host is loopback (redirects are held to the
//! same rule). It is refreshed
//! - in the background once it is older than 10 minutes, while the keys held
//!   keep verifying, so no request waits on the IdP for routine freshness;
//! - inline when a token names a `kid` the cache does not hold (rotation);
//!
//! but never more than once per 30 s whatever the tokens say, so a stream of
//! made-up `kid`s cannot turn the gateway into a load generator against its
//! IdP. Callers that need a refresh at the same time share one fetch. A failed
//! refresh keeps the keys held (and logs); with none held the answer is
//! `KeysUnavailable`, which the gateway turns into 503, not 401.
//!
//! Discovery (RFC 8414 AS metadata, OpenID Connect Discovery) learns
//! `jwks_uri` from the issuer's metadata, and refuses metadata that names a
//! different issuer: an attacker-controlled document must not be able to swap
//! in its own keys (mix-up defence). The learned `jwks_uri` must pass the same
//! HTTPS rule as a configured one.

use std::{
    error::Error as _,
    fmt,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use jsonwebtoken::Algorithm;
use reqwest::{Url, header::ACCEPT, redirect};
use serde::Deserialize;

use self::urls::check_transport;
pub(crate) use self::{
    keys::{KeySet, Lookup},
    urls::{discovery_urls, remote_url},
};
use super::jwt::{JwtError, JwtSetupError};

mod keys;
mod urls;

/// Longest wait for one HTTP exchange with the IdP, body included.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS or metadata document read; a real one is a few KiB.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Age after which a key set is refreshed (in the background).
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(600);
/// Least time between two fetch attempts, whatever triggers them.
pub(crate) const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Usable keys kept from one key set; lookups scan them linearly.
const MAX_KEYS: usize = 32;
const MAX_REDIRECTS: usize = 3;

/// Where a remote key set comes from.
#[derive(Debug)]
pub(crate) enum Remote {
    /// A configured `jwks_uri`.
    Jwks(Url),
    /// Metadata documents, tried in order; the first found names `jwks_uri`.
    Discovery(Vec<Url>),
}

/// The keys held, as of one fetch. Replaced whole, never edited.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) keys: KeySet,
    fetched_at: Option<Instant>,
    generation: u64,
}

impl Snapshot {
    /// Changes with every key set fetched: a token verified under another
    /// generation is verified again.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

#[derive(Debug, Default)]
struct FetchState {
    /// The `jwks_uri` discovery found; forgotten when fetching it fails.
    jwks_uri: Option<Url>,
    last_error: Option<String>,
}

/// A remote key set, refreshed as the module docs describe.
#[derive(Debug)]
pub(crate) struct JwksCache {
    remote: Remote,
    issuer: String,
    algorithms: Vec<Algorithm>,
    client: reqwest::Client,
    current: RwLock<Arc<Snapshot>>,
    /// When the last fetch started: the rate bound.
    last_attempt: Mutex<Option<Instant>>,
    /// Held for the whole of a fetch: callers queue here (single flight).
    fetch: tokio::sync::Mutex<FetchState>,
    background_pending: AtomicBool,
    #[cfg(test)]
    clock_offset: Mutex<Duration>,
}

impl JwksCache {
    /// A cache that has fetched nothing yet: construction does no network
    /// I/O, so the gateway starts while its IdP is briefly down.
    pub(crate) fn new(remote: Remote, issuer: &str, algorithms: &[Algorithm]) -> Result<Self, JwtSetupError> {
        let policy = redirect::Policy::custom(|attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if let Err(e) = check_transport(attempt.url()) {
                attempt.error(e)
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(policy)
            .user_agent(concat!("mcp-guard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| JwtSetupError::HttpClient(error_chain(&e)))?;
        Ok(JwksCache {
            remote,
            issuer: issuer.to_owned(),
            algorithms: algorithms.to_vec(),
            client,
            current: RwLock::new(Arc::new(Snapshot { keys: KeySet::default(), fetched_at: None, generation: 0 })),
            last_attempt: Mutex::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            background_pending: AtomicBool::new(false),
            #[cfg(test)]
            clock_offset: Mutex::new(Duration::ZERO),
        })
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        // (A snapshot's generation tells a cached verification which key set it used.)
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// True when `snapshot` is older than the TTL.
    pub(crate) fn is_stale(&self, snapshot: &Snapshot) -> bool {
        snapshot.fetched_at.is_none_or(|at| self.now().saturating_duration_since(at) >= CACHE_TTL)
    }

    fn refresh_permitted(&self, now: Instant) -> bool {
        let last = *self.last_attempt.lock().unwrap_or_else(PoisonError::into_inner);
        last.is_none_or(|at| now.saturating_duration_since(at) >= MIN_REFRESH_INTERVAL)
    }

    /// Starts a refresh on the current Tokio runtime and returns at once; at
    /// most one is pending, and none starts inside the rate bound.
    pub(crate) fn refresh_in_background(self: &Arc<Self>, seen: &Snapshot) {
        if !self.refresh_permitted(self.now()) || self.background_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        struct Pending(Arc<JwksCache>);
        impl Drop for Pending {
            fn drop(&mut self) {
                self.0.background_pending.store(false, Ordering::Release);
            }
        }
        let pending = Pending(Arc::clone(self));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let generation = seen.generation;
        runtime.spawn(async move {
            // A failure is logged inside, and the keys held stay in use.
            let _ = pending.0.refresh_after(generation).await;
        });
    }

    /// Fetches the key set unless another caller did since `seen` was read
    /// or the rate bound forbids it, and returns the keys now held. Err only
    /// when no keys are held at all.
    pub(crate) async fn refresh(&self, seen: &Snapshot) -> Result<Arc<Snapshot>, JwtError> {
        self.refresh_after(seen.generation).await
    }

    async fn refresh_after(&self, seen: u64) -> Result<Arc<Snapshot>, JwtError> {
        let mut state = self.fetch.lock().await;
        let current = self.snapshot();
        if current.generation != seen {
            return Ok(current);
        }
        {
            let now = self.now();
            if !self.refresh_permitted(now) {
                return held_or_unavailable(current, &state);
            }
            *self.last_attempt.lock().unwrap_or_else(PoisonError::into_inner) = Some(now);
        }
        match self.fetch_keys(&mut state).await {
            Ok(keys) => {
                tracing::info!(target: "mcp_guard::auth", keys = keys.len(), "jwks_refreshed");
                state.last_error = None;
                let next =
                    Arc::new(Snapshot { keys, fetched_at: Some(self.now()), generation: current.generation + 1 });
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&next);
                Ok(next)
            }
            Err(error) => {
                state.jwks_uri = None;
                if current.keys.is_empty() {
                    tracing::warn!(target: "mcp_guard::auth", %error, "jwks_unavailable");
                } else {
                    tracing::warn!(target: "mcp_guard::auth", %error, keys = current.keys.len(), "jwks_refresh_failed_keeping_cached_keys");
                }
                state.last_error = Some(error);
                held_or_unavailable(current, &state)
            }
        }
    }

    async fn fetch_keys(&self, state: &mut FetchState) -> Result<KeySet, String> {
        let url = match (&self.remote, &state.jwks_uri) {
            (Remote::Jwks(url), _) | (Remote::Discovery(_), Some(url)) => url.clone(),
            (Remote::Discovery(candidates), None) => {
                let url = self.discover(candidates).await?;
                state.jwks_uri = Some(url.clone());
                url
            }
        };
        let body = self.get(&url).await.map_err(|e| format!("{url}: {e}"))?;
        KeySet::from_document(&body, &self.algorithms).map_err(|e| format!("{url}: {e}"))
    }

    /// The `jwks_uri` of the first metadata document found. A missing
    /// document (an HTTP error status) moves on to the next location; an
    /// unreachable host or a document for another issuer stops the search.
    async fn discover(&self, candidates: &[Url]) -> Result<Url, String> {
        #[derive(Deserialize)]
        struct Metadata {
            issuer: Option<String>,
            jwks_uri: Option<String>,
        }
        let mut misses = Vec::new();
        for url in candidates {
            let body = match self.get(url).await {
                Ok(body) => body,
                Err(Fetch::Status(status)) => {
                    misses.push(format!("{url}: HTTP {status}"));
                    continue;
                }
                Err(e) => return Err(format!("{url}: {e}")),
            };
            let metadata: Metadata = serde_json::from_slice(&body)
                .map_err(|e| format!("{url}: not an authorization server metadata document: {e}"))?;
            if metadata.issuer.as_deref() != Some(self.issuer.as_str()) {
                tracing::error!(target: "mcp_guard::auth", metadata = %url, found = ?metadata.issuer, expected = %self.issuer, "discovery_issuer_mismatch");
                return Err(format!(
                    "{url} names issuer {:?}, not the configured {:?}; refused (mix-up protection)",
                    metadata.issuer, self.issuer
                ));
            }
            let jwks_uri = metadata.jwks_uri.ok_or_else(|| format!("{url}: the metadata has no jwks_uri"))?;
            return remote_url(&jwks_uri).map_err(|e| format!("{url}: jwks_uri refused: {e}"));
        }
        Err(format!("no authorization server metadata found ({})", misses.join("; ")))
    }

    /// GETs a JSON document, reading at most [`MAX_DOCUMENT_BYTES`].
    async fn get(&self, url: &Url) -> Result<Vec<u8>, Fetch> {
        let mut response = self
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json, application/jwk-set+json")
            .send()
            .await
            .map_err(|e| Fetch::Transport(error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(Fetch::Status(response.status().as_u16()));
        }
        let declared = response.content_length().map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        if declared.is_some_and(|n| n > MAX_DOCUMENT_BYTES) {
            return Err(Fetch::TooLarge);
        }
        let mut body = Vec::with_capacity(declared.unwrap_or(8 * 1024));
        while let Some(chunk) = response.chunk().await.map_err(|e| Fetch::Transport(error_chain(&e)))? {
            if chunk.len() > MAX_DOCUMENT_BYTES - body.len() {
                return Err(Fetch::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn now(&self) -> Instant {
        #[cfg(test)]
        return Instant::now() + *self.clock_offset.lock().unwrap_or_else(PoisonError::into_inner);
        #[cfg(not(test))]
        Instant::now()
    }

    /// Moves this cache's clock forward, as if `by` had passed.
    #[cfg(test)]
    pub(crate) fn advance_clock(&self, by: Duration) {
        *self.clock_offset.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }
}

fn held_or_unavailable(current: Arc<Snapshot>, state: &FetchState) -> Result<Arc<Snapshot>, JwtError> {
    if current.keys.is_empty() {
        let why = state.last_error.clone().unwrap_or_else(|| "no key set fetched yet".into());
        return Err(JwtError::KeysUnavailable(why));
    }
    Ok(current)
}

/// Why a GET failed.
enum Fetch {
    Status(u16),
    TooLarge,
    Transport(String),
}

impl fmt::Display for Fetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fetch::Status(status) => write!(f, "HTTP {status}"),
            Fetch::TooLarge => write!(f, "the document exceeds {MAX_DOCUMENT_BYTES} bytes"),
            Fetch::Transport(e) => f.write_str(e),
        }
    }
}

/// reqwest's `Display` omits the cause ("error sending request"); the log needs it.
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
