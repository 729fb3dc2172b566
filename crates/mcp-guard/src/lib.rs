// Nothing panics on network or upstream input (unwrap and expect are denied
// workspace-wide). Tests may panic.
#![cfg_attr(not(test), deny(clippy::panic))]

pub mod audit;
pub mod auth;
pub mod body;
pub mod config;
pub mod demo;
pub mod pin;
pub mod probe;
pub mod redis;
pub mod secret;
pub mod server;
pub mod session_id;
pub mod session_seal;
pub mod sse;
pub mod telemetry;
pub mod upstream;
