//! The session's lifecycle and method routing, with no I/O.
//!
//! [`Dispatcher`] owns the session state (before/after `initialize`) and decides, for each
//! request, either the immediate answer or that a tool call must be started. Keeping this pure
//! lets every lifecycle rule be tested without pipes; `server` only executes the decisions.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::initialize::negotiate;
use super::modern;
use super::tools_call::{ToolCall, prepare};
use super::tools_list::page;
use crate::plugins::Registry;
use crate::rpc::message::params_object;
use crate::rpc::{ErrorObject, Id, Notification, Request, code};

/// Where the session is in its lifecycle. The first successful era-defining request decides
/// the era for the whole connection: `initialize` → handshake era, `server/discover` or any
/// request stamped with a protocol version in `_meta` → 2026-07-28. Neither era's rules leak into
/// the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing decided yet: `initialize`, `ping` and modern requests are served.
    AwaitingInitialize,
    /// Handshake era: `initialize` was answered; the revision is fixed for the session.
    Ready {
        /// The negotiated revision.
        protocol_version: &'static str,
    },
    /// 2026-07-28: every request carries its version; no handshake.
    Modern,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Answer now with this result or error.
    Reply(Result<Value, ErrorObject>),
    /// Start this tool call (its answer comes later).
    Call(ToolCall, Era),
}

/// Which envelope a tool call's result gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2025-11-25 / 2025-06-18: plain `CallToolResult`.
    Handshake,
    /// 2026-07-28: with `resultType` and the server's identity in `_meta`.
    Modern,
}

/// What a notification asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing (including unknown and malformed notifications, which are never answered).
    None,
    /// Cancel the in-flight request with this id, if there is one.
    Cancel(Id),
}

/// The pure core of a session.
#[derive(Debug)]
pub struct Dispatcher {
    registry: Arc<Registry>,
    tools_json: Vec<Value>,
    page_size: usize,
    phase: Phase,
}

