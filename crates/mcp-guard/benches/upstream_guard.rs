//! The HTTP upstream's checks per answer: `cargo bench -p mcp-guard --bench upstream_guard`.
//!
//! `sse_answer` runs one SSE answer to a `tools/call` through the guard
//! (parse each event once, classify it, match the response to the request,
//! pass the bytes on) next to `sse_baseline`, the same chunks read without
//! it. `result` is one event in one chunk (the usual case, passed on as the
//! same bytes); `progress` three progress notifications, then the result;
//! `split` the result cut in three chunks (its event is written anew);
//! `result_16k` a 16 KiB result. `json_answer` checks a JSON answer.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use bytes::Bytes;
use divan::{Bencher, black_box};
use mcp_guard::{config::UpstreamLimits, upstream::http::bench::GuardBench};

fn main() {
    divan::main();
}

const RESULT: &str =
    r#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"sunny in Lisbon"}],"isError":false}}"#;

fn event(json: &str, id: usize) -> Bytes {
    Bytes::from(format!("data: {json}\nid: 0/{id}\n\n"))
}

fn chunks(case: &str) -> Arc<[Bytes]> {
    chunk_list(case).into()
}

fn chunk_list(case: &str) -> Vec<Bytes> {
    match case {
        "result" => vec![event(RESULT, 0)],
        "progress" => {
            let mut out: Vec<Bytes> = (1..=3)
                .map(|n| {
                    let progress = format!(
                        r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":"p42","progress":{n},"total":3}}}}"#
                    );
                    event(&progress, n)
                })
                .collect();
            out.push(event(RESULT, 4));
            out
        }
        "split" => {
            let whole = event(RESULT, 0);
            let third = whole.len() / 3;
            vec![whole.slice(..third), whole.slice(third..2 * third), whole.slice(2 * third..)]
        }
        "result_16k" => {
            let text = "x".repeat(16 * 1024);
            let json =
                format!(r#"{{"jsonrpc":"2.0","id":42,"result":{{"content":[{{"type":"text","text":"{text}"}}]}}}}"#);
            vec![event(&json, 0)]
        }
        _ => unreachable!(),
    }
}

const CASES: [&str; 4] = ["result", "progress", "split", "result_16k"];

#[divan::bench(args = CASES)]
fn sse_answer(bencher: Bencher, case: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let _context = runtime.enter();
    let guard = GuardBench::new(UpstreamLimits::default());
    let chunks = chunks(case);
    assert!(guard.sse_answer(&["42"], &chunks) > 0);
    bencher.bench_local(|| guard.sse_answer(black_box(&["42"]), black_box(&chunks)));
}

#[divan::bench(args = CASES)]
fn sse_baseline(bencher: Bencher, case: &str) {
    let chunks = chunks(case);
    bencher.bench_local(|| GuardBench::sse_baseline(black_box(&chunks)));
}

#[divan::bench]
fn json_answer(bencher: Bencher) {
    let guard = GuardBench::new(UpstreamLimits::default());
    assert!(guard.json_answer(&["42"], RESULT.as_bytes()));
    bencher.bench_local(|| guard.json_answer(black_box(&["42"]), black_box(RESULT.as_bytes())));
}
