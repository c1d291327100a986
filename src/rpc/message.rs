//! JSON-RPC 2.0 message types as MCP uses them, and their wire serialisation.
//!
//! These are plain values: no I/O, no knowledge of MCP methods. `parse` builds them from bytes,
//! the session answers them, and `to_line` turns any of them back into one newline-terminated line.

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};

/// JSON-RPC 2.0 standard error codes (and the only ones this layer produces).
pub mod code {
    /// The line is not JSON text (invalid JSON, invalid UTF-8, nesting too deep).
    pub const PARSE_ERROR: i64 = -32700;
    /// Valid JSON that is not a valid request (batch, wrong `jsonrpc`, bad id/method type…).
    pub const INVALID_REQUEST: i64 = -32600;
    /// Unknown method, or a method of a capability this server does not declare.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Params that do not fit the method (including an unknown tool or cursor).
    pub const INVALID_PARAMS: i64 = -32602;
    /// Unexpected server failure; the message never carries internals.
    pub const INTERNAL_ERROR: i64 = -32603;
}

/// A request id, kept exactly as the client sent it (string vs integer, full 64-bit range).
///
/// MCP forbids `null`, and fractional numbers are rejected by `parse`, so the three variants
/// cover every id we can answer. Integers that fit `i64` are always `Int`, so equal ids compare
/// equal whatever form the client used.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    /// A string id, echoed byte for byte.
    Str(String),
    /// An integer id in `i64` range (including 0 and negatives).
    Int(i64),
    /// An integer id above `i64::MAX`.
    UInt(u64),
}

impl Id {
    /// Reads an id from a JSON value; `None` for anything MCP does not allow as an id.
    pub fn from_value(value: &Value) -> Option<Id> {
        match value {
            Value::String(s) => Some(Id::Str(s.clone())),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Some(Id::Int(i)),
                (None, Some(u)) => Some(Id::UInt(u)),
                (None, None) => None,
            },
            Value::Null | Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
        }
    }

    /// The id as a JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            Id::Str(s) => Value::String(s.clone()),
            Id::Int(i) => Value::from(*i),
            Id::UInt(u) => Value::from(*u),
        }
    }
}

impl Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Id::Str(s) => serializer.serialize_str(s),
            Id::Int(i) => serializer.serialize_i64(*i),
            Id::UInt(u) => serializer.serialize_u64(*u),
        }
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Id::Str(s) => write!(f, "{s:?}"),
            Id::Int(i) => write!(f, "{i}"),
            Id::UInt(u) => write!(f, "{u}"),
        }
    }
}

/// The `params` member: JSON-RPC allows an object or an array; MCP only ever uses objects,
/// which the method handlers check (an array there is -32602, not a malformed message).
pub type Params = Option<Value>;

/// A request: has an id and expects exactly one response.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The id to echo.
    pub id: Id,
    /// The method name.
    pub method: String,
    /// Optional structured params (object or array).
    pub params: Params,
}

/// A notification: no id, never answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The method name.
    pub method: String,
    /// Optional structured params (object or array).
    pub params: Params,
}

/// A response sent *to* us. A tools-only server sends no requests, so these are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The id it answers.
    pub id: Id,
    /// The result, or the error object.
    pub outcome: Result<Value, ErrorObject>,
}

/// Any well-formed JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Has `id` and `method`.
    Request(Request),
    /// Has `method` and no `id`.
    Notification(Notification),
    /// Has `id` and `result` or `error`.
    Response(Response),
}

/// The `error` member of an error response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorObject {
    /// One of [`code`] (or an MCP-specific code).
    pub code: i64,
    /// A concise, single-sentence description that says what to do.
    pub message: String,
    /// Optional structured detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error without `data`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        ErrorObject {
            code,
            message: message.into(),
            data: None,
        }
    }
}

/// Serialises `{"jsonrpc":"2.0","id":…,"result":…}` plus the newline.
pub fn result_line(id: &Id, result: &Value) -> Vec<u8> {
    Envelope {
        id: Some(id),
        method: None,
        params: None,
        result: Some(result),
        error: None,
    }
    .to_line()
}

/// Serialises an error response plus the newline. `id` is omitted when it could not be read
/// (the MCP schema makes it optional and non-null).
pub fn error_line(id: Option<&Id>, error: &ErrorObject) -> Vec<u8> {
    Envelope {
        id,
        method: None,
        params: None,
        result: None,
        error: Some(error),
    }
    .to_line()
}

impl Message {
    /// The message as one compact, newline-terminated line.
    pub fn to_line(&self) -> Vec<u8> {
        let envelope = match self {
            Message::Request(r) => Envelope {
                id: Some(&r.id),
                method: Some(&r.method),
                params: r.params.as_ref(),
                result: None,
                error: None,
            },
            Message::Notification(n) => Envelope {
                id: None,
                method: Some(&n.method),
                params: n.params.as_ref(),
                result: None,
                error: None,
            },
            Message::Response(r) => Envelope {
                id: Some(&r.id),
                method: None,
                params: None,
                result: r.outcome.as_ref().ok(),
                error: r.outcome.as_ref().err(),
            },
        };
        envelope.to_line()
    }
}

/// Borrowed view used for all serialisation, so there is one place that writes the wire format.
struct Envelope<'a> {
    id: Option<&'a Id>,
    method: Option<&'a str>,
    params: Option<&'a Value>,
    result: Option<&'a Value>,
    error: Option<&'a ErrorObject>,
}

impl Envelope<'_> {
    fn to_line(&self) -> Vec<u8> {
        let mut line = match serde_json::to_vec(self) {
            Ok(bytes) => bytes,
            // Serialising a `Value` cannot fail (string keys only); keep a valid line regardless.
            Err(_) => {
                br#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"internal error"}}"#.to_vec()
            }
        };
        line.push(b'\n');
        line
    }
}

impl Serialize for Envelope<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("jsonrpc", "2.0")?;
        if let Some(id) = self.id {
            map.serialize_entry("id", id)?;
        }
        if let Some(method) = self.method {
            map.serialize_entry("method", method)?;
        }
        if let Some(params) = self.params {
            map.serialize_entry("params", params)?;
        }
        if let Some(result) = self.result {
            map.serialize_entry("result", result)?;
        }
        if let Some(error) = self.error {
            map.serialize_entry("error", error)?;
        }
        map.end()
    }
}

/// Returns `params` as an object: absent params are an empty object; an array is `None`.
pub fn params_object(params: &Params) -> Option<Map<String, Value>> {
    match params {
        None => Some(Map::new()),
        Some(Value::Object(map)) => Some(map.clone()),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_keep_their_type_and_full_64_bit_value() {
        assert_eq!(Id::from_value(&json!("1")), Some(Id::Str("1".into())));
        assert_eq!(Id::from_value(&json!(1)), Some(Id::Int(1)));
        assert_eq!(Id::from_value(&json!(u64::MAX)), Some(Id::UInt(u64::MAX)));
        assert_eq!(Id::from_value(&json!(i64::MIN)), Some(Id::Int(i64::MIN)));
        assert_eq!(Id::from_value(&json!(1.5)), None);
        assert_eq!(Id::from_value(&json!(null)), None);
        assert_eq!(
            result_line(&Id::UInt(u64::MAX), &json!({})),
            b"{\"jsonrpc\":\"2.0\",\"id\":18446744073709551615,\"result\":{}}\n"
        );
    }

    #[test]
    fn error_without_id_omits_the_member() {
        let line = error_line(None, &ErrorObject::new(code::PARSE_ERROR, "bad"));
        assert_eq!(
            line,
            b"{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"bad\"}}\n"
        );
    }
}
