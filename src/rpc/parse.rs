//! The pure parser: one line of bytes in, one [`Message`] or one JSON-RPC error out.
//!
//! No I/O and no MCP knowledge happen here, so the function can be fuzzed directly. It enforces
//! JSON-RPC 2.0 as MCP narrows it: UTF-8, one object per line (no batches), `jsonrpc: "2.0"`,
//! string-or-integer ids, string methods, structured params. serde_json's recursion limit (128)
//! stays on, so 100 000 levels of nesting are a quick parse error rather than a stack overflow.

use serde_json::{Map, Value};

use super::message::{ErrorObject, Id, Message, Notification, Request, Response, code};

/// Why a line was not a message: the error to answer with, and the id when it could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseFailure {
    /// The request id, when the line was an object with a valid id.
    pub id: Option<Id>,
    /// The error to send back.
    pub error: ErrorObject,
    /// The line is recognisably a notification (a string `method`, no `id`). MCP forbids
    /// answering notifications, malformed ones included, so the session drops it silently.
    pub is_notification: bool,
}

impl ParseFailure {
    fn parse_error(message: String) -> Self {
        ParseFailure {
            id: None,
            error: ErrorObject::new(code::PARSE_ERROR, message),
            is_notification: false,
        }
    }

    fn invalid(id: Option<Id>, message: impl Into<String>) -> Self {
        ParseFailure {
            id,
            error: ErrorObject::new(code::INVALID_REQUEST, message),
            is_notification: false,
        }
    }
}

/// Parses one line (without its newline) into a message.
///
/// # Errors
/// -32700 for invalid UTF-8 or invalid JSON (including nesting deeper than 128 levels);
/// -32600 for JSON that is not a single, well-formed JSON-RPC 2.0 object.
pub fn parse(line: &[u8]) -> Result<Message, ParseFailure> {
    let text = std::str::from_utf8(line).map_err(|e| {
        ParseFailure::parse_error(format!(
            "parse error: invalid UTF-8 at byte {}; send UTF-8 encoded JSON",
            e.valid_up_to()
        ))
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ParseFailure::parse_error(format!(
            "parse error: {e}; send one JSON-RPC object per line"
        ))
    })?;
    let object = match value {
        Value::Object(object) => object,
        Value::Array(_) => {
            return Err(ParseFailure::invalid(
                None,
                "invalid request: JSON-RPC batches are not supported; send one object per line",
            ));
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            return Err(ParseFailure::invalid(
                None,
                "invalid request: expected a JSON-RPC object",
            ));
        }
    };
    from_object(object)
}

fn from_object(object: Map<String, Value>) -> Result<Message, ParseFailure> {
    let is_notification =
        !object.contains_key("id") && matches!(object.get("method"), Some(Value::String(_)));
    from_fields(object).map_err(|failure| ParseFailure {
        is_notification,
        ..failure
    })
}

fn from_fields(mut object: Map<String, Value>) -> Result<Message, ParseFailure> {
    let id = match object.remove("id") {
        None => None,
        Some(raw) => match Id::from_value(&raw) {
            Some(id) => Some(id),
            None => {
                return Err(ParseFailure::invalid(
                    None,
                    "invalid request: id must be a string or an integer (not null, bool, \
                     fraction or structure)",
                ));
            }
        },
    };
    match object.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        _ => {
            return Err(ParseFailure::invalid(
                id,
                "invalid request: member \"jsonrpc\" must be exactly \"2.0\"",
            ));
        }
    }
    let method = object.remove("method");
    let params = object.remove("params");
    let result = object.remove("result");
    let error = object.remove("error");

    match method {
        Some(Value::String(method)) => {
            if result.is_some() || error.is_some() {
                return Err(ParseFailure::invalid(
                    id,
                    "invalid request: a message cannot carry both \"method\" and \"result\"/\"error\"",
                ));
            }
            let params = match params {
                None | Some(Value::Object(_)) | Some(Value::Array(_)) => params,
                Some(_) => {
                    return Err(ParseFailure::invalid(
                        id,
                        "invalid request: \"params\" must be an object",
                    ));
                }
            };
            Ok(match id {
                Some(id) => Message::Request(Request { id, method, params }),
                None => Message::Notification(Notification { method, params }),
            })
        }
        Some(_) => Err(ParseFailure::invalid(
            id,
            "invalid request: \"method\" must be a string",
        )),
        None => response(id, params, result, error),
    }
}

fn response(
    id: Option<Id>,
    params: Option<Value>,
    result: Option<Value>,
    error: Option<Value>,
) -> Result<Message, ParseFailure> {
    let missing_method =
        || ParseFailure::invalid(id.clone(), "invalid request: missing \"method\"");
    let Some(response_id) = id.clone() else {
        return Err(missing_method());
    };
    if params.is_some() {
        return Err(missing_method());
    }
    let outcome = match (result, error) {
        (Some(result), None) => Ok(result),
        (None, Some(error)) => Err(error_object(&error).ok_or_else(|| {
            ParseFailure::invalid(
                id.clone(),
                "invalid response: \"error\" must have an integer code and a string message",
            )
        })?),
        (None, None) | (Some(_), Some(_)) => return Err(missing_method()),
    };
    Ok(Message::Response(Response {
        id: response_id,
        outcome,
    }))
}

