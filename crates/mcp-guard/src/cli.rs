//! Command-line interface: flags, subcommands, signals, exit codes.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use mcp_guard::{
    config::{self, Config, ConfigError, Overrides, UpstreamConfig},
    pin::{self, PinDiff, PinFile},
    probe, server, telemetry,
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
  mcp-guard pin --config mcp-guard.toml             record the upstream's tools in the `[pins] file`
  mcp-guard pin -o pins.json -- my-mcp-server --stdio
                                                    record a stdio server's tools in pins.json
  mcp-guard probe http://127.0.0.1:8001/mcp         audit any MCP endpoint's security
  mcp-guard probe https://mcp.example.com/mcp --token \"$TOKEN\" --format sarif -o probe.sarif
                                                    audit an authenticated server, SARIF for CI

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
    /// PEM certificate chain: serve HTTPS (TLS 1.2/1.3, HTTP/2 and HTTP/1.1
    /// by ALPN). Re-read on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Streamable HTTP MCP server to guard.
    #[arg(long, value_name = "URL", conflicts_with = "stdio_command")]
    upstream: Option<String>,
    /// Reload the config file when its contents change (checked every 2s).
    /// SIGHUP always reloads.
    #[arg(long, requires = "config")]
    watch_config: bool,
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
    /// Ask the upstream for its tools and write the pin file that `[pins] file` loads.
    #[command(after_help = PIN_HELP)]
    Pin(PinArgs),
    /// Audit any MCP Streamable HTTP endpoint against the MCP security requirements.
    #[command(after_help = PROBE_HELP)]
    Probe(ProbeArgs),
}

const PROBE_HELP: &str = "\
Checks: DNS rebinding (Host, Origin), exposure without authentication, auth
challenges and metadata, malformed tokens, MCP-Protocol-Version handling,
body limits, rate limits, security headers, CORS, session ids and DELETE,
malformed input, and TLS. Each finding has a stable id, a severity, the
evidence (request and answer; tokens are never shown) and a fix.

Polite: at most --max-requests requests, --delay between them, --timeout
each; only the URL's origin is contacted (and the metadata it advertises, on
the same host unless --follow-metadata). Redirects are not followed.

Examples:
  mcp-guard probe http://127.0.0.1:8001/mcp
  mcp-guard probe https://mcp.example.com/mcp --token \"$TOKEN\" --second-token \"$OTHER\"
  mcp-guard probe http://127.0.0.1:8001/mcp --format json --fail-on medium -o probe.json

Exit status: 0 no finding reaches --fail-on; 1 one does; 2 the target cannot
be probed (unreachable, or no MCP initialize succeeds with the credentials
given), or a bad option or unwritable output.";

#[derive(Debug, clap::Args)]
struct ProbeArgs {
    /// The MCP endpoint, e.g. http://127.0.0.1:8001/mcp.
    url: String,
    /// Bearer token to send (`Authorization: Bearer <token>`).
    #[arg(long, value_name = "T", env = "MCP_PROBE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A second principal's token: its requests must not reach the first's session.
    #[arg(long, value_name = "T2", env = "MCP_PROBE_SECOND_TOKEN", hide_env_values = true)]
    second_token: Option<String>,
    /// Output format.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json", "sarif"])]
    format: String,
    /// Write the report to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Exit 1 when a finding is this severe or worse.
    #[arg(long, value_name = "LEVEL", default_value = "high", value_parser = ["critical", "high", "medium", "low", "info", "none"])]
    fail_on: String,
    /// Most requests sent in total.
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    max_requests: u64,
    /// Largest body the body-limit check sends.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = probe::parse_size)]
    max_body_probe: u64,
    /// Milliseconds to wait between requests.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    delay: u64,
    /// Seconds allowed for each request.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Fetch the advertised resource metadata even on another host.
    #[arg(long)]
    follow_metadata: bool,
    /// Accept invalid TLS certificates (for self-signed test servers).
    #[arg(long)]
    insecure: bool,
    /// The protocolVersion to ask for in initialize.
    #[arg(long, value_name = "V", default_value = probe::DEFAULT_PROTOCOL_VERSION)]
    protocol_version: String,
}

const PIN_HELP: &str = "\
The upstream is built exactly as the gateway builds it (config file, then
MCP_GUARD_* variables, then these flags) and asked for its tools through an MCP
session: initialize, tools/list (every page), then the session is deleted.
Each tool's name, description, inputSchema and annotations are written with
their hash to --output, else the config's `[pins] file`, else stdout. A file
is replaced atomically; the tools added, removed or changed since the file
it replaces are listed on stderr, for review before committing it.

Exit status: 0 written; 1 bad config, a failed tools/list or an unwritable
file; 2 the upstream cannot be reached or initialized.";

