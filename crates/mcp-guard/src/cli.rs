//! Command-line interface: flags, subcommands, signals, exit codes.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use mcp_guard::{
    config::{self, Config, Overrides, UpstreamConfig},
    server, telemetry,
};

const EXAMPLES: &str = "\
Examples:
  mcp-guard                                         serve the built-in demo MCP server
  mcp-guard --upstream http://127.0.0.1:9000/mcp    guard a Streamable HTTP MCP server
  mcp-guard -- npx -y @modelcontextprotocol/server-everything stdio
                                                    guard a stdio MCP server (one child per session)
  mcp-guard --config mcp-guard.toml                 run from a config file
  mcp-guard check-config mcp-guard.toml             validate a config file and exit
  mcp-guard gen-key                                 make an API key and its hash

Clients connect to http://127.0.0.1:8001/mcp unless --listen says otherwise.
Environment variables MCP_GUARD_<SECTION>__<KEY> override the config file;
flags override both.";

/// A security gateway for Model Context Protocol servers.
#[derive(Debug, Parser)]
#[command(name = "mcp-guard", version, about, after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// TOML config file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8001].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Serve a non-loopback address with no authentication configured.
    /// Anyone who can reach the address can use the MCP server.
    #[arg(long)]
    allow_unauthenticated_network_access: bool,
    /// Largest request body, e.g. `1MiB` [default: 4MiB].
    #[arg(long, value_name = "SIZE")]
    max_body: Option<String>,
    /// Streamable HTTP MCP server to guard.
    #[arg(long, value_name = "URL", conflicts_with = "stdio_command")]
    upstream: Option<String>,
    /// Stdio MCP server to guard: program and arguments after `--`, run
    /// directly (never through a shell).
    #[arg(last = true, value_name = "CMD ARG...")]
    stdio_command: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a config file (with the environment's overrides) and exit.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
    /// Print a new random API key and the hash to put in the config.
    GenKey,
    /// Read an API key from stdin and print the hash to put in the config.
    HashKey,
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => check_config(&file),
        Some(Command::GenKey) => gen_key(),
        Some(Command::HashKey) => hash_key(),
        None => match run(cli.run) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mcp-guard: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn load(path: Option<&std::path::Path>, overrides: &Overrides) -> Result<Config, config::ConfigError> {
    config::load(path, std::env::vars(), overrides)
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match load(Some(file), &Overrides::default()) {
        Ok(config) => {
            let upstream = match &config.upstream {
                UpstreamConfig::Demo => "built-in demo".to_owned(),
                UpstreamConfig::Http(http) => format!("http {}", http.url),
                UpstreamConfig::Stdio(stdio) => format!("stdio {:?}", stdio.argv),
            };
            #[allow(clippy::print_stdout)]
            {
                let auth = config.auth.as_ref().map_or_else(|| "none (loopback only)".to_owned(), |a| a.describe());
                println!(
                    "{}: ok (listen {}{}, upstream {upstream}, auth {auth})",
                    file.display(),
                    config.listen,
                    config.path
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp-guard: {e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
fn gen_key() -> ExitCode {
    match mcp_guard::auth::api_key::generate() {
        Ok(key) => {
            println!("key:  {key}");
            println!("hash: {}", mcp_guard::auth::api_key::hash(&key));
            println!();
            println!("Give the key to the client (Authorization: Bearer <key>); put only the hash in the config:");
            println!(
                "  [[auth.api_keys]]\n  name = \"my-client\"\n  hash = \"{}\"",
                mcp_guard::auth::api_key::hash(&key)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp-guard: {e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
fn hash_key() -> ExitCode {
    let mut key = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut key) {
        eprintln!("mcp-guard: cannot read the key from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let key = key.trim_end_matches(['\n', '\r']);
    if key.is_empty() {
        eprintln!("mcp-guard: no key on stdin (e.g. `printf %s \"$KEY\" | mcp-guard hash-key`)");
        return ExitCode::FAILURE;
    }
    println!("{}", mcp_guard::auth::api_key::hash(key));
    ExitCode::SUCCESS
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        listen: args.listen,
        upstream_url: args.upstream,
        command: (!args.stdio_command.is_empty()).then_some(args.stdio_command),
        max_body: args.max_body,
        allow_unauthenticated_network_access: args.allow_unauthenticated_network_access,
    };
    let config = load(args.config.as_deref(), &overrides)?;
    telemetry::init(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        // Handlers first: a signal that arrives once we listen must find them.
        let signals = shutdown_signal()?;
        let running = server::start(config.clone()).await?;
        tracing::info!(target: "mcp_guard", endpoint = %format!("http://{}{}", running.local_addr(), config.path), version = env!("CARGO_PKG_VERSION"), "listening");
        signals.await;
        running.shutdown().await;
        Ok(())
    })
}

/// Installs the SIGINT and SIGTERM handlers now; the future resolves on either.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(target: "mcp_guard", signal = name, "shutdown_requested");
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
