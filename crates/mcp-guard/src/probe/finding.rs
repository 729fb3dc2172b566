//! Severities, the rule table (every finding id, in one place) and findings.
//!
//! Rule ids are stable: they are SARIF rule ids and what CI configurations
//! match on, so a released id never changes meaning.

use std::{fmt, str::FromStr};

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing; not a weakness by itself.
    Info,
    /// Hardening.
    Low,
    /// A weakness an attacker can use with some effort or luck.
    Medium,
    /// A weakness that exposes the server's tools to someone it should not.
    High,
    /// Anyone who can reach the server can use it.
    Critical,
}

impl Severity {
    /// Every severity, worst first (the order reports use).
    pub const WORST_FIRST: [Severity; 5] =
        [Severity::Critical, Severity::High, Severity::Medium, Severity::Low, Severity::Info];

    /// Lower-case name, as in JSON and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }

    /// The SARIF level: critical and high are errors, medium a warning, the rest notes.
    pub const fn sarif_level(self) -> &'static str {
        match self {
            Severity::Critical | Severity::High => "error",
            Severity::Medium => "warning",
            Severity::Low | Severity::Info => "note",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Severity::WORST_FIRST
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("`{s}` is not a severity: use critical, high, medium, low or info"))
    }
}

/// `--fail-on`: the least severe finding that fails the run, or never.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOn {
    /// A finding of this severity or worse fails.
    At(Severity),
    /// Nothing fails (`none`): report only.
    Never,
}

impl FailOn {
    /// True when a finding of `severity` fails the run.
    pub fn fails(self, severity: Severity) -> bool {
        match self {
            FailOn::At(threshold) => severity >= threshold,
            FailOn::Never => false,
        }
    }

    /// `high`, …, or `none`.
    pub const fn as_str(self) -> &'static str {
        match self {
            FailOn::At(severity) => severity.as_str(),
            FailOn::Never => "none",
        }
    }
}

impl Default for FailOn {
    fn default() -> Self {
        FailOn::At(Severity::High)
    }
}

impl FromStr for FailOn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("none") {
            return Ok(FailOn::Never);
        }
        s.parse()
            .map(FailOn::At)
            .map_err(|_| format!("`{s}` is not a level: use critical, high, medium, low, info or none"))
    }
}

/// The check families, in the order reports list them. A rule's family is
/// the part of its id before the `/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Host and Origin validation.
    DnsRebinding,
    /// Unauthenticated access from the network.
    Exposure,
    /// Challenges, metadata and token validation.
    Auth,
    /// `MCP-Protocol-Version` handling.
    ProtocolVersion,
    /// Request body size limits.
    BodyLimit,
    /// Rate limiting.
    RateLimit,
    /// Security response headers.
    Headers,
    /// CORS policy.
    Cors,
    /// Session ids and their lifecycle.
    Session,
    /// Malformed input.
    Robustness,
    /// Transport security.
    Tls,
}

impl Family {
    /// Every family, in report order.
    pub const ALL: [Family; 11] = [
        Family::DnsRebinding,
        Family::Exposure,
        Family::Auth,
        Family::ProtocolVersion,
        Family::BodyLimit,
        Family::RateLimit,
        Family::Headers,
        Family::Cors,
        Family::Session,
        Family::Robustness,
        Family::Tls,
    ];

    /// The family's id, as in the `checks` list and rule id prefixes.
    pub const fn id(self) -> &'static str {
        match self {
            Family::DnsRebinding => "dns-rebinding",
            Family::Exposure => "exposure",
            Family::Auth => "auth",
            Family::ProtocolVersion => "protocol-version",
            Family::BodyLimit => "body-limit",
            Family::RateLimit => "rate-limit",
            Family::Headers => "headers",
            Family::Cors => "cors",
            Family::Session => "session",
            Family::Robustness => "robustness",
            Family::Tls => "tls",
        }
    }
}

macro_rules! rules {
    ($( $(#[$doc:meta])* $variant:ident => ($id:literal, $family:ident, $severity:ident, $title:literal, $fix:literal), )*) => {
        /// One kind of finding: stable id, family, default severity, title and fix.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Rule {
            $( $(#[$doc])* $variant, )*
        }

        impl Rule {
            /// Every rule, in table order (the SARIF rule list).
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)*];

            /// Stable id, e.g. `dns-rebinding/foreign-origin`.
            pub const fn id(self) -> &'static str {
                match self { $(Rule::$variant => $id,)* }
            }

            /// The family the rule belongs to.
            pub const fn family(self) -> Family {
                match self { $(Rule::$variant => Family::$family,)* }
            }

            /// Severity unless the check adjusts it (see the rule's doc).
            pub const fn default_severity(self) -> Severity {
                match self { $(Rule::$variant => Severity::$severity,)* }
            }

            /// One-line title.
            pub const fn title(self) -> &'static str {
                match self { $(Rule::$variant => $title,)* }
            }

            /// One-line hint on how to fix it.
            pub const fn fix(self) -> &'static str {
                match self { $(Rule::$variant => $fix,)* }
            }
        }
    };
}

