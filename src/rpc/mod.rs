//! JSON-RPC 2.0 over newline-delimited stdio: message types, the pure parser and the framer.
//!
//! Nothing here knows about MCP methods or does I/O; `mcp::server` drives these pieces.

pub mod framing;
pub mod message;
pub mod parse;

pub use framing::{Frame, LineFramer};
pub use message::{ErrorObject, Id, Message, Notification, Request, Response, code};
pub use parse::{ParseFailure, parse};
