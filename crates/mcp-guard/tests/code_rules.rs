//! Rules about the code itself, checked on every test run: processes start
//! in one module and only from argv lists (never through a shell), and every
//! credential the config holds prints as `[redacted]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use mcp_guard::config::{Overrides, UpstreamConfig, load_from_str};

/// The one file that may start a process (see `docs/architecture.md`).
const SPAWNER: &str = "upstream/stdio/child.rs";

/// The gateway's production sources: its library and binary, and the layers.
fn sources() -> Vec<(PathBuf, String)> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["mcp-guard/src", "mcp-guard-layers/src"] {
        walk(&crates.join(dir), &mut files);
    }
    files.sort();
    files.into_iter().map(|path| (path.clone(), std::fs::read_to_string(&path).expect("readable source"))).collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The ways safe Rust starts a process that `text` mentions. Whitespace is
/// dropped first so a `use tokio::process::{\n Child,\n Command,\n}` spread
/// over lines is seen too.
fn spawns(text: &str) -> Vec<&'static str> {
    let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut found: Vec<&'static str> =
        ["Command::new(", "process::Command", "tokio::process", "CommandExt", "posix_spawn"]
            .into_iter()
            .filter(|needle| flat.contains(needle))
            .collect();
    let imports_command = flat.match_indices("process::{").any(|(at, _)| {
        let group = &flat[at..];
        group[..group.find('}').unwrap_or(group.len())].contains("Command")
    });
    if imports_command {
        found.push("process::{…Command…}");
    }
    found
}

/// String literals that would hand a command line to a shell.
fn shell_literals(text: &str) -> Vec<&'static str> {
    [
        "\"sh\"",
        "\"/bin/sh\"",
        "\"bash\"",
        "\"/bin/bash\"",
        "\"-c\"",
        "\"sh -c",
        "\"cmd\"",
        "\"cmd.exe\"",
        "\"powershell\"",
    ]
    .into_iter()
    .filter(|needle| text.contains(needle))
    .collect()
}

#[test]
fn the_scanner_sees_every_spelling() {
    assert!(spawns("let c = std::process::Command::new(\"x\");").contains(&"Command::new("));
    assert!(
        !spawns("use tokio::{\n    io::AsyncRead,\n    process::{\n        Child,\n        Command,\n    },\n};")
            .is_empty()
    );
    assert!(!spawns("use std::os::unix::process::CommandExt;").is_empty());
    assert!(spawns("enum Command { Line }\nlet x = process::exit;").is_empty(), "a type named Command is not a spawn");
    assert_eq!(shell_literals("Command::new(\"sh\").arg(\"-c\")"), ["\"sh\"", "\"-c\""]);
    assert!(shell_literals("let argv = [\"node\", \"server.js\"];").is_empty());
}

#[test]
fn processes_are_spawned_only_in_the_stdio_child_module() {
    let files = sources();
    assert!(files.len() > 50, "the walk found the sources: {}", files.len());
    let mut spawners = Vec::new();
    for (path, text) in &files {
        let found = spawns(text);
        if !found.is_empty() {
            spawners.push((path.to_string_lossy().replace('\\', "/"), found));
        }
    }
    let (allowed, others): (Vec<_>, Vec<_>) = spawners.into_iter().partition(|(path, _)| path.ends_with(SPAWNER));
    assert!(others.is_empty(), "processes may only be started in {SPAWNER}; also found in: {others:#?}");
    assert_eq!(allowed.len(), 1, "{SPAWNER} still starts the stdio children (else update this test and the docs)");
}

#[test]
fn no_source_hands_a_command_line_to_a_shell() {
    let found: Vec<_> = sources()
        .into_iter()
        .filter_map(|(path, text)| {
            let literals = shell_literals(&text);
            (!literals.is_empty()).then_some((path, literals))
        })
        .collect();
    assert!(found.is_empty(), "processes start from argv lists, never through a shell: {found:#?}");
}

/// A base64 32-byte key (the format `mcp-guard gen-key` prints).
const SESSION_KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

fn load(text: &str, env: &[(&str, &str)]) -> mcp_guard::config::Config {
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    load_from_str(text, "code_rules.toml", env, &Overrides::default()).expect("valid config")
}

#[test]
fn every_credential_in_the_config_prints_redacted() {
    // Every kind of credential the config takes, each a value no other field holds.
    let http = load(
        r#"
[upstream]
url = "http://127.0.0.1:9/mcp"
headers = { "Authorization" = { env = "UP_TOKEN" } }
[auth]
resource = "https://mcp.example.com/mcp"
[auth.jwt]
issuer = "https://as.example.com"
hmac_secret_env = "JWT_HMAC"
[redis]
url_env = "REDIS_URL"
[[sessions.keys]]
env = "SESSION_KEY"
"#,
        &[
            ("UP_TOKEN", "Bearer upstream-credential-1"),
            ("JWT_HMAC", "hmac-credential-2-0123456789abcdef0123456789abcdef"),
            ("REDIS_URL", "redis://:redis-credential-3@127.0.0.1:6390"),
            ("SESSION_KEY", SESSION_KEY),
        ],
    );
    let stdio = load("[upstream]\ncommand = [\"server\"]\n[stdio]\nenv = { API_TOKEN = \"stdio-credential-4\" }", &[]);
    let UpstreamConfig::Stdio(child) = &stdio.upstream else { panic!("a stdio upstream") };
    assert_eq!(
        child.env.iter().map(|(k, v)| (k.as_str(), v.expose())).collect::<Vec<_>>(),
        [("API_TOKEN", "stdio-credential-4")]
    );

    for config in [&http, &stdio] {
        for shown in [format!("{config:?}"), format!("{config:#?}")] {
            assert!(!shown.contains("credential"), "a credential in Debug output: {shown}");
            assert!(!shown.contains(SESSION_KEY) && !shown.contains("171, 205, 239"), "the session key: {shown}");
        }
    }
    let shown = format!("{http:?}");
    assert!(shown.contains("[redacted]") && shown.contains("SealingKey([redacted])"), "{shown}");
    assert!(format!("{stdio:?}").contains("(\"API_TOKEN\", [redacted])"), "names stay readable: {stdio:?}");
}
