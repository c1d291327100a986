//! The 2026-07-28 ("modern") envelope: stateless requests that carry their protocol version and
//! client capabilities in `params._meta`, `server/discover`, and results that say `resultType`.
//!
//! Only the envelope lives here; the methods themselves (tools/list, tools/call) are shared with
//! the handshake era, so guardrails, audit and sandbox are identical in both.

use serde_json::{Map, Value, json};

use super::protocol::{
    INSTRUCTIONS, SERVER_NAME, SERVER_TITLE, SERVER_VERSION, SUPPORTED_PROTOCOL_VERSIONS,
};
use crate::rpc::{ErrorObject, code};

/// The modern revision this server speaks.
pub const MODERN_PROTOCOL_VERSION: &str = "2026-07-28";
/// `_meta` key of the request's protocol version.
pub const PROTOCOL_VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client's capabilities.
pub const CLIENT_CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the server's identity in results.
pub const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";
/// -32022: the request's protocol version is not supported (`data.supported`, `data.requested`).
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// How long clients may cache discovery and `tools/list`: the tool set is fixed for the life of
/// the process, but a restart with another policy may change it.
pub const CACHE_TTL_MS: u64 = 5 * 60 * 1000;
/// Methods removed in 2026-07-28: -32601 on a modern session.
pub const REMOVED_METHODS: [&str; 5] = [
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
];

/// Every version this server accepts, handshake era included (oldest first).
pub fn supported_versions() -> Vec<&'static str> {
    let mut versions: Vec<&str> = SUPPORTED_PROTOCOL_VERSIONS.iter().rev().copied().collect();
    versions.push(MODERN_PROTOCOL_VERSION);
    versions
}

/// Whether a request announces itself as modern (carries a protocol version in `_meta`).
pub fn announces_version(params: &Map<String, Value>) -> bool {
    params
        .get("_meta")
        .and_then(|m| m.get(PROTOCOL_VERSION_KEY))
        .is_some()
}

/// Checks the per-request `_meta` of a modern request.
///
/// # Errors
/// -32602 for a missing or ill-typed required field; -32022 for a version we do not speak.
pub fn check_request(params: &Map<String, Value>) -> Result<(), ErrorObject> {
    let missing = |what: &str| {
        ErrorObject::new(
            code::INVALID_PARAMS,
            format!(
                "params._meta[\"{what}\"] is required on 2026-07-28 requests (or open the \
                 session with initialize for the handshake era)"
            ),
        )
    };
    let meta = params
        .get("_meta")
        .and_then(Value::as_object)
        .ok_or_else(|| missing(PROTOCOL_VERSION_KEY))?;
    let version = meta
        .get(PROTOCOL_VERSION_KEY)
        .and_then(Value::as_str)
        .ok_or_else(|| missing(PROTOCOL_VERSION_KEY))?;
    if !meta
        .get(CLIENT_CAPABILITIES_KEY)
        .is_some_and(Value::is_object)
    {
        return Err(missing(CLIENT_CAPABILITIES_KEY));
    }
    if version != MODERN_PROTOCOL_VERSION {
        return Err(unsupported(version));
    }
    Ok(())
}

/// -32022 naming the supported versions.
pub fn unsupported(requested: &str) -> ErrorObject {
    let shown: String = requested.chars().take(64).collect();
    ErrorObject {
        code: UNSUPPORTED_PROTOCOL_VERSION,
        message: format!(
            "unsupported protocol version {shown:?}; this server speaks {MODERN_PROTOCOL_VERSION} \
             per request, and {} through initialize",
            SUPPORTED_PROTOCOL_VERSIONS.join(" and ")
        ),
        data: Some(json!({"supported": supported_versions(), "requested": requested})),
    }
}

/// The `DiscoverResult`.
pub fn discover() -> Value {
    let mut result = json!({
        "supportedVersions": supported_versions(),
        // A static tool set: no listChanged, no subscriptions.
        "capabilities": {"tools": {}},
        "instructions": INSTRUCTIONS,
    });
    cacheable(&mut result);
    decorate(&mut result);
    result
}

/// Adds the caching hints of list and discovery results.
pub fn cacheable(result: &mut Value) {
    if let Some(object) = result.as_object_mut() {
        object.insert("ttlMs".into(), json!(CACHE_TTL_MS));
        object.insert("cacheScope".into(), json!("private"));
    }
}

/// Adds what every modern result carries: `resultType` and the server's identity in `_meta`.
pub fn decorate(result: &mut Value) {
    let Some(object) = result.as_object_mut() else {
        return;
    };
    object.insert("resultType".into(), json!("complete"));
    let meta = object
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert(
            SERVER_INFO_KEY.into(),
            json!({"name": SERVER_NAME, "title": SERVER_TITLE, "version": SERVER_VERSION}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(meta: Value) -> Map<String, Value> {
        json!({"_meta": meta}).as_object().cloned().unwrap()
    }

    #[test]
    fn request_meta_rules() {
        let good = params(json!({PROTOCOL_VERSION_KEY: "2026-07-28", CLIENT_CAPABILITIES_KEY: {}}));
        assert_eq!(check_request(&good), Ok(()));
        let no_caps = params(json!({PROTOCOL_VERSION_KEY: "2026-07-28"}));
        assert_eq!(
            check_request(&no_caps).unwrap_err().code,
            code::INVALID_PARAMS
        );
        assert_eq!(
            check_request(&Map::new()).unwrap_err().code,
            code::INVALID_PARAMS
        );
        let old = params(json!({PROTOCOL_VERSION_KEY: "2030-01-01", CLIENT_CAPABILITIES_KEY: {}}));
        let error = check_request(&old).unwrap_err();
        assert_eq!(error.code, UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(
            error.data.unwrap()["supported"],
            json!(["2025-06-18", "2025-11-25", "2026-07-28"])
        );
    }

    #[test]
    fn discover_is_cacheable_and_complete() {
        let result = discover();
        assert_eq!(result["resultType"], "complete");
        assert_eq!(result["ttlMs"], CACHE_TTL_MS);
        assert_eq!(result["cacheScope"], "private");
        assert_eq!(result["_meta"][SERVER_INFO_KEY]["name"], SERVER_NAME);
        assert!(
            result["supportedVersions"]
                .as_array()
                .unwrap()
                .contains(&json!("2026-07-28"))
        );
    }
}
