//! The handshake-era lifecycle: initialize, version negotiation, ping, and what is refused.

use serde_json::json;

use crate::harness::{Server, error_code};

fn init_params(version: &str) -> serde_json::Value {
    json!({
        "protocolVersion": version,
        "capabilities": {"roots": {"listChanged": true}, "experimental": {"x": {}}},
        "clientInfo": {"name": "test", "version": "1"}
    })
}

#[test]
fn ping_is_answered_before_and_after_initialize() {
    let mut server = Server::start();
    assert_eq!(
        server.request(json!(1), "ping", json!({})),
        json!({"jsonrpc": "2.0", "id": 1, "result": {}})
    );
    server.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n");
    assert_eq!(
        server.recv(),
        json!({"jsonrpc": "2.0", "id": 2, "result": {}})
    );
    server.initialize();
    assert_eq!(
        server.request(json!(3), "ping", json!({"_meta": {"x": 1}})),
        json!({"jsonrpc": "2.0", "id": 3, "result": {}})
    );
}

#[test]
fn requests_before_initialize_are_refused_with_their_id() {
    let mut server = Server::start();
    for (id, method, params) in [
        (json!(1), "tools/list", json!({})),
        (
            json!("two"),
            "tools/call",
            json!({"name": "list_categories"}),
        ),
    ] {
        let answer = server.request(id.clone(), method, params);
        assert_eq!(error_code(&answer), -32600, "{answer}");
        assert_eq!(answer["id"], id);
        server.assert_alive();
    }
    // Still waiting for initialize: it works afterwards.
    assert!(server.initialize()["result"]["protocolVersion"].is_string());
}

#[test]
fn versions_are_echoed_or_countered_with_the_latest() {
    for (asked, answered) in [
        ("2025-11-25", "2025-11-25"),
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-11-25"),
        ("2024-11-05", "2025-11-25"),
        ("1900-01-01", "2025-11-25"),
    ] {
        let mut server = Server::start();
        let answer = server.request(json!(1), "initialize", init_params(asked));
        let result = &answer["result"];
        assert_eq!(result["protocolVersion"], answered, "asked {asked}");
        assert_eq!(
            result["capabilities"],
            json!({"tools": {"listChanged": false}})
        );
        assert_eq!(result["serverInfo"]["name"], "mcp-secure-server");
        assert!(result["serverInfo"]["version"].is_string());
        server.assert_alive();
    }
}

#[test]
fn invalid_initialize_params_are_invalid_params() {
    let mut server = Server::start();
    for params in [
        json!({}),
        json!({"protocolVersion": 1, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        json!({"protocolVersion": "2025-11-25", "clientInfo": {"name": "t", "version": "1"}}),
        json!({"protocolVersion": "2025-11-25", "capabilities": {}}),
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}}),
        json!([1, 2]),
    ] {
        let answer = server.request(json!(1), "initialize", params.clone());
        assert_eq!(error_code(&answer), -32602, "{params}");
        server.assert_alive();
    }
    // A failed initialize leaves the session waiting for a good one.
    let answer = server.request(json!(2), "tools/list", json!({}));
    assert_eq!(error_code(&answer), -32600);
    assert_eq!(
        server.initialize()["result"]["protocolVersion"],
        "2025-11-25"
    );
}

#[test]
fn a_second_initialize_is_refused_and_the_session_is_unchanged() {
    let mut server = Server::start();
    let first = server.request(json!(1), "initialize", init_params("2025-06-18"));
    assert_eq!(first["result"]["protocolVersion"], "2025-06-18");
    let second = server.request(json!(2), "initialize", init_params("2025-11-25"));
    assert_eq!(error_code(&second), -32600);
    let message = second["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("2025-06-18"),
        "names the kept revision: {message}"
    );
    server.assert_alive();
    let list = server.request(json!(3), "tools/list", json!({}));
    assert!(list["result"]["tools"].is_array(), "{list}");
}

#[test]
fn undeclared_methods_are_method_not_found() {
    let mut server = Server::start();
    // A probe without the 2026-07-28 _meta is a malformed modern request; it decides nothing.
    let answer = server.request(json!(1), "server/discover", json!({}));
    assert_eq!(error_code(&answer), -32602);
    server.initialize();
    for method in [
        "server/discover",
        "prompts/list",
        "resources/list",
        "resources/read",
        "logging/setLevel",
        "tasks/list",
        "tasks/get",
        "completion/complete",
        "sampling/createMessage",
        "nope",
    ] {
        let answer = server.request(json!(method), method, json!({}));
        assert_eq!(error_code(&answer), -32601, "{method}");
        assert_eq!(answer["id"], json!(method));
    }
    server.assert_alive();
}
