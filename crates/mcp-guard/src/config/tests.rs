use super::*;

fn load(text: &str, env: &[(&str, &str)], overrides: &Overrides) -> Result<Config, ConfigError> {
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    load_from_str(text, "test.toml", env, overrides)
}

fn error(text: &str, env: &[(&str, &str)]) -> String {
    load(text, env, &Overrides::default()).expect_err("should be refused").to_string()
}

#[test]
fn defaults_are_secure() {
    let c = load("", &[], &Overrides::default()).expect("empty config is valid");
    assert_eq!(c.listen.to_string(), "127.0.0.1:8001");
    assert_eq!(c.path, "/mcp");
    assert!(matches!(c.upstream, UpstreamConfig::Demo));
    assert!(c.host_origin(c.listen.port()).host_allowed(Some(b"localhost:8001")));
    assert!(!c.host_origin(c.listen.port()).host_allowed(Some(b"example.com:8001")));
    assert!(!c.host_origin(c.listen.port()).allows_wildcard_or_null_origin());
    assert!(c.log.json);
}

#[test]
fn unknown_keys_name_file_and_line() {
    let e = error("[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n", &[]);
    assert!(e.contains("test.toml") && e.contains("line 3") && e.contains("lisen"), "{e}");
    let e = error("[servr]\n", &[]);
    assert!(e.contains("line 1") && e.contains("servr"), "{e}");
}

#[test]
fn bad_values_name_the_key() {
    let cases: &[(&str, &str)] = &[
        ("[server]\nlisten = \"nowhere\"", "`server.listen`"),
        ("[server]\npath = \"mcp\"", "`server.path`"),
        ("[server]\npath = \"/health\"", "`server.path`"),
        ("[server]\nallowed_origins = [\"http://ok:1\", \"bad\"]", "`server.allowed_origins[1]`"),
        ("[server]\nallowed_hosts = [\"a b\"]", "`server.allowed_hosts[0]`"),
        ("[server]\nshutdown_timeout = \"0s\"", "`server.shutdown_timeout`"),
        ("[upstream]\nurl = \"ftp://x\"", "`upstream.url`"),
        ("[upstream]\nurl = \"https://x/mcp\"", "`upstream.url`"),
        ("[upstream]\nurl = \"http://user:pw@x/mcp\"", "`upstream.url`"),
        ("[upstream]\nurl = \"http://x/mcp\"\ncommand = [\"a\"]", "`upstream`"),
        ("[upstream]\ncommand = []", "`upstream.command`"),
        ("[upstream]\ncommand = [\"a\"]\n[stdio]\nmax_sessions = 0", "`stdio.max_sessions`"),
        ("[upstream]\ncommand = [\"a\"]\n[stdio]\nidle_timeout = \"soon\"", "`stdio.idle_timeout`"),
        ("[upstream]\ncommand = [\"a\"]\nmax_message_size = \"12\"", "`upstream.max_message_size`"),
        ("[log]\nformat = \"xml\"", "`log.format`"),
        ("[log]\nlevel = \"[[[\"", "`log.level`"),
    ];
    for (text, key) in cases {
        let e = error(text, &[]);
        assert!(e.contains(key), "{text:?} gave {e}");
    }
    let e = error("[server]\nlisten = 5", &[]);
    assert!(e.contains("line 2") && e.contains("string"), "{e}");
}

#[test]
fn environment_overrides_file_and_is_checked_per_variable() {
    let c = load(
        "[server]\nlisten = \"127.0.0.1:1\"",
        &[
            ("MCP_GUARD_SERVER__LISTEN", "127.0.0.1:2"),
            ("MCP_GUARD_UPSTREAM__COMMAND", "[\"srv\", \"--x\"]"),
            ("OTHER", "x"),
        ],
        &Overrides::default(),
    )
    .expect("valid");
    assert_eq!(c.listen.port(), 2);
    assert!(matches!(&c.upstream, UpstreamConfig::Stdio(s) if s.argv == ["srv", "--x"]));

    let e = error("", &[("MCP_GUARD_SERVER__LISTN", "x")]);
    assert!(e.contains("MCP_GUARD_SERVER__LISTN") && e.contains("listn"), "{e}");
    let e = error("", &[("MCP_GUARD_LISTEN", "x")]);
    assert!(e.contains("MCP_GUARD_LISTEN") && e.contains("MCP_GUARD_SERVER__LISTEN"), "{e}");
    let e = error("", &[("MCP_GUARD_STDIO__MAX_SESSIONS", "many")]);
    assert!(e.contains("MCP_GUARD_STDIO__MAX_SESSIONS"), "{e}");
}

