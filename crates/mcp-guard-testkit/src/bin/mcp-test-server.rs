//! `mcp-test-server stdio`: the test server on stdin/stdout.

use rmcp::{ServiceExt, transport::stdio};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // One line on stderr, which the gateway logs tagged with the session.
    eprintln!("mcp-test-server: ready on stdio");
    let service = mcp_guard_testkit::TestServer::default().serve(stdio()).await?;
    service.waiting().await?;
    Ok(())
}
