//! `initialize`: params validation and protocol version negotiation.

use serde_json::{Map, Value, json};

use super::protocol::{
    INSTRUCTIONS, LATEST_PROTOCOL_VERSION, SERVER_NAME, SERVER_TITLE, SERVER_VERSION,
    SUPPORTED_PROTOCOL_VERSIONS,
};
use crate::rpc::{ErrorObject, code};

/// The negotiated revision and the `InitializeResult` to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Negotiated {
    /// The revision this session speaks.
    pub protocol_version: &'static str,
    /// The result object.
    pub result: Value,
}

/// Validates `initialize` params and picks the revision: the client's when we support it,
/// otherwise our latest (the spec says to answer with a version, not an error).
///
/// # Errors
/// -32602 naming the missing or ill-typed member.
pub fn negotiate(params: &Map<String, Value>) -> Result<Negotiated, ErrorObject> {
    let requested = match params.get("protocolVersion") {
        Some(Value::String(v)) => v.as_str(),
        _ => {
            return Err(bad(
                "params.protocolVersion must be a string such as \"2025-11-25\"",
            ));
        }
    };
    if !params.get("capabilities").is_some_and(Value::is_object) {
        return Err(bad(
            "params.capabilities must be an object (it may be empty: {})",
        ));
    }
    let client_info = params
        .get("clientInfo")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("params.clientInfo must be an object with name and version"))?;
    for field in ["name", "version"] {
        if !client_info.get(field).is_some_and(Value::is_string) {
            return Err(bad(&format!("params.clientInfo.{field} must be a string")));
        }
    }
    let protocol_version = SUPPORTED_PROTOCOL_VERSIONS
        .into_iter()
        .find(|v| *v == requested)
        .unwrap_or(LATEST_PROTOCOL_VERSION);
    Ok(Negotiated {
        protocol_version,
        result: json!({
            "protocolVersion": protocol_version,
            "capabilities": { "tools": { "listChanged": false } },
            "serverInfo": {
                "name": SERVER_NAME,
                "title": SERVER_TITLE,
                "version": SERVER_VERSION,
            },
            "instructions": INSTRUCTIONS,
        }),
    })
}

fn bad(message: &str) -> ErrorObject {
    ErrorObject::new(
        code::INVALID_PARAMS,
        format!("invalid initialize params: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(version: &str) -> Map<String, Value> {
        json!({
            "protocolVersion": version,
            "capabilities": {"roots": {}},
            "clientInfo": {"name": "t", "version": "1"}
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn echoes_supported_versions_and_counter_offers_the_rest() {
        for (asked, answered) in [
            ("2025-11-25", "2025-11-25"),
            ("2025-06-18", "2025-06-18"),
            ("2025-03-26", "2025-11-25"),
            ("2024-11-05", "2025-11-25"),
            ("1900-01-01", "2025-11-25"),
        ] {
            let negotiated = negotiate(&params(asked)).unwrap();
            assert_eq!(negotiated.protocol_version, answered);
            assert_eq!(negotiated.result["protocolVersion"], answered);
        }
    }

    #[test]
    fn declares_only_tools() {
        let result = negotiate(&params("2025-11-25")).unwrap().result;
        assert_eq!(
            result["capabilities"],
            json!({"tools": {"listChanged": false}})
        );
        assert_eq!(result["serverInfo"]["name"], "mcp-secure-server");
    }

    #[test]
    fn invalid_params_name_the_member() {
        let mut p = params("2025-11-25");
        p.remove("clientInfo");
        assert!(negotiate(&p).unwrap_err().message.contains("clientInfo"));
        let mut p = params("2025-11-25");
        p.insert("protocolVersion".into(), json!(20251125));
        assert_eq!(negotiate(&p).unwrap_err().code, code::INVALID_PARAMS);
        let mut p = params("2025-11-25");
        p.insert("capabilities".into(), json!([]));
        assert!(negotiate(&p).unwrap_err().message.contains("capabilities"));
    }
}
