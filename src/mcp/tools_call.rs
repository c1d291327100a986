//! `tools/call`: params checks (protocol errors) and the call pipeline (tool results).
//!
//! [`prepare`] runs on the reader and turns a request into a [`ToolCall`] or a -32602. The
//! pipeline in [`execute`] runs in the call's own task: argument validation, then the plugin
//! under the deadline. Denials and failures are `isError` results the model can act on; only a
//! panicking plugin becomes a JSON-RPC error (-32603), and its details go to the log only.

use std::sync::Arc;

use std::panic::AssertUnwindSafe;
use std::task::Poll;

use serde_json::{Map, Value};

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
    let mut running = plugin.call(&call.tool, arguments, ctx);
    // Polled in place (no extra task, no thread hop); a panic inside the plugin is caught at
    // each poll and reported, and dropping this future (cancellation, deadline) drops the
    // plugin's future with it.
    let guarded = std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| running.as_mut().poll(cx))) {
            Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    });
    match tokio::time::timeout_at(deadline, guarded).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(panic)) => {
            tracing::error!(tool = %call.tool, %panic, "tool panicked");
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

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::{Plugin, ToolDefinition, ToolFuture};
    use serde_json::json;
    use std::time::Duration;
    use tokio_util::sync::CancellationToken;

    /// A plugin whose tools misbehave on purpose.
    struct Faulty;

    impl Plugin for Faulty {
        fn name(&self) -> &str {
            "faulty"
        }
        fn version(&self) -> &str {
            "0"
        }
        fn tools(&self) -> Vec<ToolDefinition> {
            ["explode", "hang"]
                .into_iter()
                .map(|name| {
                    crate::plugins::test_tool(
                        name,
                        json!({"type": "object", "additionalProperties": false}),
                    )
                })
                .collect()
        }
        fn call<'a>(
            &'a self,
            tool: &'a str,
            _: Map<String, Value>,
            _: CallContext,
        ) -> ToolFuture<'a> {
            Box::pin(async move {
                if tool == "explode" {
                    tokio::task::yield_now().await;
                    panic!("boom");
                }
                std::future::pending::<ToolResult>().await
            })
        }
    }

    fn registry() -> Arc<Registry> {
        Arc::new(Registry::build(vec![Arc::new(Faulty)]).unwrap())
    }

    fn run(tool: &str, timeout: Duration) -> Result<ToolResult, ErrorObject> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let call = ToolCall {
            tool: tool.into(),
            arguments: json!({}),
        };
        runtime.block_on(execute(
            registry(),
            call,
            CallContext::new(timeout, CancellationToken::new()),
        ))
    }

    #[test]
    fn a_panicking_plugin_becomes_an_internal_error_without_details() {
        let error = run("explode", Duration::from_secs(60)).unwrap_err();
        assert_eq!(error.code, code::INTERNAL_ERROR);
        assert!(
            !error.message.contains("boom"),
            "panic text stays in the log: {error:?}"
        );
    }

    #[test]
    fn the_deadline_turns_a_hang_into_a_tool_error() {
        let result = run("hang", Duration::from_millis(10)).unwrap();
        assert!(result.is_error);
    }

    #[test]
    fn bad_arguments_never_reach_the_plugin() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let call = ToolCall {
            tool: "explode".into(),
            arguments: json!({"unexpected": 1}),
        };
        let result = runtime
            .block_on(execute(
                registry(),
                call,
                CallContext::new(Duration::from_secs(60), CancellationToken::new()),
            ))
            .unwrap();
        assert!(result.is_error);
        assert!(
            result.to_mcp().to_string().contains("unexpected"),
            "{:?}",
            result
        );
    }
}