impl Dispatcher {
    /// A new session over `registry`, listing `page_size` tools per page.
    pub fn new(registry: Arc<Registry>, page_size: usize) -> Self {
        // Rendered once: the tool set never changes while the server runs.
        let tools_json = registry
            .tools()
            .iter()
            .map(|t| t.definition.to_mcp())
            .collect();
        Dispatcher {
            registry,
            tools_json,
            page_size,
            phase: Phase::AwaitingInitialize,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Routes one request.
    pub fn request(&mut self, request: &Request) -> Route {
        let method = request.method.as_str();
        if !is_served(method) {
            return Route::Reply(Err(ErrorObject::new(
                code::METHOD_NOT_FOUND,
                format!(
                    "method not found: {}; this server offers initialize, ping, tools/list and \
                     tools/call (2025-11-25), and server/discover, tools/list and tools/call \
                     (2026-07-28)",
                    shorten(method)
                ),
            )));
        }
        let Some(params) = params_object(&request.params) else {
            return Route::Reply(Err(ErrorObject::new(
                code::INVALID_PARAMS,
                "params must be an object",
            )));
        };
        match self.phase {
            Phase::Modern => self.modern(method, &params),
            Phase::AwaitingInitialize
                if method == "server/discover"
                    || (method != "ping"
                        && method != "initialize"
                        && modern::announces_version(&params)) =>
            {
                self.modern(method, &params)
            }
            Phase::AwaitingInitialize | Phase::Ready { .. } => self.handshake(method, &params),
        }
    }

    /// The handshake era (2025-11-25 and 2025-06-18).
    fn handshake(&mut self, method: &str, params: &Map<String, Value>) -> Route {
        match (method, self.phase) {
            ("ping", _) => Route::Reply(Ok(json!({}))),
            ("initialize", Phase::AwaitingInitialize) => match negotiate(params) {
                Ok(negotiated) => {
                    self.phase = Phase::Ready {
                        protocol_version: negotiated.protocol_version,
                    };
                    Route::Reply(Ok(negotiated.result))
                }
                Err(error) => Route::Reply(Err(error)),
            },
            ("initialize", Phase::Ready { protocol_version }) => {
                Route::Reply(Err(ErrorObject::new(
                    code::INVALID_REQUEST,
                    format!(
                        "already initialized (protocol {protocol_version}); the session is unchanged, \
                     start a new server process to initialize again"
                    ),
                )))
            }
            ("server/discover", _) => Route::Reply(Err(ErrorObject::new(
                code::METHOD_NOT_FOUND,
                "method not found: server/discover is not part of the handshake era this session \
                 opened with",
            ))),
            (_, Phase::AwaitingInitialize) => Route::Reply(Err(ErrorObject::new(
                code::INVALID_REQUEST,
                format!(
                    "not initialized: send initialize before {method} (handshake era), or put the \
                     protocol version and client capabilities in params._meta (2026-07-28)"
                ),
            ))),
            ("tools/list", _) => Route::Reply(page(&self.tools_json, self.page_size, params)),
            ("tools/call", _) => match prepare(&self.registry, params) {
                Ok(call) => Route::Call(call, Era::Handshake),
                Err(error) => Route::Reply(Err(error)),
            },
            _ => Route::Reply(Err(ErrorObject::new(
                code::METHOD_NOT_FOUND,
                format!("method not found: {}", shorten(method)),
            ))),
        }
    }

    /// The 2026-07-28 era: stateless requests; the first valid one locks the session modern.
    fn modern(&mut self, method: &str, params: &Map<String, Value>) -> Route {
        if method == "initialize" {
            // The session is already modern: -32022 names our versions, which a dual-era
            // client takes as the cue to stay modern.
            let requested = params
                .get("protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Route::Reply(Err(modern::unsupported(requested)));
        }
        if modern::REMOVED_METHODS.contains(&method) {
            return Route::Reply(Err(ErrorObject::new(
                code::METHOD_NOT_FOUND,
                format!("method not found: {method} is not part of protocol 2026-07-28"),
            )));
        }
        if let Err(error) = modern::check_request(params) {
            return Route::Reply(Err(error));
        }
        self.phase = Phase::Modern;
        match method {
            "server/discover" => Route::Reply(Ok(modern::discover())),
            "tools/list" => Route::Reply(page(&self.tools_json, self.page_size, params).map(
                |mut result| {
                    modern::cacheable(&mut result);
                    modern::decorate(&mut result);
                    result
                },
            )),
            "tools/call" => match prepare(&self.registry, params) {
                Ok(call) => Route::Call(call, Era::Modern),
                Err(error) => Route::Reply(Err(error)),
            },
            _ => Route::Reply(Err(ErrorObject::new(
                code::METHOD_NOT_FOUND,
                format!("method not found: {}", shorten(method)),
            ))),
        }
    }

    /// Interprets one notification. Never produces an answer.
    pub fn notification(&mut self, notification: &Notification) -> Effect {
        match notification.method.as_str() {
            "notifications/cancelled" => notification
                .params
                .as_ref()
                .and_then(|p| p.get("requestId"))
                .and_then(Id::from_value)
                .map_or(Effect::None, Effect::Cancel),
            // `initialized` needs no action: requests are served from the initialize response
            // on, as every SDK client expects.
            _ => Effect::None,
        }
    }
}

/// Methods this server implements in some era. Everything else (`prompts/*`, `resources/*`,
/// `logging/setLevel`, `tasks/*`, …) is -32601 whatever the phase.
fn is_served(method: &str) -> bool {
    matches!(
        method,
        "initialize" | "ping" | "tools/list" | "tools/call" | "server/discover"
    )
}

/// Client-controlled names are echoed at most this long.
fn shorten(method: &str) -> String {
    let mut short: String = method.chars().take(64).collect();
    if short.len() < method.len() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dispatcher() -> Dispatcher {
        Dispatcher::new(Arc::new(Registry::build(vec![]).unwrap()), 100)
    }

    fn request(id: i64, method: &str, params: Value) -> Request {
        Request {
            id: Id::Int(id),
            method: method.into(),
            params: Some(params),
        }
    }

    fn init() -> Request {
        request(
            1,
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}
            }),
        )
    }

