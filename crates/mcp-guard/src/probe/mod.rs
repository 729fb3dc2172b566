//! `mcp-guard probe URL`: audits any MCP Streamable HTTP endpoint against
//! the MCP security requirements.
//!
//! [`run`] talks to the endpoint the way a client, a hostile web page and a
//! careless proxy would, and reports each weakness as a [`Finding`] with a
//! stable id from the one [`Rule`] table, grouped into check families
//! ([`Family`]). [`Report`] renders as text, JSON or SARIF.
//!
//! It is polite: at most `max_requests` requests in total (raw TLS
//! handshakes included), `delay` between them, `timeout` for each, and it
//! contacts only the URL's origin, plus the metadata URL the endpoint
//! advertises when on the same host (any host with `follow_metadata`).
//! Redirects are never followed. The cheap checks run first and the
//! budget-hungry ones (body growth, the rate-limit burst) last, so a small
//! budget starves only those; a family the budget did not reach is
//! `skipped`. Tokens never appear in a report: evidence says
//! `Authorization: Bearer [redacted]`, and every report string is scrubbed of
//! the tokens before it is returned.

mod checks;
mod client;
mod finding;
mod mcp;
mod report;
mod tls_verify;
mod trace;

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::Url;

pub use self::{
    finding::{FailOn, Family, Finding, Rule, Severity},
    report::{CheckResult, Format, Report, Status, text::colour_wanted},
};
use crate::secret::Secret;

/// The protocol revision asked for in `initialize` unless told otherwise.
pub const DEFAULT_PROTOCOL_VERSION: &str = "2025-06-18";

/// Where the probe is, for a progress indicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The check family running (or `discovery`).
    pub stage: &'static str,
    /// Requests sent so far.
    pub requests: usize,
    /// The budget.
    pub budget: usize,
}

/// Called after each request and at each new family.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// What to probe and how politely.
#[derive(Clone)]
pub struct ProbeOptions {
    /// The MCP endpoint, `http://` or `https://`.
    pub url: String,
    /// Sent as `Authorization: Bearer …`.
    pub token: Option<Secret>,
    /// A second principal's token, for the cross-principal session check.
    pub second_token: Option<Secret>,
    /// The least severe finding that fails the run.
    pub fail_on: FailOn,
    /// Most requests sent in total.
    pub max_requests: usize,
    /// Largest body sent by the body-limit check.
    pub max_body_probe: u64,
    /// Pause before each request after the first.
    pub delay: Duration,
    /// Time allowed for each request, its answer included.
    pub timeout: Duration,
    /// Fetch advertised metadata on other hosts too.
    pub follow_metadata: bool,
    /// Accept any TLS certificate (self-signed test servers).
    pub insecure: bool,
    /// The `protocolVersion` asked for in `initialize`.
    pub protocol_version: String,
    /// Progress callback (the CLI draws it on a terminal).
    pub progress: Option<ProgressFn>,
}

impl ProbeOptions {
    /// The defaults: no tokens, fail on high, 200 requests, 16 MiB bodies,
    /// no delay, 10 s per request, protocol 2025-06-18.
    pub fn new(url: impl Into<String>) -> Self {
        ProbeOptions {
            url: url.into(),
            token: None,
            second_token: None,
            fail_on: FailOn::default(),
            max_requests: 200,
            max_body_probe: 16 * 1024 * 1024,
            delay: Duration::ZERO,
            timeout: Duration::from_secs(10),
            follow_metadata: false,
            insecure: false,
            protocol_version: DEFAULT_PROTOCOL_VERSION.to_owned(),
            progress: None,
        }
    }
}

impl std::fmt::Debug for ProbeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens print as `[redacted]` (they are `Secret`s).
        f.debug_struct("ProbeOptions")
            .field("url", &self.url)
            .field("token", &self.token)
            .field("second_token", &self.second_token)
            .field("fail_on", &self.fail_on)
            .field("max_requests", &self.max_requests)
            .field("max_body_probe", &self.max_body_probe)
            .field("delay", &self.delay)
            .field("timeout", &self.timeout)
            .field("follow_metadata", &self.follow_metadata)
            .field("insecure", &self.insecure)
            .field("protocol_version", &self.protocol_version)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Why the target could not be probed at all (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL or an option is unusable.
    #[error("{0}")]
    Invalid(String),
    /// The HTTP or TLS client could not be built.
    #[error("{0}")]
    Setup(String),
    /// Nothing answered at the URL.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The target.
        url: String,
        /// Why.
        reason: String,
    },
    /// Something answered, but no MCP initialize succeeded with the credentials given.
    #[error("{url} does not answer an MCP initialize: {reason}")]
    NotMcp {
        /// The target.
        url: String,
        /// What came back.
        reason: String,
    },
}

