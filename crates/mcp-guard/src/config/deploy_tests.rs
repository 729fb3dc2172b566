//! Production mode and the deployment sections.

use super::*;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    load_from_str(text, "test.toml", env, &Overrides::default())
}

const KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

/// A config that passes production mode, with TLS replaced by a trusted proxy
/// (the test has no certificate files).
fn production() -> String {
    format!(
        r#"
[server]
mode = "production"
listen = "0.0.0.0:8001"
trusted_proxies = ["10.0.0.0/8"]
[auth]
resource = "https://mcp.example.com/mcp"
[[auth.api_keys]]
name = "ci"
hash = "{}"
[[sessions.keys]]
env = "SESSION_KEY"
"#,
        hash_api_key("k")
    )
}

#[test]
fn production_mode_accepts_a_complete_deployment() {
    let c = load(&production(), &[("SESSION_KEY", KEY)]).expect("valid production config");
    assert!(c.production);
    let sealing = c.sessions.expect("sealing");
    assert_eq!(sealing.keys.len(), 1);
    assert_eq!(format!("{:?}", sealing.keys[0]), "SealingKey([redacted])");
    assert_eq!(sealing.ttl, Duration::from_secs(24 * 3600));
}

#[test]
fn production_mode_names_each_missing_setting() {
    let full = production();
    type Case = (String, Vec<(&'static str, &'static str)>, &'static str);
    let cases: Vec<Case> = vec![
        (full.clone(), vec![], "`sessions.keys[0]`"),
        (full.replace("[[auth.api_keys]]", "[[x]]"), vec![("SESSION_KEY", KEY)], "unknown field"),
        (full.replace("trusted_proxies = [\"10.0.0.0/8\"]", ""), vec![("SESSION_KEY", KEY)], "`tls.cert`"),
        (
            full.replace("trusted_proxies", "allowed_origins = [\"null\"]\ntrusted_proxies"),
            vec![("SESSION_KEY", KEY)],
            "`server.allowed_origins`",
        ),
        (full.replace("[[sessions.keys]]\nenv = \"SESSION_KEY\"", ""), vec![], "`sessions.keys`"),
    ];
    for (text, env, want) in cases {
        let e = load(&text, &env).expect_err("refused").to_string();
        assert!(e.contains(want), "{want}: {e}");
    }
    let no_auth = "[server]\nmode = \"production\"\n";
    assert!(load(no_auth, &[]).expect_err("refused").to_string().contains("`auth`"));
    // ENVIRONMENT=production turns it on; other values do not.
    assert!(load("", &[("ENVIRONMENT", "production")]).expect_err("refused").to_string().contains("`auth`"));
    assert!(!load("", &[("ENVIRONMENT", "staging")]).expect("dev").production);
}

#[test]
fn deployment_sections_name_their_keys() {
    let cases: &[(&str, &str)] = &[
        ("[server]\nmode = \"prod\"", "`server.mode`"),
        ("[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"", "`tls.cert`"),
        ("[tls]\ncert = \"/etc/hostname\"", "`tls.key`"),
        ("[redis]\nurl = \"http://x\"", "`redis.url`"),
        ("[redis]\nurl = \"redis://a\"\nnodes = [\"redis://b\"]", "`redis.nodes`"),
        ("[redis]\nnodes = [\"redis://a:1\", \"tcp://b\"]", "`redis.nodes[1]`"),
        ("[redis]\nurl_env = \"NOPE_UNSET\"", "`redis.url_env`"),
        ("[redis]\nurl = \"redis://a\"\nkey_prefix = \"{x}\"", "`redis.key_prefix`"),
        ("[rate_limit]\nbackend = \"redis\"", "`rate_limit.backend`"),
        ("[rate_limit]\nbackend = \"etcd\"", "`rate_limit.backend`"),
        ("[rate_limit]\nreplicas = 2", "`rate_limit.backend`"),
        (
            "[redis]\nurl = \"redis://a\"\n[rate_limit]\nbackend = \"redis\"\non_backend_failure = \"open\"",
            "`rate_limit.on_backend_failure`",
        ),
        ("[redis]\nurl = \"redis://a\"\n[rate_limit]\nbackend = \"redis\"\nreplicas = 0", "`rate_limit.replicas`"),
        ("[[sessions.keys]]\nenv = \"SHORT\"", "`sessions.keys[0]`"),
        ("[sessions]\nttl = \"1h\"", "`sessions.keys`"),
    ];
    for (text, want) in cases {
        let e = load(text, &[("SHORT", "c2hvcnQ=")]).expect_err(text).to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
    let secret = "redis://:hunter2@127.0.0.1:6390";
    let e = load("[redis]\nurl = \"rediss:x\"\nnodes = [\"rediss://:hunter2@h:1\", \"nope://:hunter2@h\"]", &[])
        .expect_err("bad node")
        .to_string();
    assert!(!e.contains("hunter2"), "a URL's password is never echoed: {e}");
    let c = load(&format!("[redis]\nurl = \"{secret}\"\n[rate_limit]\nbackend = \"redis\"\nreplicas = 3"), &[])
        .expect("valid");
    assert!(!format!("{c:?}").contains("hunter2"), "nor printed by Debug");
    assert!(matches!(
        c.rate_limit.expect("on").backend,
        RateLimitBackend::Redis { on_failure: BackendFailure::Local, replicas } if replicas.get() == 3
    ));
}
