//! The `mcp-guard` binary: everything lives in the library and `cli`.

#![cfg_attr(not(test), deny(clippy::panic))]

mod cli;
mod reload;

fn main() -> std::process::ExitCode {
    cli::main()
}
