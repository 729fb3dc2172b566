//! The audit layer's cost per `tools/call`: `cargo bench -p mcp-guard --bench audit`.
//!
//! `baseline` is the request answered by a service with no layer;
//! `off` keeps only the per-tool metrics (the default); `file` also queues
//! one JSON line per request for the writer thread; `file_with_arguments`
//! logs and redacts the call's arguments too.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;

use bytes::Bytes;
use divan::Bencher;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mcp_guard::{
    audit::{AuditLayer, AuditOutput, ToolAudit},
    config::AuditConfig,
};
use mcp_guard_layers::jsonrpc::{Limits, inspect};
use tower::{Layer, Service, ServiceExt, service_fn};

const CALL: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Lisbon","units":"metric","api_token":"t"}}}"#;

fn main() {
    divan::main();
}

fn request() -> Request<Full<Bytes>> {
    let mut req = Request::post("/mcp")
        .header("mcp-session-id", "3f0c1b5e9a7d4c2e8b6a1f0d3c5e7a9b3f0c1b5e9a7d4c2e8b6a1f0d3c5e7a9b")
        .body(Full::new(Bytes::from_static(CALL.as_bytes())))
        .unwrap();
    let mut inspection = inspect(CALL.as_bytes(), Limits::default()).unwrap();
    inspection.body = Bytes::from_static(CALL.as_bytes());
    req.extensions_mut().insert(inspection);
    req
}

async fn answer(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(br#"{"jsonrpc":"2.0","id":42,"result":{}}"#))))
}

fn run<S, B>(bencher: Bencher, svc: S)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    bencher.bench_local(|| {
        rt.block_on(async {
            let res = svc.clone().oneshot(request()).await.unwrap();
            res.into_body().collect().await.unwrap().to_bytes()
        })
    });
}

fn file_config(arguments: bool) -> AuditConfig {
    let path = std::env::temp_dir().join(format!("mcp-guard-bench-audit-{}.jsonl", std::process::id()));
    let mut config = AuditConfig { output: AuditOutput::File(path), ..AuditConfig::default() };
    config.default_tool = ToolAudit { arguments, results: false };
    config
}

#[divan::bench]
fn baseline(bencher: Bencher) {
    run(bencher, service_fn(answer));
}

#[divan::bench]
fn off(bencher: Bencher) {
    run(bencher, AuditLayer::new(&AuditConfig::default(), None).unwrap().layer(service_fn(answer)));
}

#[divan::bench]
fn file(bencher: Bencher) {
    let layer = AuditLayer::new(&file_config(false), None).unwrap();
    run(bencher, layer.layer(service_fn(answer)));
    if let AuditOutput::File(path) = file_config(false).output {
        let _ = std::fs::remove_file(path);
    }
}

#[divan::bench]
fn file_with_arguments(bencher: Bencher) {
    let layer = AuditLayer::new(&file_config(true), None).unwrap();
    run(bencher, layer.layer(service_fn(answer)));
    if let AuditOutput::File(path) = file_config(true).output {
        let _ = std::fs::remove_file(path);
    }
}