impl ProbeError {
    /// The process exit status for this error: always 2.
    pub fn exit_code(&self) -> u8 {
        2
    }
}

/// The probed endpoint.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) url: Url,
    /// The URL as given (reports show it unnormalized), or where a redirect led.
    pub(crate) given: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) https: bool,
    pub(crate) loopback: bool,
}

impl Target {
    pub(crate) fn parse(text: &str) -> Result<Target, ProbeError> {
        let invalid = |why: &str| ProbeError::Invalid(format!("`{text}` {why}"));
        let mut url = Url::parse(text.trim()).map_err(|e| invalid(&format!("is not a URL: {e}")))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(invalid("is not an http:// or https:// URL")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            // They would be printed with the URL; tokens go in --token.
            return Err(invalid("holds credentials: pass a token with --token instead"));
        }
        url.set_fragment(None);
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| invalid("has no host"))?.to_ascii_lowercase();
        let port = url.port_or_known_default().ok_or_else(|| invalid("has no port"))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = match bare.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => bare == "localhost" || bare.ends_with(".localhost"),
        };
        Ok(Target { url, given: text.trim().to_owned(), host, port, https, loopback })
    }

    /// Same scheme, host and port.
    pub(crate) fn same_origin(&self, other: &Url) -> bool {
        other.scheme() == self.url.scheme()
            && other.host_str().is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && other.port_or_known_default() == Some(self.port)
    }

    /// Same host name (any scheme or port).
    pub(crate) fn same_host(&self, other: &Url) -> bool {
        other.host_str().is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
    }
}

/// Probes `options.url` and returns the report, or why nothing could be probed.
pub async fn run(options: ProbeOptions) -> Result<Report, ProbeError> {
    let started = Instant::now();
    if options.max_requests == 0 {
        return Err(ProbeError::Invalid("--max-requests must be at least 1".into()));
    }
    if options.timeout.is_zero() {
        return Err(ProbeError::Invalid("--timeout must be at least 1 second".into()));
    }
    let target = Target::parse(&options.url)?;
    let client = client::Client::new(&options, &target)?;
    let mut ctx = checks::Ctx::new(options, target, client);
    checks::run_all(&mut ctx).await?;
    Ok(ctx.into_report(started.elapsed()))
}

/// Parses a byte size: plain bytes or `N` with `B`, `KiB`, `MiB`, `GiB`
/// (`KB`, `MB`, `GB` read as the binary units), e.g. `16MiB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("`{text}` is not a size, e.g. `16MiB`"))?;
    let unit_size: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("`{text}` has no valid unit: use B, KiB, MiB or GiB")),
    };
    n.checked_mul(unit_size).ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_classify() {
        let t = Target::parse("http://127.0.0.1:8001/mcp").unwrap();
        assert!(t.loopback && !t.https);
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8001));
        assert!(Target::parse("http://localhost/mcp").unwrap().loopback);
        assert!(Target::parse("http://[::1]:9/mcp").unwrap().loopback);
        let remote = Target::parse("https://MCP.example.com/mcp#x").unwrap();
        assert!(!remote.loopback && remote.https);
        assert_eq!((remote.host.as_str(), remote.port), ("mcp.example.com", 443));
        assert!(remote.same_origin(&Url::parse("https://mcp.example.com:443/.well-known/x").unwrap()));
        assert!(!remote.same_origin(&Url::parse("http://mcp.example.com/x").unwrap()));
        assert!(remote.same_host(&Url::parse("http://mcp.example.com:8080/x").unwrap()));
        assert!(!remote.same_host(&Url::parse("https://auth.example.com/x").unwrap()));
        for bad in ["ftp://x/mcp", "not a url", "http://user:pw@host/mcp", "/mcp"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("lots").is_err() && parse_size("1TiB").is_err());
    }

    #[test]
    fn options_never_print_tokens() {
        let mut options = ProbeOptions::new("http://127.0.0.1:1/mcp");
        options.token = Some(Secret::new("hunter2-token"));
        assert!(!format!("{options:?}").contains("hunter2"));
    }
}
