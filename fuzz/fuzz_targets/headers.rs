//! Request header parsing: Host/Origin validation (`host_origin`), the
//! client IP from `Forwarded`/`X-Forwarded-For` (`client_ip`),
//! `MCP-Protocol-Version` (`protocol_version`) and the transport's
//! `Accept`/`Content-Type` rules.
//!
//! The input is a header block, one `name: value` per line. A few pseudo
//! headers configure the run instead, so configured values are fuzzed too:
//! `allow-origin`, `allow-host`, `trusted-proxy`, `peer` (the TCP peer),
//! `:authority` (the HTTP/2 URI authority), `supported-version` and
//! `session-version: <session> <version>` (a negotiated session).

#![no_main]

use std::{net::SocketAddr, time::Duration};

use http::{HeaderName, HeaderValue, Request, header};
use libfuzzer_sys::fuzz_target;
use mcp_guard_fuzz::ready;
use mcp_guard_layers::{
    Rejection,
    client_ip::{ClientIpLayer, TrustedProxies},
    host_origin::{HostOrigin, HostOriginPolicy},
    identity::{ClientIp, PeerAddr},
    protocol_version::{DEFAULT_VERSIONS, Versions},
    transport::{self, MCP_PROTOCOL_VERSION},
};
use tower::{Layer, Service, service_fn};

#[derive(Default)]
struct Input<'a> {
    origins: Vec<&'a str>,
    hosts: Vec<&'a str>,
    proxies: Vec<&'a str>,
    peer: Option<&'a str>,
    authority: Option<&'a str>,
    versions: Vec<&'a str>,
    sessions: Vec<(&'a str, &'a str)>,
    headers: http::HeaderMap,
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let input = parse(text);
    host_origin(&input);
    client_ip(&input);
    protocol_version(&input);
    if transport::check_post(&input.headers).is_ok() {
        assert!(transport::check_get(&input.headers).is_ok(), "a POST's Accept covers what a GET needs");
    }
});

fn parse(text: &str) -> Input<'_> {
    let mut input = Input::default();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        // `:authority` starts with the separator itself.
        let (name, value) = match line.strip_prefix(":authority:") {
            Some(v) => (":authority", v),
            None => match line.split_once(':') {
                Some(pair) => pair,
                None => continue,
            },
        };
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "allow-origin" => input.origins.push(value),
            "allow-host" => input.hosts.push(value),
            "trusted-proxy" => input.proxies.push(value),
            "peer" => input.peer = Some(value),
            ":authority" => input.authority = Some(value),
            "supported-version" => input.versions.push(value),
            "session-version" => input.sessions.extend(value.split_once(' ')),
            _ => {
                if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
                    input.headers.append(n, v);
                }
            }
        }
    }
    input
}

fn host_origin(input: &Input<'_>) {
    let mut policy = HostOriginPolicy::default();
    if input.origins.is_empty() && input.hosts.is_empty() {
        policy = HostOriginPolicy::loopback(8001);
    }
    for origin in &input.origins {
        if let Ok(alone) = HostOriginPolicy::default().allow_origin(origin) {
            assert!(alone.origin_allowed(origin.trim().as_bytes()), "allowed origin {origin:?} refused");
            // What the startup log prints must configure the same origin again.
            for described in alone.describe_origins() {
                let again = HostOriginPolicy::default().allow_origin(&described).expect("a described origin parses");
                assert_eq!(again.describe_origins(), vec![described]);
            }
        }
        policy = policy.clone().allow_origin(origin).unwrap_or(policy);
    }
    for host in &input.hosts {
        if let Ok(alone) = HostOriginPolicy::default().allow_host(host) {
            let host = host.trim();
            match host.strip_suffix(":*") {
                Some(name) => {
                    assert!(alone.host_allowed(Some(name.as_bytes())), "{host:?} refuses {name:?}");
                    let with_port = format!("{name}:8443");
                    assert!(alone.host_allowed(Some(with_port.as_bytes())), "{host:?} refuses {with_port:?}");
                }
                None => assert!(alone.host_allowed(Some(host.as_bytes())), "allowed host {host:?} refused"),
            }
        }
        policy = policy.clone().allow_host(host).unwrap_or(policy);
    }

    let uri = input.authority.and_then(|a| format!("http://{a}/mcp").parse::<http::Uri>().ok());
    let mut req = Request::new(());
    if let Some(uri) = uri {
        *req.uri_mut() = uri;
    }
    *req.headers_mut() = input.headers.clone();
    let verdict = HostOrigin::<()>::check(&policy, &req);
    let host = match req.uri().authority() {
        Some(a) => Some(a.as_str().as_bytes()),
        None => req.headers().get(header::HOST).map(HeaderValue::as_bytes),
    };
    let origins: Vec<_> = req.headers().get_all(header::ORIGIN).iter().collect();
    let expected = if !policy.host_allowed(host) {
        Err(Rejection::HostNotAllowed)
    } else if origins.len() > 1 || origins.first().is_some_and(|o| !policy.origin_allowed(o.as_bytes())) {
        Err(Rejection::OriginNotAllowed)
    } else {
        Ok(())
    };
    assert_eq!(verdict, expected);
}

