//! The built-in demo MCP server, built with rmcp (the official Rust SDK).
//!
//! It is what `mcp-guard` with no upstream serves, so a new user can point
//! any MCP client at the gateway and see every kind of answer: a plain text
//! result (`echo`), progress notifications before a result (`countdown`),
//! and a tool error result (`fail`).

use std::time::Duration;

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{
        CallToolResult, ContentBlock, Implementation, ProgressNotificationParam, ServerCapabilities, ServerConfig,
    },
    schemars::{self, JsonSchema},
    service::RequestContext,
    tool, tool_handler, tool_router,
};
use serde::Deserialize;

/// Arguments of `echo`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EchoArgs {
    /// The text to send back.
    pub text: String,
}

/// Arguments of `countdown`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CountdownArgs {
    /// How many progress steps to report (1 to 20).
    pub steps: u32,
    /// Milliseconds between steps (at most 1000).
    #[serde(default = "default_step_ms")]
    pub step_ms: u64,
}

fn default_step_ms() -> u64 {
    100
}

/// Arguments of `fail`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct FailArgs {
    /// The error message the tool reports.
    pub message: String,
}

/// The demo server.
#[derive(Clone, Debug)]
pub struct DemoServer {
    tool_router: ToolRouter<DemoServer>,
}

impl Default for DemoServer {
    fn default() -> Self {
        DemoServer { tool_router: Self::tool_router() }
    }
}

#[tool_router]
impl DemoServer {
    #[tool(description = "Returns the given text unchanged.")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text(args.text)]))
    }

    #[tool(description = "Counts down, sending a progress notification per step when the caller asked for progress.")]
    async fn countdown(
        &self,
        Parameters(args): Parameters<CountdownArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if !(1..=20).contains(&args.steps) || args.step_ms > 1000 {
            return Err(ErrorData::invalid_params("steps must be 1..=20 and step_ms at most 1000", None));
        }
        let token = ctx.meta.get_progress_token();
        for step in 1..=args.steps {
            tokio::time::sleep(Duration::from_millis(args.step_ms)).await;
            if let Some(token) = &token {
                let param = ProgressNotificationParam::new(token.clone(), f64::from(step))
                    .with_total(f64::from(args.steps))
                    .with_message(format!("{} to go", args.steps - step));
                ctx.peer
                    .notify_progress(param)
                    .await
                    .map_err(|e| ErrorData::internal_error(format!("progress notification failed: {e}"), None))?;
            }
        }
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("counted down {} steps", args.steps))]))
    }

    #[tool(description = "Always fails: returns a tool error result with the given message.")]
    async fn fail(&self, Parameters(args): Parameters<FailArgs>) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::error(vec![ContentBlock::text(args.message)]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcp-guard-demo", env!("CARGO_PKG_VERSION")))
            .with_instructions("The mcp-guard demo server. Tools: echo, countdown (progress), fail (error result).")
    }
}