rules! {
    /// A foreign `Origin` got a successful MCP answer.
    ForeignOrigin => ("dns-rebinding/foreign-origin", DnsRebinding, High, "A foreign Origin gets MCP answers", "Refuse (403) any Origin that is not in an allow-list of your own origins, as the MCP transport spec requires."),
    /// A foreign `Host` got a successful MCP answer (medium when the URL's host is not loopback).
    ForeignHost => ("dns-rebinding/foreign-host", DnsRebinding, High, "A foreign Host gets MCP answers", "Refuse (403) any Host header that is not a name this server is reached by, so DNS rebinding cannot reach it."),
    /// `Origin: null` got a successful MCP answer.
    NullOrigin => ("dns-rebinding/null-origin", DnsRebinding, Medium, "Origin: null gets MCP answers", "Treat Origin: null (sandboxed frames, file:// pages) as foreign and refuse it."),
    /// A non-loopback server initializes without credentials.
    Unauthenticated => ("exposure/unauthenticated", Exposure, Critical, "A network-reachable server answers without authentication", "Require authentication (OAuth 2.1 bearer tokens or API keys), or listen on loopback only."),
    /// 401 without a `resource_metadata` challenge (info: no auth at all, on loopback).
    NoChallenge => ("auth/no-challenge", Auth, Medium, "No WWW-Authenticate challenge with resource_metadata", "Answer 401 with WWW-Authenticate: Bearer resource_metadata=\"...\" (RFC 9728) so clients find the authorization server."),
    /// The advertised Protected Resource Metadata is unusable.
    MetadataInvalid => ("auth/metadata-invalid", Auth, Medium, "The Protected Resource Metadata is missing or wrong", "Serve RFC 9728 metadata at the advertised URL: JSON whose `resource` is this endpoint's URL and that lists `authorization_servers`."),
    /// A malformed bearer token got a successful answer.
    MalformedTokenAccepted => ("auth/malformed-token-accepted", Auth, High, "A malformed bearer token is accepted", "Validate every bearer token (signature, audience, expiry) on every request and refuse invalid ones with 401."),
    /// `MCP-Protocol-Version: 1999-01-01` was not refused with 400.
    UnsupportedVersionAccepted => ("protocol-version/unsupported-accepted", ProtocolVersion, Medium, "An unsupported MCP-Protocol-Version is not refused", "Answer 400 to any MCP-Protocol-Version the server does not support."),
    /// An initialize whose header contradicts its body was accepted.
    VersionMismatchAccepted => ("protocol-version/mismatch-accepted", ProtocolVersion, Low, "An initialize whose MCP-Protocol-Version header contradicts its body is accepted", "Refuse an initialize whose MCP-Protocol-Version header differs from its params.protocolVersion."),
    /// No 4xx for bodies grown up to the probe's limit.
    BodyLimitMissing => ("body-limit/missing", BodyLimit, Medium, "No request body size limit", "Refuse bodies over a limit (e.g. 4 MiB) with 413: by Content-Length before reading, and while reading chunked bodies."),
    /// A large body got a 5xx, a dropped connection or a timeout.
    BodyLimitUnstable => ("body-limit/unstable", BodyLimit, High, "A large request body breaks the server", "Enforce the body limit before buffering, so a large body gets 413 instead of an error, a reset or a stall."),
    /// A burst of pings never got a 429.
    RateLimitMissing => ("rate-limit/missing", RateLimit, Medium, "No rate limit", "Limit requests per client or principal and answer 429 past the limit."),
    /// A 429 without `Retry-After`.
    NoRetryAfter => ("rate-limit/no-retry-after", RateLimit, Low, "429 without Retry-After", "Send Retry-After with every 429 so clients back off for the right time."),
    /// A response lacks a security header.
    HeadersMissing => ("headers/missing", Headers, Low, "Security headers missing", "Send X-Content-Type-Options: nosniff, X-Frame-Options: DENY (or CSP frame-ancestors 'none') and Cache-Control: no-store on every response, errors included."),
    /// `Server` or `X-Powered-By` names a version.
    ServerVersion => ("headers/server-version", Headers, Low, "The server announces its software version", "Remove the version from the Server and X-Powered-By headers, or drop the headers."),
    /// `Access-Control-Allow-Origin` echoes an arbitrary origin.
    OriginReflected => ("cors/origin-reflected", Cors, High, "CORS reflects an arbitrary Origin", "List the allowed origins explicitly; never echo the request's Origin in Access-Control-Allow-Origin."),
    /// `Access-Control-Allow-Origin: *` with credentials.
    WildcardCredentials => ("cors/wildcard-credentials", Cors, High, "CORS allows any origin with credentials", "Never combine Access-Control-Allow-Origin: * with Access-Control-Allow-Credentials: true."),
    /// A session id with characters outside 0x21–0x7E.
    SessionIdCharset => ("session/id-charset", Session, Medium, "A session id has characters outside visible ASCII", "Make session ids visible ASCII only (0x21-0x7E), as the transport spec requires: hex or base64url."),
    /// Session ids that are short or predictable.
    SessionIdWeak => ("session/id-weak", Session, High, "Session ids are short or predictable", "Generate session ids from a CSPRNG with at least 128 bits (a random UUID, or 32 random bytes in hex)."),
    /// After DELETE the session id still works.
    DeleteIneffective => ("session/delete-ineffective", Session, Medium, "DELETE does not end the session", "After a DELETE, answer 404 to every request that carries the ended session id."),
    /// After DELETE the id is refused, but not with 404.
    DeleteWrongStatus => ("session/delete-wrong-status", Session, Low, "An ended session is refused with the wrong status", "Answer 404 to a request naming an ended session, so the client knows to start a new one (MCP transport spec)."),
    /// The server answers DELETE with 405 (allowed by the spec).
    DeleteUnsupported => ("session/delete-unsupported", Session, Info, "The server does not let clients end sessions (405 to DELETE)", "Allowed by the MCP spec; supporting DELETE lets clients end sessions early."),
    /// A session created with one token answered another.
    CrossPrincipal => ("session/cross-principal", Session, High, "A session answers a different principal", "Bind each session to the principal that created it and answer 404 to anyone else."),
    /// Malformed input got a 5xx (or a dropped connection).
    ServerError => ("robustness/server-error", Robustness, Medium, "Malformed input causes a server error", "Validate input and answer malformed requests with 400 and a JSON-RPC error, never a 5xx or a dropped connection."),
    /// Malformed input got no answer in time.
    Hang => ("robustness/hang", Robustness, Medium, "Malformed input makes the server hang", "Bound parsing (size, nesting depth) and answer every request promptly, errors included."),
    /// A response body holds a stack trace.
    StackTrace => ("robustness/stack-trace", Robustness, Medium, "A response leaks a stack trace", "Log internal errors on the server; send clients a generic JSON-RPC error without traces or paths."),
    /// A batch was processed under 2025-06-18 or later.
    BatchAccepted => ("robustness/batch-accepted", Robustness, Low, "A JSON-RPC batch is processed under a protocol version that forbids batches", "Refuse batches (400) when the negotiated protocol version is 2025-06-18 or later."),
    /// `http://` to a non-loopback host.
    Plaintext => ("tls/plaintext", Tls, Medium, "Plain HTTP to a non-loopback host", "Serve HTTPS (TLS 1.2 or 1.3) for anything beyond loopback."),
    /// A TLS 1.0 or 1.1 handshake completes.
    LegacyTls => ("tls/legacy-version", Tls, High, "TLS 1.0 or 1.1 is accepted", "Allow only TLS 1.2 and 1.3."),
    /// No `Strict-Transport-Security` over HTTPS.
    NoHsts => ("tls/no-hsts", Tls, Low, "No Strict-Transport-Security header", "Send Strict-Transport-Security: max-age=31536000 on HTTPS responses."),
}

