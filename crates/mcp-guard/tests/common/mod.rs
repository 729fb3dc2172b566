//! Starting the real binary in tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_mcp-guard");

/// Spawns `command` (stderr piped) and reads its log until the `listening`
/// line; returns the child, the endpoint URL, and the remaining log lines.
pub fn spawn_and_wait(command: &mut Command) -> (Child, String, impl Iterator<Item = String> + use<>) {
    let mut child =
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("gateway starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines().map_while(Result::ok);
    let endpoint = lines
        .by_ref()
        .find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(&line).ok()?;
            (v["message"] == "listening").then(|| v["endpoint"].as_str().map(str::to_owned)).flatten()
        })
        .expect("a `listening` log line with the endpoint");
    (child, endpoint, lines)
}
