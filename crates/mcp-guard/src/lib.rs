pub mod body;
pub mod config;
pub mod demo;
pub mod server;
pub mod session_id;
pub mod sse;
pub mod telemetry;
pub mod upstream;
