//! The gateway's configuration: `config::load_from_str` (typed TOML parse,
//! environment overrides, validation, production checks) and, for a
//! configuration that validates, what startup derives from it without I/O:
//! the Host/Origin policy, the RFC 9728 document, the auth challenge and
//! the JWT verifier.
//!
//! Input: the TOML text, then optionally a NUL byte and `NAME=value` lines
//! added to a fixed environment that holds the secrets the examples name.
//!
//! Invariants: nothing panics, and no secret value from the environment
//! appears in the validated configuration's `Debug` output or in an error
//! message (the gateway logs both).

#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_guard::{
    auth::{ResourceMetadata, jwt_verifier},
    config::{Overrides, load_from_str},
};
use mcp_guard_fuzz::split_once;
use mcp_guard_layers::auth::Challenge;

/// Secret values, each unlikely to be typed into the TOML by the fuzzer.
const SECRETS: [(&str, &str); 5] = [
    ("REDIS_URL", "rediss://:pw-fz7Q2xR9@redis.internal:6380"),
    ("UPSTREAM_AUTHORIZATION", "Bearer up-fz4K8mW1-token"),
    ("JWT_SHARED_SECRET", "hs-fz6T3vN0-0123456789abcdef0123456789abcdef"),
    ("API_KEY_SECRET", "mcpg_fz2P5yL7apikeysecretvalue000000000000000"),
    ("UPSTREAM_SECRET", "fz9J1cD4-upstream-secret"),
];

/// Sealing keys: 32 bytes, base64. Their text is never printed either.
const SEALING_KEYS: [(&str, &str); 2] = [
    ("SESSION_SEALING_KEY", "Zno4Uzl2YjJrUDVxVzFtTjdyVDNlWTB1STZvQTRzRDI="),
    ("SESSION_SEALING_KEY_OLD", "MTIzNDU2Nzg5MGFiY2RlZjEyMzQ1Njc4OTBhYmNkZWY="),
];

fuzz_target!(|data: &[u8]| {
    let (toml, env) = split_once(data, 0);
    let Ok(text) = std::str::from_utf8(toml) else { return };
    // Paths in a config are read as files; a fuzzer naming a device (e.g.
    // /dev/zero) would test the machine, not the parser. Operators choose
    // these paths; the gateway does not guard against its own config.
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    let mut vars: Vec<(String, String)> =
        SECRETS.iter().chain(&SEALING_KEYS).map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    for line in String::from_utf8_lossy(env).lines() {
        if let Some((k, v)) = line.split_once('=') {
            vars.push((k.to_owned(), v.to_owned()));
        }
    }
    let written = |secret: &str| text.contains(secret) || String::from_utf8_lossy(env).contains(secret);
    let check = |what: &str, shown: &str| {
        for (name, secret) in SECRETS.iter().chain(&SEALING_KEYS) {
            assert!(written(secret) || !shown.contains(secret), "{what} shows the value of {name}: {shown}");
        }
    };

    let config = match load_from_str(text, "fuzz.toml", vars, &Overrides::default()) {
        Ok(config) => config,
        Err(e) => return check("an error", &e.to_string()),
    };
    check("the config's Debug", &format!("{config:?}"));

    // What startup derives from a valid configuration, short of binding and connecting.
    let policy = config.host_origin(8001);
    assert!(policy.host_allowed(Some(b"127.0.0.1:8001")), "the gateway refuses its own loopback address");
    let Some(auth) = &config.auth else { return };
    let resource = auth.resource.clone().unwrap_or_else(|| format!("http://127.0.0.1:8001{}", config.path));
    let Ok(metadata) = ResourceMetadata::new(&resource, &auth.authorization_servers, &auth.scopes_supported) else {
        return;
    };
    let _challenge = Challenge::new(metadata.url(), auth.scopes_supported.iter().cloned());
    // Remote key sources build an HTTPS client (reading the system's roots)
    // per verifier: startup work, milliseconds per input. Static keys only.
    if let Some(jwt) = auth.jwt.as_ref().filter(|jwt| !jwt.pem_keys.is_empty()) {
        match jwt_verifier(jwt, &resource) {
            Ok(verifier) => check("the JWT verifier's Debug", &format!("{verifier:?}")),
            Err(e) => check("a JWT setup error", &e),
        }
    }
});
