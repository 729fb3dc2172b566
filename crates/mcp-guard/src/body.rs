//! The one body type the gateway's pipeline speaks.
//!
//! `axum::body::Body` boxes whatever it wraps once, streams frame by frame,
//! and builds from `Bytes`, which is all the guard layers ask of a body.

/// The request and response body used throughout the gateway.
pub type BoxBody = axum::body::Body;