#[derive(Debug, clap::Args)]
struct PinArgs {
    /// TOML config file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where to write the pin file (`-` for stdout) [default: the config's
    /// `[pins] file`, else stdout].
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Streamable HTTP MCP server to pin.
    #[arg(long, value_name = "URL", conflicts_with = "stdio_command")]
    upstream: Option<String>,
    /// Stdio MCP server to pin: program and arguments after `--`, run
    /// directly (never through a shell).
    #[arg(last = true, value_name = "CMD ARG...")]
    stdio_command: Vec<String>,
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => check_config(&file),
        Some(Command::GenKey) => gen_key(),
        Some(Command::HashKey) => hash_key(),
        Some(Command::Pin(args)) => pin(args),
        Some(Command::Probe(args)) => probe(args),
        None => match run(cli.run) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mcp-guard: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    config::load(path, std::env::vars(), overrides)
}

fn check_config(file: &Path) -> ExitCode {
    match load(Some(file), &Overrides::default()) {
        Ok(config) => {
            let upstream = match &config.upstream {
                UpstreamConfig::Stdio(stdio) => format!("stdio {:?}", stdio.argv),
                other => describe(other),
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

fn describe(upstream: &UpstreamConfig) -> String {
    match upstream {
        UpstreamConfig::Demo => "built-in demo".to_owned(),
        UpstreamConfig::Http(http) => format!("http {}", http.url),
        UpstreamConfig::Stdio(stdio) => format!("stdio `{}`", stdio.argv.join(" ")),
    }
}

fn pin(args: PinArgs) -> ExitCode {
    let overrides = Overrides {
        upstream_url: args.upstream,
        command: (!args.stdio_command.is_empty()).then_some(args.stdio_command),
        ..Overrides::default()
    };
    let (config, pins_file) = match load_for_pin(args.config.as_deref(), &overrides) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("mcp-guard: {e}");
            return ExitCode::FAILURE;
        }
    };
    let destination = match args.output {
        Some(path) if path.as_os_str() == "-" => None,
        Some(path) => Some(path),
        None => pins_file,
    };
    // Text on stderr, warnings only unless the config asks for a level.
    let mut log = config.log.clone();
    log.json = false;
    if log.level == "info,rmcp=warn" {
        "warn".clone_into(&mut log.level);
    }
    telemetry::init(&log);
    let source = describe(&config.upstream);
    let tools = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(pin::fetch_from(&config.upstream)),
        Err(e) => {
            eprintln!("mcp-guard: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let file = match tools {
        Ok(tools) => PinFile::from_tools(tools.iter()),
        Err(e) => {
            eprintln!("mcp-guard: pin from {source}: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let text = file.to_json();
    let count = file.tools.len();
    let Some(path) = destination else {
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
            eprintln!("mcp-guard: cannot write to stdout: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!("mcp-guard: pinned {count} tools from {source} to stdout");
        return ExitCode::SUCCESS;
    };
    let previous = std::fs::read_to_string(&path).ok();
    if let Err(e) = pin::write_atomic(&path, &text) {
        eprintln!("mcp-guard: {e}");
        return ExitCode::from(e.exit_code());
    }
    eprintln!("mcp-guard: pinned {count} tools from {source} to {}", path.display());
    if let Some(previous) = previous {
        report_changes(&path, &previous, &file);
    }
    ExitCode::SUCCESS
}

/// What an operator reviews before committing: the changes since the file replaced.
fn report_changes(path: &Path, previous: &str, new: &PinFile) {
    let old = match PinFile::parse(previous) {
        Ok(old) => old,
        Err(e) => {
            eprintln!("mcp-guard: the file replaced was not a valid pin file ({e}); no changes to list");
            return;
        }
    };
    let diff = PinDiff::between(&old, new);
    if diff.is_empty() {
        eprintln!("mcp-guard: no change since the previous {}", path.display());
        return;
    }
    let (added, removed, changed) = (diff.added.len(), diff.removed.len(), diff.changed.len());
    eprintln!("mcp-guard: since the previous {}: {added} added, {removed} removed, {changed} changed", path.display());
    for (what, names) in [("added", &diff.added), ("removed", &diff.removed), ("changed", &diff.changed)] {
        for name in names {
            // Names come from the upstream: escaped, so none can write to the terminal.
            eprintln!("  {what:<8} {}", name.escape_debug());
        }
    }
}

/// The config for `pin` and the `[pins] file` it names. That file is about
/// to be written, so one that is missing or fails its checks does not stop
/// `pin`: the config is then loaded without it.
fn load_for_pin(path: Option<&Path>, overrides: &Overrides) -> Result<(Config, Option<PathBuf>), ConfigError> {
    let error = match load(path, overrides) {
        Ok(config) => {
            let file = config.policy.pin_file.clone();
            return Ok((config, file));
        }
        Err(ConfigError::Invalid { key, message }) if key == "pins.file" => ConfigError::Invalid { key, message },
        Err(e) => return Err(e),
    };
    let name = path.map_or_else(|| "<none>".to_owned(), |p| p.display().to_string());
    let text = match path {
        Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: name.clone(), source })?,
        None => String::new(),
    };
    let parse_error = |message: String| ConfigError::Parse { path: name.clone(), message };
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
    let mut file = table
        .get_mut("pins")
        .and_then(toml::Value::as_table_mut)
        .and_then(|pins| pins.remove("file"))
        .and_then(|v| v.as_str().map(PathBuf::from));
    let is_pins_file =
        |k: &str| k.strip_prefix("MCP_GUARD_").is_some_and(|rest| rest.eq_ignore_ascii_case("PINS__FILE"));
    let (vars, env): (Vec<_>, Vec<_>) = std::env::vars().partition(|(k, _)| is_pins_file(k));
    if let Some((_, value)) = vars.last() {
        // As the loader reads a variable: a TOML value if it parses as one.
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}")).ok();
        file = Some(PathBuf::from(
            parsed.and_then(|t| t.get("v")?.as_str().map(str::to_owned)).unwrap_or_else(|| value.clone()),
        ));
    }
    if file.is_none() {
        return Err(error);
    }
    let text = toml::to_string(&table).map_err(|e| parse_error(e.to_string()))?;
    Ok((config::load_from_str(&text, &name, env, overrides)?, file))
}

fn probe(args: ProbeArgs) -> ExitCode {
    use std::io::IsTerminal as _;

    let (Ok(format), Ok(fail_on)) = (args.format.parse::<probe::Format>(), args.fail_on.parse::<probe::FailOn>())
    else {
        // Unreachable: clap checked both against the same names.
        eprintln!("mcp-guard: bad --format or --fail-on");
        return ExitCode::from(2);
    };
    let mut options = probe::ProbeOptions::new(args.url);
    options.token = args.token.filter(|t| !t.is_empty()).map(mcp_guard::secret::Secret::new);
    options.second_token = args.second_token.filter(|t| !t.is_empty()).map(mcp_guard::secret::Secret::new);
    options.fail_on = fail_on;
    options.max_requests = usize::try_from(args.max_requests).unwrap_or(usize::MAX);
    options.max_body_probe = args.max_body_probe;
    options.delay = std::time::Duration::from_millis(args.delay);
    options.timeout = std::time::Duration::from_secs(args.timeout);
    options.follow_metadata = args.follow_metadata;
    options.insecure = args.insecure;
    options.protocol_version = args.protocol_version;
    let progress = std::io::stderr().is_terminal();
    if progress {
        options.progress = Some(std::sync::Arc::new(|p: probe::Progress| {
            // One line, redrawn in place; cleared when the probe ends.
            eprint!("\r  probing: {:<18} {:>4}/{} requests ", p.stage, p.requests, p.budget);
        }));
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mcp-guard: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(probe::run(options));
    if progress {
        eprint!("\r{:60}\r", "");
    }
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("mcp-guard: probe: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let written = match &args.output {
        Some(path) => std::fs::write(path, report.render(format, false))
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => {
            let stdout = std::io::stdout();
            let colour = probe::colour_wanted(stdout.is_terminal(), std::env::var_os("NO_COLOR").as_deref());
            let mut stdout = stdout.lock();
            stdout
                .write_all(report.render(format, colour).as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| format!("cannot write to stdout: {e}"))
        }
    };
    if let Err(e) = written {
        eprintln!("mcp-guard: {e}");
        return ExitCode::from(2);
    }
    if let Some(path) = &args.output {
        eprintln!("mcp-guard: probe report written to {}: {}", path.display(), report.verdict_line());
    }
    ExitCode::from(report.exit_code())
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        listen: args.listen,
        upstream_url: args.upstream,
        command: (!args.stdio_command.is_empty()).then_some(args.stdio_command),
        max_body: args.max_body,
        allow_unauthenticated_network_access: args.allow_unauthenticated_network_access,
        tls_cert: args.tls_cert.map(|p| p.display().to_string()),
        tls_key: args.tls_key.map(|p| p.display().to_string()),
    };
    let config = load(args.config.as_deref(), &overrides)?;
    let sources = crate::reload::Sources { path: args.config.clone(), overrides };
    telemetry::init(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        // Handlers first: a signal that arrives once we listen must find them.
        let signals = shutdown_signal()?;
        let running = std::sync::Arc::new(server::start(config.clone()).await?);
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        tracing::info!(target: "mcp_guard", endpoint = %format!("{scheme}://{}{}", running.local_addr(), config.path), version = env!("CARGO_PKG_VERSION"), "listening");
        let reloads = crate::reload::spawn(std::sync::Arc::clone(&running), sources, args.watch_config);
        signals.await;
        reloads.abort();
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
