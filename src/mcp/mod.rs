//! MCP over stdio, dual-era (2025-11-25 handshake and 2026-07-28 stateless): lifecycle,
//! method routing and the session loop.
//!
//! `dispatch` decides (pure), `server` does the I/O; one file per method handler.

pub mod dispatch;
pub mod initialize;
pub mod modern;
pub mod protocol;
pub mod server;
pub mod stdio;
pub mod tools_call;
pub mod tools_list;

pub use server::{Ending, SessionSettings, serve};
