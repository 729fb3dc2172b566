//! The binary itself: flags, config checking, every shipped example, and
//! a graceful SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use common::{BIN, spawn_and_wait};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).env_clear().output().expect("binary runs")
}

#[test]
fn version_and_help() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("mcp-guard {}", env!("CARGO_PKG_VERSION")));
    let help = String::from_utf8_lossy(&run(&["--help"]).stdout).into_owned();
    for needle in ["--upstream", "--listen", "check-config", "Examples:"] {
        assert!(help.contains(needle), "help lacks {needle}");
    }
}

#[test]
fn every_shipped_example_config_is_valid() {
    let files = examples();
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        // jwt.toml takes the gateway's upstream credential from this variable.
        let out = Command::new(BIN)
            .args(["check-config", file.to_str().expect("utf-8 path")])
            .env_clear()
            .env("UPSTREAM_AUTHORIZATION", "Bearer upstream-secret")
            .env("SESSION_SEALING_KEY", "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=")
            .env("REDIS_URL", "rediss://:secret@127.0.0.1:6380")
            .env("SESSION_SEALING_KEY_OLD", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .output()
            .expect("binary runs");
        assert!(out.status.success(), "{}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
        assert!(!String::from_utf8_lossy(&out.stdout).contains(":secret@"), "no Redis password in the summary");
    }
}

#[test]
fn bad_config_fails_naming_key_and_line() {
    let dir = std::env::temp_dir().join(format!("mcp-guard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cases = [
        ("[server]\nlisten = \"127.0.0.1:1\"\nport = 9\n", &["line 3", "unknown field `port`"][..]),
        ("[upstream]\nurl = \"ftp://x\"\n", &["`upstream.url`", "http://"][..]),
    ];
    for (i, (text, needles)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad{i}.toml"));
        std::fs::write(&file, text).expect("write");
        let path = file.to_str().expect("utf-8");
        for args in [vec!["check-config", path], vec!["--config", path]] {
            let out = run(&args);
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            for needle in *needles {
                assert!(err.contains(needle), "{args:?}: {err}");
            }
        }
    }
    let out = Command::new(BIN).args(["--listen", "nowhere"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`server.listen`"));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn sigterm_stops_the_gateway_cleanly() {
    let (mut child, endpoint, lines) = spawn_and_wait(Command::new(BIN).args(["--listen", "127.0.0.1:0"]));
    assert!(endpoint.starts_with("http://127.0.0.1:") && endpoint.ends_with("/mcp"), "{endpoint}");
    let started = Instant::now();
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let rest: Vec<String> = lines.collect();
    let exit = child.wait().expect("gateway exits");
    assert!(exit.success(), "{exit:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(rest.iter().any(|l| l.contains("shutdown_requested") && l.contains("SIGTERM")), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:?}");
}
