//! The allow-lists and how a header value is matched against them.

use std::fmt;

/// Which `Host` and `Origin` values a server accepts.
///
/// Matching is exact and case-insensitive on scheme and host; default ports
/// are normalised (`http://a` and `http://a:80` are the same origin).
#[derive(Clone, Debug, Default)]
pub struct HostOriginPolicy {
    hosts: Vec<HostPattern>,
    any_host: bool,
    origins: Vec<Origin>,
    any_origin: bool,
    null_origin: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct HostPattern {
    host: String,
    /// `None` matches a `Host` without a port; `Some(None)` any port.
    port: Option<Option<u16>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

/// A configured origin or host that cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidOrigin(pub String);

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a valid origin: expected scheme://host[:port] (for example http://localhost:3000), `null` or `*`",
            self.0
        )
    }
}

impl std::error::Error for InvalidOrigin {}

const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl HostOriginPolicy {
    /// Loopback only: `Host` must be `localhost`, `127.0.0.1` or `[::1]` with
    /// `port`, and an `Origin`, when sent, must be one of those same names
    /// and port over `http://` or `https://` (a page served by this very
    /// endpoint).
    pub fn loopback(port: u16) -> Self {
        HostOriginPolicy::default().with_loopback(port)
    }

    /// Adds what [`loopback`](Self::loopback) allows to this policy.
    pub fn with_loopback(mut self, port: u16) -> Self {
        for name in LOOPBACK_NAMES {
            let host = HostPattern { host: name.to_owned(), port: Some(Some(port)) };
            if !self.hosts.contains(&host) {
                self.hosts.push(host);
            }
            // The gateway's own pages over either scheme: it may serve TLS.
            for scheme in ["http", "https"] {
                let origin = Origin { scheme: scheme.into(), host: name.to_owned(), port };
                if !self.origins.contains(&origin) {
                    self.origins.push(origin);
                }
            }
        }
        self
    }

    /// Also accept this origin (`scheme://host[:port]`), `null`, or `*` for any.
    pub fn allow_origin(mut self, origin: &str) -> Result<Self, InvalidOrigin> {
        match origin.trim() {
            "*" => self.any_origin = true,
            "null" => self.null_origin = true,
            other => {
                let parsed = parse_origin(other).ok_or_else(|| InvalidOrigin(origin.to_owned()))?;
                if !self.origins.contains(&parsed) {
                    self.origins.push(parsed);
                }
            }
        }
        Ok(self)
    }

    /// Also accept this `Host`: `name` (no port), `name:port`, `name:*`
    /// (any port), or `*` (any host: turns the Host check off).
    pub fn allow_host(mut self, host: &str) -> Result<Self, InvalidOrigin> {
        let host = host.trim();
        if host == "*" {
            self.any_host = true;
            return Ok(self);
        }
        let pattern = match host.strip_suffix(":*") {
            Some(name) => split_authority(name)
                .filter(|(_, port)| port.is_none())
                .map(|(h, _)| HostPattern { host: h, port: Some(None) }),
            None => split_authority(host).map(|(h, port)| HostPattern { host: h, port: port.map(Some) }),
        }
        .ok_or_else(|| InvalidOrigin(host.to_owned()))?;
        if !self.hosts.contains(&pattern) {
            self.hosts.push(pattern);
        }
        Ok(self)
    }

    /// True when `Origin: *` or `null` is allowed (production mode refuses both).
    pub fn allows_wildcard_or_null_origin(&self) -> bool {
        self.any_origin || self.null_origin
    }

    /// The allowed origins, serialized, for startup logs.
    pub fn describe_origins(&self) -> Vec<String> {
        let mut out: Vec<String> = self.origins.iter().map(Origin::to_string).collect();
        if self.null_origin {
            out.push("null".into());
        }
        if self.any_origin {
            out.push("*".into());
        }
        out
    }

    /// Is this `Host` (or `:authority`) value allowed? `None` is a missing Host.
    pub fn host_allowed(&self, host: Option<&[u8]>) -> bool {
        if self.any_host {
            return true;
        }
        let Some((name, port)) = host.and_then(|h| std::str::from_utf8(h).ok()).and_then(split_authority) else {
            return false;
        };
        self.hosts.iter().any(|p| {
            p.host == name
                && match p.port {
                    None => port.is_none(),
                    Some(None) => true,
                    Some(Some(want)) => port == Some(want),
                }
        })
    }

    /// Is this `Origin` value allowed? A missing Origin is the caller's
    /// business (it passes); this judges a present one.
    pub fn origin_allowed(&self, origin: &[u8]) -> bool {
        if self.any_origin {
            return true;
        }
        let Ok(origin) = std::str::from_utf8(origin) else {
            return false;
        };
        if origin == "null" {
            return self.null_origin;
        }
        parse_origin(origin).is_some_and(|o| self.origins.contains(&o))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match default_port(&self.scheme) {
            Some(p) if p == self.port => write!(f, "{}://{}", self.scheme, self.host),
            _ => write!(f, "{}://{}:{}", self.scheme, self.host, self.port),
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// Parses an RFC 6454 serialized origin: `scheme "://" host [ ":" port ]`,
/// nothing after it. Userinfo, paths, queries and fragments are refused.
fn parse_origin(s: &str) -> Option<Origin> {
    let (scheme, rest) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) {
        return None;
    }
    let (host, port) = split_authority(rest)?;
    let port = match port {
        Some(p) => p,
        None => default_port(&scheme)?,
    };
    Some(Origin { scheme, host, port })
}

/// Splits `host[:port]` (IPv6 in brackets) into a lower-cased host and port.
/// Refuses empty hosts, userinfo, paths and anything but host characters.
fn split_authority(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return None;
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{}]", v6.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        let host_ok =
            !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !host_ok {
            return None;
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        let p = HostOriginPolicy::loopback(8001);
        let cases: &[(Option<&str>, bool)] = &[
            (Some("localhost:8001"), true),
            (Some("LOCALHOST:8001"), true),
            (Some("127.0.0.1:8001"), true),
            (Some("[::1]:8001"), true),
            (Some("localhost"), false),
            (Some("localhost:8002"), false),
            (Some("evil.example:8001"), false),
            (Some("127.0.0.1.evil.example:8001"), false),
            (Some("localhost:8001@evil"), false),
            (Some("user@localhost:8001"), false),
            (Some("localhost:8001/x"), false),
            (Some("[::1"), false),
            (Some(""), false),
            (None, false),
        ];
        for (host, want) in cases {
            assert_eq!(p.host_allowed(host.map(str::as_bytes)), *want, "{host:?}");
        }
    }

    #[test]
    fn configured_hosts() {
        let p = HostOriginPolicy::default()
            .allow_host("mcp.example.com")
            .and_then(|p| p.allow_host("api.example.com:*"))
            .and_then(|p| p.allow_host("[::1]:9000"))
            .expect("valid hosts");
        assert!(p.host_allowed(Some(b"mcp.example.com")));
        assert!(!p.host_allowed(Some(b"mcp.example.com:8443")));
        assert!(p.host_allowed(Some(b"api.example.com:8443")));
        assert!(p.host_allowed(Some(b"[::1]:9000")));
        for bad in ["", "a b", "x:y", "http://x", "[zz]:1", "h:99999"] {
            assert!(HostOriginPolicy::default().allow_host(bad).is_err(), "{bad}");
        }
        assert!(HostOriginPolicy::default().allow_host("*").expect("star").host_allowed(Some(b"anything")));
    }

    #[test]
    fn origins_match_exactly_on_scheme_host_port() {
        let p = HostOriginPolicy::loopback(8001)
            .allow_origin("http://localhost:3000")
            .and_then(|p| p.allow_origin("https://app.example.com"))
            .expect("valid origins");
        let cases: &[(&str, bool)] = &[
            ("http://localhost:3000", true),
            ("HTTP://LOCALHOST:3000", true),
            ("http://localhost:8001", true),
            ("http://127.0.0.1:8001", true),
            ("https://app.example.com", true),
            ("https://app.example.com:443", true),
            ("http://app.example.com", false),
            ("https://app.example.com:8443", false),
            ("http://localhost:3001", false),
            ("https://localhost:3000", false),
            ("http://localhost", false),
            ("http://evil.com", false),
            ("http://localhost:3000.evil.com", false),
            ("http://localhost:3000/", false),
            ("http://user@localhost:3000", false),
            ("null", false),
            ("", false),
            ("localhost:3000", false),
        ];
        for (origin, want) in cases {
            assert_eq!(p.origin_allowed(origin.as_bytes()), *want, "{origin}");
        }
        assert!(!p.origin_allowed(&[0xff, 0xfe]));
    }

    #[test]
    fn null_and_wildcard_only_when_explicit() {
        let p = HostOriginPolicy::loopback(1).allow_origin("null").expect("null");
        assert!(p.origin_allowed(b"null") && p.allows_wildcard_or_null_origin());
        let p = HostOriginPolicy::loopback(1).allow_origin("*").expect("star");
        assert!(p.origin_allowed(b"http://anything:1"));
        assert!(HostOriginPolicy::loopback(1).allow_origin("ftp//x").is_err());
        assert!(HostOriginPolicy::loopback(1).allow_origin("http://").is_err());
    }

    #[test]
    fn describes_origins_canonically() {
        let p = HostOriginPolicy::default()
            .allow_origin("https://a.example:443")
            .and_then(|p| p.allow_origin("http://b.example:8080"))
            .expect("valid");
        assert_eq!(p.describe_origins(), ["https://a.example", "http://b.example:8080"]);
    }
}
