//! `tools/call`: params checks (protocol errors) and the call pipeline (tool results).
//!
//! [`prepare`] runs on the reader and turns a request into a [`ToolCall`] or a -32602. The
//! pipeline in [`execute`] runs in the call's own task: argument validation, then the plugin
//! under the deadline. Denials and failures are `isError` results the model can act on; only a
//! panicking plugin becomes a JSON-RPC error (-32603), and its details go to the log only.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::task::JoinHandle;

use crate::plugins::{CallContext, Registry, ToolResult};
use crate::rpc::{ErrorObject, code};

/// A call that passed the protocol checks.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The tool, known to exist in the registry.
    pub tool: String,
    /// The arguments object (empty when omitted).
    pub arguments: Value,
}

/// Checks the `CallToolRequest` shape. A `task` member is ignored: we do not declare the
/// tasks capability, so the spec says to process the request normally.
///
/// # Errors
/// -32602 for a missing or non-string `name`, non-object `arguments`, or an unknown tool.
pub fn prepare(registry: &Registry, params: &Map<String, Value>) -> Result<ToolCall, ErrorObject> {
    let name = match params.get("name") {
        Some(Value::String(name)) => name,
        Some(_) => return Err(invalid("params.name must be a string (the tool name)")),
        None => return Err(invalid("params.name is required (the tool name)")),
    };
    let arguments = match params.get("arguments") {
        None => Value::Object(Map::new()),
        Some(Value::Object(arguments)) => Value::Object(arguments.clone()),
        Some(_) => return Err(invalid("params.arguments must be an object")),
    };
    if registry.get(name).is_none() {
        return Err(invalid(&format!(
            "Unknown tool: {}; call tools/list or search_tools to see the available tools",
            truncate(name, 128)
        )));
    }
    Ok(ToolCall {
        tool: name.clone(),
        arguments,
    })
}

fn invalid(message: &str) -> ErrorObject {
    ErrorObject::new(code::INVALID_PARAMS, message)
}

/// Keeps client-controlled text in messages and logs short.
fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Runs the pipeline for one prepared call.
///
/// # Errors
/// -32603 when the plugin panicked; everything else is a [`ToolResult`].
pub async fn execute(
    registry: Arc<Registry>,
    call: ToolCall,
    ctx: CallContext,
) -> Result<ToolResult, ErrorObject> {
    let Some(tool) = registry.get(&call.tool) else {
        return Ok(ToolResult::error(format!("unknown tool {:?}", call.tool)));
    };
    if let Err(problems) = tool.arguments.check(&call.arguments) {
        return Ok(ToolResult::error(format!(
            "invalid arguments for {}: {problems}. Call search_tools with detail_level \"full\" \
             to see the schema.",
            call.tool
        )));
    }
    let arguments = match call.arguments {
        Value::Object(arguments) => arguments,
        _ => Map::new(),
    };
    let timeout = ctx.remaining();
    let deadline = ctx.deadline();
    let plugin = Arc::clone(&tool.plugin);
    let name = call.tool.clone();
    // The plugin runs in its own task so that a panic is contained and reported, and the
    // guard aborts it when this future is dropped (cancellation) or the deadline passes.
    let mut task = AbortOnDrop(tokio::spawn(async move {
        plugin.call(&name, arguments, ctx).await
    }));
    match tokio::time::timeout_at(deadline, task.join()).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(join_error)) => {
            tracing::error!(tool = %call.tool, error = %join_error, "tool task failed");
            Err(ErrorObject::new(
                code::INTERNAL_ERROR,
                format!(
                    "internal error while running {}; the server log has details",
                    call.tool
                ),
            ))
        }
        Err(_elapsed) => Ok(ToolResult::error(format!(
            "{} did not finish within {:.1} s (tools.timeout in the policy) and was stopped; \
             retry with a smaller request, or raise tools.timeout",
            call.tool,
            timeout.as_secs_f64()
        ))),
    }
}

/// Aborts the task when dropped, so a cancelled or timed-out call stops running.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(&mut self) -> Result<T, tokio::task::JoinError> {
        // `&mut JoinHandle` is itself a future; awaiting it keeps ownership here, so the
        // `Drop` below still runs when the caller gives up.
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