#[test]
fn cli_overrides_everything_and_picks_the_upstream() {
    let file = "[upstream]\nurl = \"http://127.0.0.1:9/mcp\"";
    let env = [("MCP_GUARD_SERVER__LISTEN", "127.0.0.1:2")];
    let cli =
        Overrides { listen: Some("127.0.0.1:3".into()), command: Some(vec!["srv".into()]), ..Overrides::default() };
    let c = load(file, &env, &cli).expect("valid");
    assert_eq!(c.listen.port(), 3);
    assert!(matches!(c.upstream, UpstreamConfig::Stdio(_)));
    let cli = Overrides { upstream_url: Some("http://127.0.0.1:7/x".into()), ..Overrides::default() };
    let c = load("[upstream]\ncommand = [\"srv\"]", &[], &cli).expect("valid");
    assert!(matches!(&c.upstream, UpstreamConfig::Http(h) if h.url == "http://127.0.0.1:7/x"));
}

#[test]
fn host_and_origin_lists_extend_the_loopback_defaults() {
    let c = load(
        "[server]\nlisten = \"127.0.0.1:9000\"\nallowed_hosts = [\"mcp.example.com\"]\nallowed_origins = [\"http://localhost:3000\"]",
        &[],
        &Overrides::default(),
    )
    .expect("valid");
    assert!(c.host_origin(c.listen.port()).host_allowed(Some(b"localhost:9000")));
    assert!(c.host_origin(c.listen.port()).host_allowed(Some(b"mcp.example.com")));
    assert!(c.host_origin(c.listen.port()).origin_allowed(b"http://localhost:3000"));
    assert!(!c.host_origin(c.listen.port()).origin_allowed(b"http://localhost:3001"));
}

#[test]
fn security_settings_default_on_and_validate() {
    let c = load("", &[], &Overrides::default()).expect("valid");
    assert_eq!(c.max_body, 4 << 20);
    assert_eq!(c.protocol_versions, ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]);
    let rl = c.rate_limit.expect("on by default");
    assert_eq!((rl.caller.per_minute.get(), rl.caller.burst.get()), (60, 60));
    assert!(c.trusted_proxies.is_empty() && c.metrics);
    let cases: &[(&str, &str)] = &[
        ("[limits]\nmax_body = \"12\"", "`limits.max_body`"),
        ("[limits]\nmax_json_depth = 0", "`limits.max_json_depth`"),
        ("[protocol]\nversions = []", "`protocol.versions`"),
        ("[protocol]\nversions = [\"2025-06-18\", \"1.0\"]", "`protocol.versions[1]`"),
        ("[rate_limit]\nper_minute = 0", "`rate_limit.per_minute`"),
        ("[rate_limit]\nburst = 0", "`rate_limit.burst`"),
        ("[rate_limit.per_tool]\nslow = { per_minute = 0 }", "`rate_limit.per_tool.\"slow\".per_minute`"),
        ("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"bogus\"]", "`server.trusted_proxies[1]`"),
    ];
    for (text, key) in cases {
        let e = error(text, &[]);
        assert!(e.contains(key), "{text:?} gave {e}");
    }
    let c = load("[rate_limit]\nenabled = false", &[], &Overrides::default()).expect("valid");
    assert!(c.rate_limit.is_none());
    let c =
        load("[rate_limit.per_method]\n\"tools/call\" = { per_minute = 30, burst = 5 }", &[], &Overrides::default())
            .expect("valid");
    let rl = c.rate_limit.expect("on");
    assert_eq!(rl.per_method[0].0, "tools/call");
    assert_eq!((rl.per_method[0].1.per_minute.get(), rl.per_method[0].1.burst.get()), (30, 5));
}

#[test]
fn guide_environment_variables_are_honoured() {
    let c = load(
        "[server]\nallowed_origins = [\"http://a.example\"]",
        &[
            ("CORS_ORIGINS", "[\"http://localhost:3000\", \"https://app.example.com\"]"),
            ("RATE_LIMIT_PER_MINUTE", "120"),
        ],
        &Overrides::default(),
    )
    .expect("valid");
    let policy = c.host_origin(c.listen.port());
    for origin in ["http://a.example", "http://localhost:3000", "https://app.example.com"] {
        assert!(policy.origin_allowed(origin.as_bytes()), "{origin}");
    }
    assert_eq!(c.rate_limit.expect("on").caller.per_minute.get(), 120);
    let c =
        load("", &[("CORS_ORIGINS", "http://x.example:1, http://y.example:2")], &Overrides::default()).expect("valid");
    assert!(c.host_origin(1).origin_allowed(b"http://y.example:2"));
    let e = error("", &[("CORS_ORIGINS", "[not json")]);
    assert!(e.contains("CORS_ORIGINS"), "{e}");
    let e = error("", &[("CORS_ORIGINS", "evil.com")]);
    assert!(e.contains("allowed_origins"), "{e}");
    let e = error("", &[("RATE_LIMIT_PER_MINUTE", "lots")]);
    assert!(e.contains("RATE_LIMIT_PER_MINUTE"), "{e}");
    let cli = Overrides { max_body: Some("1MiB".into()), ..Overrides::default() };
    assert_eq!(load("", &[], &cli).expect("valid").max_body, 1 << 20);
}