fn error_object(value: &Value) -> Option<ErrorObject> {
    let object = value.as_object()?;
    Some(ErrorObject {
        code: object.get("code")?.as_i64()?,
        message: object.get("message")?.as_str()?.to_owned(),
        data: object.get("data").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code_of(line: &str) -> (i64, Option<Id>) {
        let failure = parse(line.as_bytes()).expect_err("should fail");
        (failure.error.code, failure.id)
    }

    #[test]
    fn requests_notifications_and_responses() {
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#),
            Ok(Message::Request(Request {
                id: Id::Int(7),
                method: "ping".into(),
                params: None
            }))
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized","params":{}}"#),
            Ok(Message::Notification(Notification {
                method: "notifications/initialized".into(),
                params: Some(json!({}))
            }))
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":"a","result":{"x":1}}"#),
            Ok(Message::Response(Response {
                id: Id::Str("a".into()),
                outcome: Ok(json!({"x":1}))
            }))
        );
    }

    #[test]
    fn syntax_problems_are_parse_errors_without_id() {
        assert_eq!(code_of("{"), (code::PARSE_ERROR, None));
        assert_eq!(code_of("nul"), (code::PARSE_ERROR, None));
        let failure = parse(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}").unwrap_err();
        assert_eq!(failure.error.code, code::PARSE_ERROR);
        assert!(failure.error.message.contains("UTF-8"), "{failure:?}");
    }

    #[test]
    fn deep_nesting_is_a_parse_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        let failure = parse(deep.as_bytes()).unwrap_err();
        assert_eq!(failure.error.code, code::PARSE_ERROR);
        assert!(
            failure.error.message.contains("recursion limit"),
            "{failure:?}"
        );
    }

    #[test]
    fn structural_problems_are_invalid_requests() {
        assert_eq!(code_of("[]"), (code::INVALID_REQUEST, None));
        assert_eq!(
            code_of(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            (code::INVALID_REQUEST, None)
        );
        assert_eq!(code_of("42"), (code::INVALID_REQUEST, None));
        assert_eq!(
            code_of(r#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#),
            (code::INVALID_REQUEST, Some(Id::Int(3)))
        );
        assert_eq!(
            code_of(r#"{"id":3,"method":"ping"}"#),
            (code::INVALID_REQUEST, Some(Id::Int(3)))
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":3,"method":7}"#),
            (code::INVALID_REQUEST, Some(Id::Int(3)))
        );
        for bad_id in ["null", "true", "1.5", "{}", "[]", "1e3"] {
            let line = format!(r#"{{"jsonrpc":"2.0","id":{bad_id},"method":"ping"}}"#);
            assert_eq!(code_of(&line), (code::INVALID_REQUEST, None), "id {bad_id}");
        }
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}"#),
            (code::INVALID_REQUEST, Some(Id::Int(1)))
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":1}"#),
            (code::INVALID_REQUEST, Some(Id::Int(1)))
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0"}"#),
            (code::INVALID_REQUEST, None)
        );
    }

    #[test]
    fn malformed_notifications_are_marked_so_they_are_not_answered() {
        for line in [
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":"x"}"#,
            r#"{"jsonrpc":"1.0","method":"notifications/initialized"}"#,
        ] {
            assert!(
                parse(line.as_bytes()).unwrap_err().is_notification,
                "{line}"
            );
        }
        for line in [
            r#"{"jsonrpc":"2.0","method":5}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":"x"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
        ] {
            assert!(
                !parse(line.as_bytes()).unwrap_err().is_notification,
                "{line}"
            );
        }
    }

    #[test]
    fn serialised_messages_parse_back_to_themselves() {
        let messages = [
            Message::Request(Request {
                id: Id::UInt(u64::MAX),
                method: "tools/call".into(),
                params: Some(json!({"name": "x", "arguments": {"a": [1, "b\n"]}})),
            }),
            Message::Request(Request {
                id: Id::Str("\u{1F600}\"".into()),
                method: "ping".into(),
                params: None,
            }),
            Message::Notification(Notification {
                method: "notifications/cancelled".into(),
                params: Some(json!({"requestId": -1})),
            }),
            Message::Response(Response {
                id: Id::Int(-5),
                outcome: Err(ErrorObject::new(-32000, "boom")),
            }),
        ];
        for message in messages {
            let line = message.to_line();
            assert_eq!(line.last(), Some(&b'\n'));
            assert_eq!(parse(&line[..line.len() - 1]), Ok(message));
        }
    }
}
