//! mcp-secure-server: a hardened Model Context Protocol server for Linux.
//!
//! The binary is a thin `main` around [`Launcher`]; the same launcher lets you build your own
//! server binary with extra in-process [`plugins::Plugin`]s (see `examples/custom_plugin.rs`).
//!
//! Modules, one job each: [`rpc`] (JSON-RPC parsing and framing, pure), [`mcp`] (lifecycle,
//! routing, the stdio session), [`policy`] (loading `policy.yaml`), [`plugins`] (the plugin
//! trait, registry and discovery tools), [`guard`] (argument validation), [`client`] (a small
//! stdio client used by `call`, tests and benchmarks), [`app`] (the command-line modes).

pub mod app;
pub mod bridge;
pub mod check;
pub mod cli;
pub mod client;
pub mod egress;
#[doc(hidden)]
pub mod fuzz;
pub mod guard;
pub mod logging;
pub mod mcp;
pub mod plugins;
pub mod policy;
pub mod rpc;
pub mod sandbox;

pub use app::{ExitStatus, Launcher};
