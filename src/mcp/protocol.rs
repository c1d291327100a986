//! Protocol constants: the MCP revisions we speak and how the server introduces itself.
//!
//! One source of truth for version strings; everything else refers to these.

/// The newest handshake-era revision, answered to any version we do not support.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

/// Revisions echoed back when a client asks for them. 2025-03-26 and older are not echoed:
/// 2025-03-26 obliges the receiver to accept JSON-RPC batches, which this server refuses.
pub const SUPPORTED_PROTOCOL_VERSIONS: [&str; 2] = ["2025-11-25", "2025-06-18"];

/// `serverInfo.name`.
pub const SERVER_NAME: &str = "mcp-secure-server";

/// `serverInfo.title`.
pub const SERVER_TITLE: &str = "MCP Secure Server";

/// `serverInfo.version`.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `instructions`: what a client may add to the model's system prompt.
pub const INSTRUCTIONS: &str = "Tools run under a security policy: arguments are validated, \
    and calls the policy does not allow are refused with an explanation. Call list_categories \
    to see what is available and search_tools to get the schemas you need.";