    fn error_code(route: Route) -> i64 {
        match route {
            Route::Reply(Err(e)) => e.code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn lifecycle_rules() {
        let mut d = dispatcher();
        assert_eq!(
            d.request(&request(1, "ping", json!({}))),
            Route::Reply(Ok(json!({})))
        );
        assert_eq!(
            error_code(d.request(&request(2, "tools/list", json!({})))),
            code::INVALID_REQUEST
        );
        assert_eq!(
            error_code(d.request(&request(3, "server/discover", json!({})))),
            code::INVALID_PARAMS,
            "a bare probe lacks the modern _meta and decides nothing"
        );
        assert!(matches!(d.request(&init()), Route::Reply(Ok(_))));
        assert_eq!(
            d.phase(),
            Phase::Ready {
                protocol_version: "2025-06-18"
            }
        );
        assert_eq!(error_code(d.request(&init())), code::INVALID_REQUEST);
        assert_eq!(
            d.phase(),
            Phase::Ready {
                protocol_version: "2025-06-18"
            }
        );
        for method in [
            "prompts/list",
            "resources/list",
            "logging/setLevel",
            "tasks/list",
            "server/discover",
        ] {
            assert_eq!(
                error_code(d.request(&request(4, method, json!({})))),
                code::METHOD_NOT_FOUND
            );
        }
    }

    #[test]
    fn failed_initialize_leaves_the_session_uninitialized() {
        let mut d = dispatcher();
        assert_eq!(
            error_code(d.request(&request(1, "initialize", json!({})))),
            code::INVALID_PARAMS
        );
        assert_eq!(d.phase(), Phase::AwaitingInitialize);
        assert_eq!(
            error_code(d.request(&request(1, "initialize", json!([])))),
            code::INVALID_PARAMS
        );
    }

    #[test]
    fn tools_call_checks() {
        let mut d = dispatcher();
        d.request(&init());
        let call = d.request(&request(
            5,
            "tools/call",
            json!({"name": "list_categories", "task": {"ttl": 1}}),
        ));
        assert_eq!(
            call,
            Route::Call(
                ToolCall {
                    tool: "list_categories".into(),
                    arguments: json!({})
                },
                Era::Handshake
            )
        );
        for params in [
            json!({}),
            json!({"name": 3}),
            json!({"name": "nope"}),
            json!({"name": "list_categories", "arguments": [1]}),
        ] {
            assert_eq!(
                error_code(d.request(&request(6, "tools/call", params.clone()))),
                code::INVALID_PARAMS,
                "{params}"
            );
        }
    }

    fn modern_meta() -> Value {
        json!({"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}
        }})
    }

    #[test]
    fn the_first_modern_request_makes_the_session_modern() {
        let mut d = dispatcher();
        let discover = d.request(&request(1, "server/discover", modern_meta()));
        assert!(matches!(discover, Route::Reply(Ok(ref r)) if r["resultType"] == "complete"));
        assert_eq!(d.phase(), Phase::Modern);
        assert_eq!(
            error_code(d.request(&request(2, "ping", json!({})))),
            code::METHOD_NOT_FOUND
        );
        assert_eq!(
            error_code(d.request(&request(
                3,
                "initialize",
                json!({"protocolVersion": "2025-11-25"})
            ))),
            -32022
        );
        assert_eq!(
            error_code(d.request(&request(4, "tools/list", json!({})))),
            code::INVALID_PARAMS
        );
        let mut params = modern_meta();
        params["name"] = json!("list_categories");
        assert!(matches!(
            d.request(&request(5, "tools/call", params)),
            Route::Call(_, Era::Modern)
        ));
    }

    #[test]
    fn handshake_sessions_never_see_modern_rules() {
        let mut d = dispatcher();
        d.request(&init());
        assert_eq!(
            error_code(d.request(&request(2, "server/discover", modern_meta()))),
            code::METHOD_NOT_FOUND
        );
        let list = d.request(&request(3, "tools/list", modern_meta()));
        assert!(
            matches!(list, Route::Reply(Ok(ref r)) if r.get("resultType").is_none() && r.get("ttlMs").is_none())
        );
        assert_eq!(
            d.phase(),
            Phase::Ready {
                protocol_version: "2025-06-18"
            }
        );
    }

    #[test]
    fn an_unsupported_modern_version_does_not_lock_the_era() {
        let mut d = dispatcher();
        let mut params = modern_meta();
        params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
        assert_eq!(
            error_code(d.request(&request(1, "server/discover", params))),
            -32022
        );
        assert_eq!(d.phase(), Phase::AwaitingInitialize);
        assert!(matches!(d.request(&init()), Route::Reply(Ok(_))));
    }

    #[test]
    fn cancellation_notifications() {
        let mut d = dispatcher();
        let cancel = |id: Value| Notification {
            method: "notifications/cancelled".into(),
            params: Some(json!({"requestId": id, "reason": "user"})),
        };
        assert_eq!(
            d.notification(&cancel(json!(7))),
            Effect::Cancel(Id::Int(7))
        );
        assert_eq!(
            d.notification(&cancel(json!("7"))),
            Effect::Cancel(Id::Str("7".into()))
        );
        assert_eq!(d.notification(&cancel(json!(null))), Effect::None);
        assert_eq!(
            d.notification(&Notification {
                method: "x/y".into(),
                params: None
            }),
            Effect::None
        );
    }
}
