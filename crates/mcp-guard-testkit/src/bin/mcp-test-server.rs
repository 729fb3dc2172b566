//! The test server as a process:
//! - `mcp-test-server stdio`: on stdin/stdout (what the gateway spawns);
//! - `mcp-test-server http 127.0.0.1:9000`: Streamable HTTP at `/mcp`, for
//!   load tests and benchmarks against a real rmcp server out of process
//!   (sessions, SSE responses);
//! - `mcp-test-server http-json 127.0.0.1:9000`: the same tools, stateless,
//!   answering with `application/json` (rmcp's `json_response` needs its
//!   stateless mode): the benchmark upstream (`bench/`).

use rmcp::{ServiceExt, transport::stdio};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["stdio"] | [] => {
            // One line on stderr, which the gateway logs tagged with the session.
            eprintln!("mcp-test-server: ready on stdio");
            let service = mcp_guard_testkit::TestServer::default().serve(stdio()).await?;
            service.waiting().await?;
        }
        ["http", addr] => serve_http(addr, mcp_guard_testkit::router()).await?,
        ["http-json", addr] => serve_http(addr, mcp_guard_testkit::router_stateless_json()).await?,
        _ => anyhow::bail!("usage: mcp-test-server stdio | http ADDR | http-json ADDR"),
    }
    Ok(())
}

async fn serve_http(addr: &str, router: axum::Router) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("mcp-test-server: listening on http://{}/mcp", listener.local_addr()?);
    // Small JSON-RPC frames: without NODELAY, Nagle and delayed ACKs add ~40 ms.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, router).await?;
    Ok(())
}