/// Longest evidence kept: a short string, not a transcript.
const MAX_EVIDENCE: usize = 600;

/// One weakness found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub rule: Rule,
    /// Its severity here (the rule's default unless the check adjusted it).
    pub severity: Severity,
    /// The request sent and what came back. Never holds a token.
    pub evidence: String,
}

impl Finding {
    /// A finding with `evidence` made safe to print: control characters
    /// (which a server could use to write to a terminal) escaped, and capped.
    pub fn new(rule: Rule, severity: Severity, evidence: &str) -> Self {
        Finding { rule, severity, evidence: clean(evidence) }
    }

    /// Stable id.
    pub fn id(&self) -> &'static str {
        self.rule.id()
    }

    /// Adds more evidence of the same rule (one finding per rule in a report).
    pub(crate) fn merge(&mut self, severity: Severity, evidence: &str) {
        self.severity = self.severity.max(severity);
        if !self.evidence.contains(evidence) {
            let joined = format!("{}; {}", self.evidence, evidence);
            self.evidence = clean(&joined);
        }
    }
}

/// Escapes control characters and caps the length (on a char boundary).
pub(crate) fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_EVIDENCE));
    for c in text.chars() {
        if out.len() >= MAX_EVIDENCE {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Every id the shared specification names, with its default severity.
    const SPEC: &[(&str, Severity)] = &[
        ("dns-rebinding/foreign-origin", Severity::High),
        ("dns-rebinding/foreign-host", Severity::High),
        ("dns-rebinding/null-origin", Severity::Medium),
        ("exposure/unauthenticated", Severity::Critical),
        ("auth/no-challenge", Severity::Medium),
        ("auth/metadata-invalid", Severity::Medium),
        ("auth/malformed-token-accepted", Severity::High),
        ("protocol-version/unsupported-accepted", Severity::Medium),
        ("protocol-version/mismatch-accepted", Severity::Low),
        ("body-limit/missing", Severity::Medium),
        ("body-limit/unstable", Severity::High),
        ("rate-limit/missing", Severity::Medium),
        ("rate-limit/no-retry-after", Severity::Low),
        ("headers/missing", Severity::Low),
        ("headers/server-version", Severity::Low),
        ("cors/origin-reflected", Severity::High),
        ("cors/wildcard-credentials", Severity::High),
        ("session/id-charset", Severity::Medium),
        ("session/id-weak", Severity::High),
        ("session/delete-ineffective", Severity::Medium),
        ("session/delete-wrong-status", Severity::Low),
        ("session/delete-unsupported", Severity::Info),
        ("session/cross-principal", Severity::High),
        ("robustness/server-error", Severity::Medium),
        ("robustness/hang", Severity::Medium),
        ("robustness/stack-trace", Severity::Medium),
        ("robustness/batch-accepted", Severity::Low),
        ("tls/plaintext", Severity::Medium),
        ("tls/legacy-version", Severity::High),
        ("tls/no-hsts", Severity::Low),
    ];

    #[test]
    fn the_table_matches_the_specification() {
        let ids: HashSet<_> = Rule::ALL.iter().map(|r| r.id()).collect();
        assert_eq!(ids.len(), Rule::ALL.len(), "ids are unique");
        assert_eq!(Rule::ALL.len(), SPEC.len());
        for (id, severity) in SPEC {
            let rule = Rule::ALL.iter().find(|r| r.id() == *id).unwrap_or_else(|| panic!("{id} missing"));
            assert_eq!(rule.default_severity(), *severity, "{id}");
        }
        for rule in Rule::ALL {
            let prefix = rule.id().split('/').next().unwrap();
            assert_eq!(rule.family().id(), prefix, "{}", rule.id());
            assert!(!rule.title().is_empty() && !rule.fix().is_empty());
            assert!(!rule.title().contains('\n') && !rule.fix().contains('\n'));
        }
        // Every family has rules, and every rule's family is listed.
        for family in Family::ALL {
            assert!(Rule::ALL.iter().any(|r| r.family() == family), "{}", family.id());
        }
    }

    #[test]
    fn severities_order_and_parse() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::High > Severity::Medium);
        assert!(Severity::Medium > Severity::Low);
        assert!(Severity::Low > Severity::Info);
        assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
        assert!("severe".parse::<Severity>().is_err());

        assert_eq!(FailOn::default(), FailOn::At(Severity::High));
        assert_eq!("none".parse::<FailOn>(), Ok(FailOn::Never));
        assert_eq!("medium".parse::<FailOn>(), Ok(FailOn::At(Severity::Medium)));
        assert!("all".parse::<FailOn>().is_err());
        let high = FailOn::At(Severity::High);
        assert!(high.fails(Severity::Critical) && high.fails(Severity::High));
        assert!(!high.fails(Severity::Medium));
        assert!(FailOn::At(Severity::Info).fails(Severity::Info));
        assert!(!FailOn::Never.fails(Severity::Critical));
        assert_eq!(FailOn::Never.as_str(), "none");
    }

    #[test]
    fn evidence_is_escaped_capped_and_merged() {
        let f = Finding::new(Rule::StackTrace, Severity::Medium, "a\u{1b}[31mred\nline");
        assert_eq!(f.evidence, "a\\u{1b}[31mred\\nline");
        let long = "x".repeat(5000);
        assert!(Finding::new(Rule::StackTrace, Severity::Medium, &long).evidence.len() <= MAX_EVIDENCE + 4);
        let mut f = Finding::new(Rule::ServerError, Severity::Medium, "one");
        f.merge(Severity::High, "two");
        f.merge(Severity::Low, "one");
        assert_eq!((f.severity, f.evidence.as_str()), (Severity::High, "one; two"));
    }
}
