//! A server binary with one extra in-process plugin, built on the `mcp-secure-server` library.
//!
//! It is the whole recipe: implement [`Plugin`], then hand it to [`Launcher`] from your own
//! `main`. The result has the full command line (`serve`, `check`, `call`), the same policy,
//! validation and limits, and lists the new tools after the built-in ones.
//!
//! ```text
//! cargo run --example custom_plugin -- call word_count '{"text": "hello secure world"}'
//! ```

use std::time::Duration;

use mcp_secure_server::Launcher;
use mcp_secure_server::plugins::{
    CallContext, Plugin, ToolAnnotations, ToolDefinition, ToolFuture, ToolResult,
};
use serde_json::{Map, Value, json};

/// Small tools that show the server's features: computing (`word_count`), guarded paths
/// (`file_info`), guarded commands (`plan_command`), and deadlines and cancellation (`wait`).
struct TextTools;

impl Plugin for TextTools {
    fn name(&self) -> &str {
        "text"
    }

    fn version(&self) -> &str {
        "1.0.0"
    }

    fn tools(&self) -> Vec<ToolDefinition> {
        vec![
            ToolDefinition {
                name: "word_count".into(),
                title: Some("Count words".into()),
                description: "Count the words, lines and characters of a text.".into(),
                // Closed schema: the server refuses any argument not declared here.
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "text": {"type": "string", "maxLength": 1_000_000, "description": "The text to count"}
                    },
                    "required": ["text"],
                    "additionalProperties": false
                }),
                output_schema: Some(json!({
                    "type": "object",
                    "properties": {
                        "words": {"type": "integer"},
                        "lines": {"type": "integer"},
                        "characters": {"type": "integer"}
                    },
                    "required": ["words", "lines", "characters"],
                    "additionalProperties": false
                })),
                annotations: ToolAnnotations::READ_ONLY,
            },
            ToolDefinition {
                name: "file_info".into(),
                title: Some("File information".into()),
                description: "Report the size and kind of a file or directory. The path must be \
                    inside filesystem.allowed_paths."
                    .into(),
                // `format: path` puts the argument under the server's path rules; the tool
                // receives the resolved, checked path.
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "format": "path", "description": "File or directory"}
                    },
                    "required": ["path"],
                    "additionalProperties": false
                }),
                output_schema: None,
                annotations: ToolAnnotations::READ_ONLY,
            },
            ToolDefinition {
                name: "plan_command".into(),
                title: Some("Plan a command".into()),
                description: "Check a command line against the policy's command rules and say \
                    what would run (nothing is executed)."
                    .into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "command": {"type": "string", "format": "command", "maxLength": 4096}
                    },
                    "required": ["command"],
                    "additionalProperties": false
                }),
                output_schema: None,
                annotations: ToolAnnotations::READ_ONLY,
            },
            ToolDefinition {
                name: "wait".into(),
                title: Some("Wait".into()),
                description: "Wait for the given number of milliseconds, then say so. Stops \
                    early when the call is cancelled or reaches its deadline."
                    .into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "milliseconds": {"type": "integer", "minimum": 0, "maximum": 600000}
                    },
                    "required": ["milliseconds"],
                    "additionalProperties": false
                }),
                output_schema: None,
                annotations: ToolAnnotations::READ_ONLY,
            },
        ]
    }

    fn call<'a>(
        &'a self,
        tool: &'a str,
        arguments: Map<String, Value>,
        ctx: CallContext,
    ) -> ToolFuture<'a> {
        Box::pin(async move {
            match tool {
                "word_count" => {
                    // The schema guarantees a string; no need to re-validate here.
                    let text = arguments
                        .get("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    ToolResult::structured(json!({
                        "words": text.split_whitespace().count(),
                        "lines": text.lines().count(),
                        "characters": text.chars().count(),
                    }))
                }
                "file_info" => {
                    let path = arguments
                        .get("path")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    match std::fs::metadata(path) {
                        Ok(meta) => ToolResult::text(format!(
                            "{path}: {} bytes, {}",
                            meta.len(),
                            if meta.is_dir() { "directory" } else { "file" }
                        )),
                        Err(error) => ToolResult::error(format!("{path}: {error}")),
                    }
                }
                "plan_command" => {
                    let command = arguments
                        .get("command")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    ToolResult::text(format!("would run: {command}"))
                }
                "wait" => {
                    let ms = arguments
                        .get("milliseconds")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(ms)) => {
                            ToolResult::text(format!("waited {ms} ms"))
                        }
                        // The server also drops this future on cancellation; watching the
                        // context matters for work that holds resources.
                        () = ctx.cancelled() => ToolResult::error("cancelled"),
                    }
                }
                other => ToolResult::error(format!("text has no tool {other:?}")),
            }
        })
    }
}

fn main() -> std::process::ExitCode {
    Launcher::new().plugin(TextTools).run()
}