#[test]
fn no_authentication_means_loopback_only() {
    let e = error("[server]\nlisten = \"0.0.0.0:8001\"", &[]);
    assert!(
        e.contains("`server.listen`") && e.contains("--allow-unauthenticated-network-access") && e.contains("gen-key"),
        "{e}"
    );
    let allowed = Overrides { allow_unauthenticated_network_access: true, ..Overrides::default() };
    assert!(load("[server]\nlisten = \"0.0.0.0:8001\"", &[], &allowed).is_ok());
    let hash = crate::auth::api_key::hash("mcpg_example");
    let with_key = format!(
        "[server]\nlisten = \"0.0.0.0:8001\"\n[auth]\nresource = \"https://mcp.example.com/mcp\"\n[[auth.api_keys]]\nname = \"ci\"\nhash = \"{hash}\""
    );
    let c = load(&with_key, &[], &Overrides::default()).expect("authenticated: any address");
    assert_eq!(c.auth.expect("auth").describe(), "api keys");
}

#[test]
fn auth_settings_are_validated() {
    let key = crate::auth::api_key::generate().expect("rng");
    let hash = crate::auth::api_key::hash(&key);
    let cases: Vec<(String, &str)> = vec![
        (format!("[[auth.api_keys]]\nname = \"ci\"\nhash = \"{key}\""), "plaintext"),
        ("[[auth.api_keys]]\nname = \"ci\"\nhash = \"sha256:00\"".into(), "`auth.api_keys[0].hash`"),
        (format!("[[auth.api_keys]]\nname = \" \"\nhash = \"{hash}\""), "`auth.api_keys[0].name`"),
        (
            format!("[server]\nlisten = \"0.0.0.0:1\"\n[[auth.api_keys]]\nname = \"ci\"\nhash = \"{hash}\""),
            "`auth.resource`",
        ),
        ("[auth]\nrequired_scopes = [\"mcp:tools\"]".into(), "nothing authenticates"),
        ("[auth.jwt]\nissuer = \"https://as\"\nalgorithms = [\"none\"]".into(), "`auth.jwt.algorithms[0]`"),
        ("[auth.jwt]\nissuer = \"https://as\"\nleeway = \"6m\"".into(), "`auth.jwt.leeway`"),
        ("[auth.jwt]\nissuer = \"https://as\"\nhmac_secret_env = \"NOPE\"".into(), "`auth.jwt.hmac_secret_env`"),
        ("[auth]\nresource = \"mcp.example.com\"\n[auth.jwt]\nissuer = \"https://as\"".into(), "`auth.resource`"),
        (
            "[upstream]\nurl = \"http://127.0.0.1:9/mcp\"\nheaders = { \"Authorization\" = { env = \"UNSET_VAR\" } }"
                .into(),
            "UNSET_VAR",
        ),
        ("[upstream]\ncommand = [\"srv\"]\nheaders = { \"x-k\" = { env = \"HOME\" } }".into(), "`upstream.headers`"),
    ];
    for (text, needle) in cases {
        let e = error(&text, &[("HOME", "/root")]);
        assert!(e.contains(needle), "{text:?} gave {e}");
    }
}

#[test]
fn upstream_credentials_come_from_env_or_file_and_never_print() {
    let file = std::env::temp_dir().join(format!("mcp-guard-secret-{}", std::process::id()));
    std::fs::write(&file, "Bearer from-file\n").expect("write");
    let text = format!(
        "[upstream]\nurl = \"http://127.0.0.1:9/mcp\"\nheaders = {{ \"Authorization\" = {{ env = \"UP\" }}, \"x-key\" = {{ file = {:?} }} }}",
        file.display().to_string()
    );
    let c = load(&text, &[("UP", "Bearer from-env")], &Overrides::default()).expect("valid");
    std::fs::remove_file(&file).ok();
    let UpstreamConfig::Http(http) = &c.upstream else { panic!("http upstream") };
    let values: Vec<(&str, &str)> = http.headers.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
    assert_eq!(values, [("authorization", "Bearer from-env"), ("x-key", "Bearer from-file")]);
    let debug = format!("{c:?}");
    assert!(!debug.contains("from-env") && !debug.contains("from-file"), "secrets in Debug output");
}
