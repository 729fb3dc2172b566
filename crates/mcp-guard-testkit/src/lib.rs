//! Real MCP peers for mcp-guard's tests: an rmcp server that speaks stdio
//! (`mcp-test-server stdio`) or Streamable HTTP (in-process, [`spawn_http`]).
//! Nothing here is compiled into the gateway.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rmcp::{
    ErrorData, RoleServer, ServerHandler, elicit_safe,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{
        CallToolResult, ContentBlock, Implementation, ProgressNotificationParam, ServerCapabilities, ServerConfig,
    },
    schemars::{self, JsonSchema},
    service::RequestContext,
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Arguments of `echo`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EchoArgs {
    /// Text to return.
    pub text: String,
}

/// Arguments of `progress`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ProgressArgs {
    /// Progress notifications to send before the result.
    pub steps: u32,
    /// Delay between steps, in milliseconds.
    pub delay_ms: u64,
}

/// Arguments of `sleep`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SleepArgs {
    /// How long to sleep before answering, in milliseconds.
    pub ms: u64,
}

/// What `ask_name` elicits from the client.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Name {
    /// The user's name.
    pub name: String,
}
elicit_safe!(Name);

/// The test server.
#[derive(Clone, Debug)]
pub struct TestServer {
    tool_router: ToolRouter<TestServer>,
}

impl Default for TestServer {
    fn default() -> Self {
        TestServer { tool_router: Self::tool_router() }
    }
}

#[tool_router]
impl TestServer {
    #[tool(description = "Returns the text.")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text(args.text)]))
    }

    #[tool(description = "Sends `steps` progress notifications, then a result.")]
    async fn progress(
        &self,
        Parameters(args): Parameters<ProgressArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let token =
            ctx.meta.get_progress_token().ok_or_else(|| ErrorData::invalid_params("send a progressToken", None))?;
        for step in 1..=args.steps {
            tokio::time::sleep(Duration::from_millis(args.delay_ms)).await;
            let param =
                ProgressNotificationParam::new(token.clone(), f64::from(step)).with_total(f64::from(args.steps));
            ctx.peer.notify_progress(param).await.map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        }
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("done after {} steps", args.steps))]))
    }

    #[tool(description = "Asks the client for a name (elicitation), then greets it.")]
    async fn ask_name(&self, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let answer = ctx
            .peer
            .elicit::<Name>("What is your name?")
            .await
            .map_err(|e| ErrorData::internal_error(format!("elicitation failed: {e}"), None))?;
        let name = answer.map_or_else(|| "nobody".to_owned(), |n| n.name);
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("hello {name}"))]))
    }

    #[tool(description = "Sleeps, then answers.")]
    async fn sleep(&self, Parameters(args): Parameters<SleepArgs>) -> Result<CallToolResult, ErrorData> {
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        Ok(CallToolResult::success(vec![ContentBlock::text("awake")]))
    }

    #[tool(description = "Exits the server process with status 3 without answering (stdio only).")]
    async fn crash(&self) -> Result<CallToolResult, ErrorData> {
        std::process::exit(3);
    }

    #[tool(description = "Reports this process's id and the names of its environment variables.")]
    async fn whoami(&self) -> Result<CallToolResult, ErrorData> {
        let mut names: Vec<String> = std::env::vars_os().map(|(k, _)| k.to_string_lossy().into_owned()).collect();
        names.sort();
        let report = serde_json::json!({ "pid": std::process::id(), "env": names });
        Ok(CallToolResult::success(vec![ContentBlock::text(report.to_string())]))
    }

    #[tool(description = "Lists the HTTP request headers this call arrived with (HTTP only).")]
    async fn headers(&self, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let names: Vec<String> = ctx
            .extensions
            .get::<http::request::Parts>()
            .map(|parts| parts.headers.iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?"))).collect())
            .unwrap_or_default();
        Ok(CallToolResult::success(vec![ContentBlock::text(names.join("\n"))]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcp-guard-test-server", env!("CARGO_PKG_VERSION")))
    }
}

/// A running in-process Streamable HTTP test server.
#[derive(Debug)]
pub struct HttpServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its MCP endpoint URL.
    pub url: String,
    stop: CancellationToken,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// [`TestServer`] over Streamable HTTP at `/mcp`.
pub fn router() -> axum::Router {
    router_with(CancellationToken::new())
}

fn router_with(stop: CancellationToken) -> axum::Router {
    let service = StreamableHttpService::new(
        || Ok(TestServer::default()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_cancellation_token(stop),
    );
    axum::Router::new().nest_service("/mcp", service)
}

/// Serves [`TestServer`] over Streamable HTTP on a free loopback port.
pub async fn spawn_http() -> std::io::Result<HttpServer> {
    let stop = CancellationToken::new();
    let router = router_with(stop.child_token());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let token = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).with_graceful_shutdown(token.cancelled_owned()).await;
    });
    Ok(HttpServer { addr, url: format!("http://{addr}/mcp"), stop })
}
