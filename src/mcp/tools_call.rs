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

use crate::guard::audit::Outcome;
use crate::guard::{ArgumentError, Guards, commands};
use crate::plugins::registry::{ArgumentFormat, FormattedArgument};
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

/// The outcome of the pipeline: the answer, and what the audit log records about it.
#[derive(Debug)]
pub struct Execution {
    /// The answer to send (a -32603 only when the plugin panicked).
    pub response: Result<ToolResult, ErrorObject>,
    /// How the call ended.
    pub outcome: Outcome,
    /// The rule that refused or stopped it.
    pub rule: Option<String>,
}

impl Execution {
    fn refused(outcome: Outcome, rule: impl Into<String>, message: String) -> Self {
        Execution {
            response: Ok(ToolResult::error(message)),
            outcome,
            rule: Some(rule.into()),
        }
    }
}

/// Runs the pipeline for one prepared call: schema → path rules → command rules → rate limit
/// → the plugin under its deadline. Each refusal says which rule refused and what is allowed.
pub async fn execute(
    registry: Arc<Registry>,
    guards: Arc<Guards>,
    call: ToolCall,
    ctx: CallContext,
) -> Execution {
    let Some(tool) = registry.get(&call.tool) else {
        return Execution::refused(
            Outcome::Denied,
            "tool",
            format!("unknown tool {:?}", call.tool),
        );
    };
    match tool.arguments.check(&call.arguments) {
        Ok(()) => {}
        Err(ArgumentError::Invalid(problems)) => {
            return Execution::refused(
                Outcome::Denied,
                "inputSchema",
                format!(
                    "invalid arguments for {}: {problems}. Call search_tools with detail_level \
                     \"full\" to see the schema.",
                    call.tool
                ),
            );
        }
        // A built-in schema that does not compile (the tests make sure none does): the
        // caller can do nothing about it, so it must not read like a mistake of theirs.
        Err(ArgumentError::BrokenSchema(error)) => {
            tracing::error!(tool = %call.tool, %error, "inputSchema does not compile");
            return Execution::refused(
                Outcome::ToolError,
                "inputSchema",
                format!(
                    "internal error: the server cannot check arguments for {} because the \
                     tool's inputSchema does not compile ({error}); please report this bug",
                    call.tool
                ),
            );
        }
    }
    let mut arguments = match call.arguments {
        Value::Object(arguments) => arguments,
        _ => Map::new(),
    };
    if let Err((rule, message)) = check_formats(&guards, &tool.formatted, &mut arguments) {
        return Execution::refused(Outcome::Denied, rule, message);
    }
    if let Err(limited) = guards.rate.admit(&call.tool) {
        return Execution::refused(
            Outcome::RateLimited,
            limited.rule.clone(),
            format!(
                "rate limit: {} allows {} calls of {} per minute; retry in {:.1} s",
                limited.rule,
                limited.limit,
                call.tool,
                limited.retry_after.as_secs_f64()
            ),
        );
    }
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
        Ok(Ok(result)) => Execution {
            outcome: if result.is_error {
                Outcome::ToolError
            } else {
                Outcome::Ok
            },
            response: Ok(result),
            rule: None,
        },
        Ok(Err(panic)) => {
            tracing::error!(tool = %call.tool, %panic, "tool panicked");
            Execution {
                response: Err(ErrorObject::new(
                    code::INTERNAL_ERROR,
                    format!(
                        "internal error while running {}; the server log has details",
                        call.tool
                    ),
                )),
                outcome: Outcome::ToolError,
                rule: Some("panic".into()),
            }
        }
        Err(_elapsed) => {
            let key = if guards.tools.timeouts.contains_key(&call.tool) {
                format!("tools.timeouts.{}", call.tool)
            } else {
                "tools.timeout".to_owned()
            };
            Execution::refused(
                Outcome::Timeout,
                key.clone(),
                format!(
                    "{} timed out: it did not finish within {:.1} s ({key} in the policy) and was \
                     stopped; retry with a smaller request, or raise {key}",
                    call.tool,
                    timeout.as_secs_f64()
                ),
            )
        }
    }
}

/// Applies the path and command rules to every guarded argument; paths are replaced by their
/// resolved form, so the tool uses exactly what was checked.
fn check_formats(
    guards: &Guards,
    formatted: &[FormattedArgument],
    arguments: &mut Map<String, Value>,
) -> Result<(), (String, String)> {
    for argument in formatted {
        let Some(value) = arguments.get_mut(&argument.name) else {
            continue;
        };
        let values: Vec<&mut Value> = if argument.array {
            value
                .as_array_mut()
                .map(|a| a.iter_mut().collect())
                .unwrap_or_default()
        } else {
            vec![value]
        };
        for value in values {
            let Some(text) = value.as_str() else { continue };
            match argument.format {
                ArgumentFormat::Path => match guards.paths.check(text) {
                    Ok(resolved) => *value = Value::String(resolved),
                    Err(denial) => {
                        return Err((
                            denial.rule,
                            format!("argument {}: {}", argument.name, denial.message),
                        ));
                    }
                },
                ArgumentFormat::Command => {
                    if let Err(denial) = commands::check(text, &guards.blocked_commands) {
                        return Err((
                            denial.rule,
                            format!("argument {}: {}", argument.name, denial.message),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
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

    fn guards() -> Arc<Guards> {
        let policy = crate::policy::parse(
            "tools:\n  rate_limits:\n    hang: 1\n",
            &crate::policy::PolicySource::Embedded,
            &|_| Some("/h".into()),
        )
        .unwrap();
        Arc::new(Guards::new(&policy, None, "/".into(), None))
    }

    fn run_with(tool: &str, arguments: Value, timeout: Duration) -> Execution {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let call = ToolCall {
            tool: tool.into(),
            arguments,
        };
        let ctx = CallContext::new(timeout, CancellationToken::new());
        runtime.block_on(execute(registry(), guards(), call, ctx))
    }

    fn run(tool: &str, timeout: Duration) -> Result<ToolResult, ErrorObject> {
        run_with(tool, json!({}), timeout).response
    }

    #[test]
    fn a_panicking_plugin_becomes_an_internal_error_without_details() {
        let execution = run_with("explode", json!({}), Duration::from_secs(60));
        assert_eq!(execution.outcome, Outcome::ToolError);
        let error = execution.response.unwrap_err();
        assert_eq!(error.code, code::INTERNAL_ERROR);
        assert!(
            !error.message.contains("boom"),
            "panic text stays in the log: {error:?}"
        );
    }

    #[test]
    fn the_deadline_turns_a_hang_into_a_tool_error() {
        let execution = run_with("hang", json!({}), Duration::from_millis(10));
        assert_eq!(execution.outcome, Outcome::Timeout);
        assert_eq!(execution.rule.as_deref(), Some("tools.timeout"));
        let result = execution.response.unwrap();
        assert!(result.is_error);
        assert!(result.to_mcp().to_string().contains("timed out"));
    }

    #[test]
    fn bad_arguments_never_reach_the_plugin() {
        let execution = run_with("explode", json!({"unexpected": 1}), Duration::from_secs(60));
        assert_eq!(execution.outcome, Outcome::Denied);
        assert_eq!(execution.rule.as_deref(), Some("inputSchema"));
        let result = execution.response.unwrap();
        assert!(result.is_error);
        assert!(
            result.to_mcp().to_string().contains("unexpected"),
            "{result:?}"
        );
        let _ = run("explode", Duration::from_secs(1));
    }
}
