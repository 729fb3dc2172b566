pub mod config;
pub mod body;
pub mod demo;
pub mod session_id;
pub mod sse;
pub mod upstream;
pub mod server;
pub mod telemetry;
