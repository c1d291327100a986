//! Plugins: the [`Plugin`] trait every tool provider implements, and the values it exchanges
//! with the server ([`ToolDefinition`], [`ToolResult`], [`CallContext`]).
//!
//! A plugin is one category of tools (`discovery`, `bugtracker`, …). The server validates every
//! call's arguments against the tool's `inputSchema` before `call` runs, enforces the deadline
//! and cancellation around it, and turns a panic into an error answer; a plugin only does its
//! job. See `examples/custom_plugin.rs` for a complete out-of-tree plugin.

pub mod bugtracker;
pub mod discovery;
pub mod external;
pub mod registry;
pub mod web_search;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

pub use registry::{Registry, RegistryError};

/// The marker of this crate's own plugins: public so that it can appear in [`Plugin`], in a
/// private module with a private field so that only this crate can name or make one.
pub(crate) mod sealed {
    /// See [`super::Plugin::built_in`].
    #[derive(Debug)]
    pub struct BuiltIn(pub(super) ());
}

/// The token returned by this crate's own plugins from [`Plugin::built_in`].
fn built_in() -> Option<sealed::BuiltIn> {
    Some(sealed::BuiltIn(()))
}

/// The future a tool call returns. Boxed so that the trait stays object-safe.
pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = ToolResult> + Send + 'a>>;

/// A provider of tools.
pub trait Plugin: Send + Sync + 'static {
    /// The category name shown by `list_categories` (e.g. `bugtracker`).
    fn name(&self) -> &str;
    /// The plugin's version (shown by `list_categories`).
    fn version(&self) -> &str;
    /// The tools this plugin offers. Called once, at start-up.
    fn tools(&self) -> Vec<ToolDefinition>;
    /// `Some` only for this crate's own plugins, whose schemas are constants that the test
    /// suite compiles (`registry::tests::every_built_in_schema_compiles`): their validators are
    /// then built on first use instead of at start-up. No other implementation can return
    /// `Some` (the token cannot be made outside this crate), so any other plugin's schemas are
    /// always compiled at start-up, where a broken one stops the server.
    #[doc(hidden)]
    fn built_in(&self) -> Option<sealed::BuiltIn> {
        None
    }
    /// Runs `tool` with `arguments`, which have already passed the tool's `inputSchema`.
    ///
    /// The future may be dropped at any await point (deadline or cancellation); work that
    /// cannot be interrupted should watch `ctx.cancelled()`.
    fn call<'a>(
        &'a self,
        tool: &'a str,
        arguments: Map<String, Value>,
        ctx: CallContext,
    ) -> ToolFuture<'a>;
}

/// What a tool promises about itself, as MCP `ToolAnnotations`.
///
/// Every hint is explicit: MCP's defaults are the pessimistic values, and a tool that forgets
/// one should not look more dangerous (or safer) than it is by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolAnnotations {
    /// The tool does not modify anything.
    pub read_only: bool,
    /// The tool may destroy or overwrite data (meaningful when not read-only).
    pub destructive: bool,
    /// Repeating a call with the same arguments has no further effect.
    pub idempotent: bool,
    /// The tool talks to the outside world (network).
    pub open_world: bool,
}

impl ToolAnnotations {
    /// A tool that only reads local state: not destructive, idempotent, no network.
    pub const READ_ONLY: ToolAnnotations = ToolAnnotations {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: false,
    };
}

/// A minimal valid tool for unit tests: closed schema, read-only.
#[cfg(test)]
pub(crate) fn test_tool(name: &str, input_schema: Value) -> ToolDefinition {
    ToolDefinition {
        name: name.into(),
        title: None,
        description: "does things".into(),
        input_schema,
        output_schema: None,
        annotations: ToolAnnotations::READ_ONLY,
    }
}

/// One tool, as listed by `tools/list`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    /// Unique name, `[A-Za-z0-9_.-]{1,128}`.
    pub name: String,
    /// Human-readable display name.
    pub title: Option<String>,
    /// What the tool does, written for the model.
    pub description: String,
    /// JSON Schema 2020-12 of the arguments; root `type: object`, `additionalProperties: false`.
    pub input_schema: Value,
    /// JSON Schema of `structuredContent`, when the tool returns structured results.
    pub output_schema: Option<Value>,
    /// Behaviour hints.
    pub annotations: ToolAnnotations,
}

impl ToolDefinition {
    /// The MCP `Tool` object.
    pub fn to_mcp(&self) -> Value {
        let mut tool = json!({
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
            "annotations": {
                "readOnlyHint": self.annotations.read_only,
                "destructiveHint": self.annotations.destructive,
                "idempotentHint": self.annotations.idempotent,
                "openWorldHint": self.annotations.open_world,
            },
        });
        if let Some(title) = &self.title {
            tool["title"] = json!(title);
        }
        if let Some(schema) = &self.output_schema {
            tool["outputSchema"] = schema.clone();
        }
        tool
    }
}

/// One content block of a tool result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Content {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
}

/// The outcome of a tool call (MCP `CallToolResult`).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    /// Content blocks; always at least one text block.
    pub content: Vec<Content>,
    /// Machine-readable result, matching the tool's `outputSchema`.
    pub structured_content: Option<Value>,
    /// The tool failed (bad arguments, denied by policy, business error…).
    pub is_error: bool,
}

impl ToolResult {
    /// A successful text result.
    pub fn text(text: impl Into<String>) -> Self {
        ToolResult {
            content: vec![Content::Text { text: text.into() }],
            structured_content: None,
            is_error: false,
        }
    }

    /// A failed result whose text says what went wrong and what to do.
    pub fn error(text: impl Into<String>) -> Self {
        ToolResult {
            is_error: true,
            ..ToolResult::text(text)
        }
    }

    /// A successful structured result; the same JSON also goes into a text block, as MCP asks
    /// for clients that do not read `structuredContent`.
    pub fn structured(value: Value) -> Self {
        ToolResult {
            content: vec![Content::Text {
                text: value.to_string(),
            }],
            structured_content: Some(value),
            is_error: false,
        }
    }

    /// A successful result with a readable text block and, separately, its structured form.
    pub fn text_and_structured(text: impl Into<String>, structured: Value) -> Self {
        ToolResult {
            structured_content: Some(structured),
            ..ToolResult::text(text)
        }
    }

    /// The MCP `CallToolResult` object.
    pub fn to_mcp(&self) -> Value {
        let mut result = json!({
            "content": self.content,
            "isError": self.is_error,
        });
        if let Some(structured) = &self.structured_content {
            result["structuredContent"] = structured.clone();
        }
        result
    }
}

/// What a running call knows about its limits.
#[derive(Debug, Clone)]
pub struct CallContext {
    deadline: tokio::time::Instant,
    cancel: CancellationToken,
}

impl CallContext {
    /// A context with `timeout` from now, cancelled through `cancel`.
    pub fn new(timeout: Duration, cancel: CancellationToken) -> Self {
        CallContext {
            deadline: tokio::time::Instant::now() + timeout,
            cancel,
        }
    }

    /// When the call will be stopped.
    pub fn deadline(&self) -> tokio::time::Instant {
        self.deadline
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline
            .saturating_duration_since(tokio::time::Instant::now())
    }

    /// Whether the client cancelled the call or the server is shutting down.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the call is cancelled.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }
}