fn client_ip(input: &Input<'_>) {
    let trusted = if input.proxies.is_empty() {
        TrustedProxies::parse(["10.0.0.0/8", "fd00::/8"])
    } else {
        TrustedProxies::parse(&input.proxies)
    };
    let Ok(trusted) = trusted else { return };
    let peer: SocketAddr = input.peer.and_then(|p| p.trim().parse().ok()).unwrap_or(([10, 0, 0, 1], 4000).into());
    let peer_trusted = trusted.contains(peer.ip());
    let empty = trusted.is_empty();
    let mut svc = ClientIpLayer::new(trusted).layer(service_fn(|req: Request<()>| {
        std::future::ready(Ok::<_, std::convert::Infallible>(req.extensions().get::<ClientIp>().copied()))
    }));
    let mut req = Request::new(());
    *req.headers_mut() = input.headers.clone();
    req.extensions_mut().insert(PeerAddr(peer));
    let Ok(Some(ClientIp(ip))) = ready(svc.call(req)) else { panic!("no client IP resolved") };
    if empty || !peer_trusted {
        assert_eq!(ip, peer.ip(), "headers believed from an untrusted peer");
    }
    if ip != peer.ip() {
        let forwarded = input.headers.contains_key(header::FORWARDED) || input.headers.contains_key("x-forwarded-for");
        assert!(forwarded, "client IP {ip} invented without a forwarding header");
    }
}

fn protocol_version(input: &Input<'_>) {
    let supported: Vec<&str> =
        if input.versions.is_empty() { DEFAULT_VERSIONS.to_vec() } else { input.versions.clone() };
    let strict = Versions::with_capacity(&supported, 16, Duration::from_secs(3600));
    let lenient = Versions::with_capacity(&supported, 16, Duration::from_secs(3600)).enforce_negotiated(false);
    for (session, version) in &input.sessions {
        for versions in [&strict, &lenient] {
            if let Some(v) = versions.find(version.as_bytes()) {
                versions.learn(session, v);
            }
        }
    }
    let declared = input.headers.get_all(&MCP_PROTOCOL_VERSION).iter().count();
    let strict_result = strict.check(&input.headers);
    let lenient_result = lenient.check(&input.headers);
    for result in [&strict_result, &lenient_result] {
        match result {
            Ok(v) => {
                assert!(strict.find(v.version.as_bytes()).is_some(), "unsupported version {:?} accepted", v.version);
                assert_eq!(v.declared, declared == 1);
                assert!(declared <= 1, "two MCP-Protocol-Version headers accepted");
            }
            Err(r) => assert!(matches!(r, Rejection::UnsupportedProtocolVersion | Rejection::ProtocolVersionMismatch)),
        }
    }
    if let Ok(v) = &strict_result {
        assert_eq!(lenient_result.as_ref().ok(), Some(v), "lenient refuses what strict accepts");
    }
}
