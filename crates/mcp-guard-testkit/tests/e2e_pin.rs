//! `mcp-guard pin` as an operator runs it, against the real test server over
//! stdio and Streamable HTTP: the file it writes, what it reports after a
//! rug pull, and how it fails. The `mcp-guard` binary is the one next to
//! `mcp-test-server`: build it first (`cargo build -p mcp-guard --bins`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use common::{TEST_SERVER, connect};
use mcp_guard::{
    pin::{DefinitionHash, PinDiff, PinFile, fetch_tools},
    upstream::{Upstream, embedded::EmbeddedUpstream},
};
use mcp_guard_testkit::{GET_WEATHER_DESCRIPTION, RUG_PULLED_DESCRIPTION, spawn_http};
use rmcp::model::CallToolRequestParams;

fn bin() -> PathBuf {
    let bin = Path::new(TEST_SERVER).with_file_name(format!("mcp-guard{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing: cargo build -p mcp-guard --bins", bin.display());
    bin
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-guard-e2e-pin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `mcp-guard pin ARGS` with an empty environment.
async fn pin(args: &[&str]) -> Output {
    tokio::process::Command::new(bin()).arg("pin").args(args).env_clear().output().await.expect("mcp-guard runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Parses (and so checks) a written pin file, and checks every pinned
/// definition hashes to its pin.
fn read_pins(path: &Path) -> PinFile {
    let file = PinFile::parse(&std::fs::read_to_string(path).expect("pin file written")).expect("a valid pin file");
    for (name, pin) in &file.tools {
        let definition = pin.definition.as_ref().expect("definitions are recorded");
        assert_eq!(DefinitionHash::of(definition), pin.sha256, "{name}");
        assert_eq!(definition["name"], name.as_str());
    }
    file
}

fn assert_test_server_tools(file: &PinFile, weather: &str) {
    for name in ["echo", "get_weather", "add", "delete_everything", "rug_pull"] {
        assert!(file.tools.contains_key(name), "{name} missing: {:?}", file.tools.keys());
    }
    let definition = file.tools["get_weather"].definition.as_ref().unwrap();
    assert_eq!(definition["description"], weather);
    assert!(definition["inputSchema"]["properties"]["city"].is_object(), "{definition:?}");
}

#[tokio::test]
async fn pins_a_stdio_upstream() {
    let dir = temp_dir("stdio");
    let output = dir.join("pins.json");
    let out = pin(&["--output", output.to_str().unwrap(), "--", TEST_SERVER, "stdio"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let file = read_pins(&output);
    assert_test_server_tools(&file, GET_WEATHER_DESCRIPTION);
    let summary = format!("pinned {} tools from stdio `{TEST_SERVER} stdio` to {}", file.tools.len(), output.display());
    assert!(stderr(&out).contains(&summary), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    // Nothing but the pin file is left in its directory (the temporary file was renamed).
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn pins_an_http_upstream_with_the_same_hashes_as_stdio() {
    let server = spawn_http().await.unwrap();
    let dir = temp_dir("http");
    let (http, stdio) = (dir.join("http.json"), dir.join("stdio.json"));
    let out = pin(&["--upstream", &server.url, "-o", http.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("from http {}", server.url)), "{}", stderr(&out));
    let file = read_pins(&http);
    assert_test_server_tools(&file, GET_WEATHER_DESCRIPTION);
    assert!(server.received().contains(&"tools/list".to_owned()));
    // One server, two transports: the same definitions, the same file.
    let out = pin(&["-o", stdio.to_str().unwrap(), "--", TEST_SERVER, "stdio"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_pins(&stdio), file);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn a_rug_pull_shows_as_a_changed_tool() {
    let server = spawn_http().await.unwrap();
    let dir = temp_dir("rug");
    let pins = dir.join("pins.json");
    // Written to the config's `[pins] file`, which does not exist on the first run.
    let config = dir.join("mcp-guard.toml");
    std::fs::write(&config, format!("[upstream]\nurl = {:?}\n\n[pins]\nfile = {:?}\n", server.url, pins)).unwrap();
    let config = config.to_str().unwrap();
    let out = pin(&["--config", config]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("since the previous"), "{}", stderr(&out));
    let before = read_pins(&pins);
    // Running it again with nothing changed says so.
    let out = pin(&["--config", config]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("no change since the previous"), "{}", stderr(&out));

    let (client, _) = connect(&server.url).await;
    client.call_tool(CallToolRequestParams::new("rug_pull")).await.expect("rug_pull runs");
    client.cancel().await.unwrap();

    let out = pin(&["--config", config]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("0 added, 0 removed, 1 changed"), "{err}");
    assert!(err.lines().any(|l| l.trim() == "changed  get_weather"), "{err}");
    let after = read_pins(&pins);
    assert_test_server_tools(&after, RUG_PULLED_DESCRIPTION);
    assert_ne!(after.tools["get_weather"].sha256, before.tools["get_weather"].sha256);
    let diff = PinDiff::between(&before, &after);
    assert_eq!(
        (diff.added.len(), diff.removed.len(), diff.changed.as_slice()),
        (0, 0, &["get_weather".to_owned()][..])
    );
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn an_unreachable_upstream_exits_2() {
    let dir = temp_dir("unreachable");
    let output = dir.join("pins.json");
    let out = pin(&["--upstream", "http://127.0.0.1:9/mcp", "--output", output.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("http://127.0.0.1:9/mcp") && err.contains("cannot reach or initialize the upstream"), "{err}");
    assert!(err.contains("502"), "{err}");
    assert!(!output.exists());
    // A stdio command that cannot start is the same failure.
    let out = pin(&["--output", output.to_str().unwrap(), "--", "/nonexistent/mcp-server"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!output.exists());
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn the_demo_goes_to_stdout_and_the_library_lists_its_tools() {
    let out = pin(&[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let file = PinFile::parse(std::str::from_utf8(&out.stdout).unwrap()).expect("a pin file on stdout");
    assert_eq!(file.tools.keys().collect::<Vec<_>>(), ["countdown", "echo", "fail"]);
    assert!(stderr(&out).contains("pinned 3 tools from built-in demo to stdout"), "{}", stderr(&out));

    let upstream = EmbeddedUpstream::demo();
    let tools = fetch_tools(&upstream).await.expect("tools listed");
    upstream.shutdown().await;
    assert_eq!(PinFile::from_tools(tools.iter()), file);
}
