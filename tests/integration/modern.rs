//! The 2026-07-28 era through the real binary, and the official Python SDK client against it.

use serde_json::{Value, json};

use crate::harness::{BUILTIN_TOOLS, Server, TIMEOUT, error_code, server_bin};

const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
const CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";

fn meta(version: &str) -> Value {
    json!({VERSION_KEY: version, CAPABILITIES_KEY: {}, "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}})
}

fn modern(params: Value) -> Value {
    let mut params = params;
    params["_meta"] = meta("2026-07-28");
    params
}

#[test]
fn discovery_describes_the_server() {
    let mut server = Server::start();
    let answer = server.request(json!(1), "server/discover", modern(json!({})));
    let result = &answer["result"];
    assert_eq!(result["resultType"], "complete", "{answer}");
    assert_eq!(
        result["supportedVersions"],
        json!(["2025-06-18", "2025-11-25", "2026-07-28"])
    );
    assert_eq!(result["capabilities"], json!({"tools": {}}));
    assert!(result["instructions"].is_string());
    assert!(result["ttlMs"].as_u64().is_some());
    assert_eq!(result["cacheScope"], "private");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcp-secure-server"
    );
}

#[test]
fn calls_need_the_per_request_meta() {
    let mut server = Server::start();
    let list = server.request(json!(1), "tools/list", modern(json!({})));
    assert_eq!(list["result"]["resultType"], "complete");
    assert!(list["result"]["ttlMs"].is_u64() && list["result"]["cacheScope"] == "private");
    assert_eq!(
        list["result"]["tools"].as_array().unwrap().len(),
        BUILTIN_TOOLS.len()
    );

    let call = server.request(
        json!(2),
        "tools/call",
        modern(json!({"name": "list_categories", "arguments": {}})),
    );
    assert_eq!(call["result"]["resultType"], "complete", "{call}");
    assert_eq!(call["result"]["isError"], false);
    assert!(call["result"]["structuredContent"]["categories"].is_array());

    // Stateless: every request must carry the fields, even after earlier ones did.
    let bare = server.request(json!(3), "tools/call", json!({"name": "list_categories"}));
    assert_eq!(error_code(&bare), -32602);
    assert!(
        bare["error"]["message"]
            .as_str()
            .unwrap()
            .contains(VERSION_KEY)
    );
    let mut no_caps = modern(json!({"name": "list_categories"}));
    no_caps["_meta"]
        .as_object_mut()
        .unwrap()
        .remove(CAPABILITIES_KEY);
    assert_eq!(
        error_code(&server.request(json!(4), "tools/call", no_caps)),
        -32602
    );
}

#[test]
fn unsupported_versions_name_the_supported_ones() {
    let mut server = Server::start();
    let mut params = json!({"name": "list_categories"});
    params["_meta"] = meta("2031-01-01");
    let answer = server.request(json!(1), "tools/call", params);
    assert_eq!(error_code(&answer), -32022);
    assert_eq!(answer["error"]["data"]["requested"], "2031-01-01");
    assert!(
        answer["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );
}

#[test]
fn removed_methods_and_initialize_are_refused_on_a_modern_session() {
    let mut server = Server::start();
    server.request(json!(1), "server/discover", modern(json!({})));
    for method in ["ping", "logging/setLevel", "resources/subscribe"] {
        assert_eq!(
            error_code(&server.request(json!(method), method, modern(json!({})))),
            -32601,
            "{method}"
        );
    }
    let init = server.request(json!(2), "initialize", json!({
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}));
    assert_eq!(error_code(&init), -32022, "the session stays modern");
    assert_eq!(init["error"]["data"]["requested"], "2025-11-25");
}

#[test]
fn a_client_that_probes_and_falls_back_gets_a_clean_handshake_session() {
    let mut server = Server::start();
    // A client that only knows a newer modern revision probes, is told what is supported...
    let mut probe = json!({});
    probe["_meta"] = meta("2031-01-01");
    let answer = server.request(json!("probe"), "server/discover", probe);
    assert_eq!(error_code(&answer), -32022);
    assert!(
        answer["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("2025-11-25"))
    );
    // ...and falls back to the handshake: a normal legacy session, no modern fields anywhere.
    let init = server.initialize();
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    let call = server.call_tool(json!(1), "list_categories", json!({}));
    assert!(call["result"].get("resultType").is_none(), "{call}");
    let list = server.request(json!(2), "tools/list", json!({}));
    assert!(list["result"].get("ttlMs").is_none() && list["result"].get("resultType").is_none());
    server.assert_alive();
}

#[test]
fn a_modern_session_writes_only_responses() {
    let mut server = Server::start();
    server.send(json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": modern(json!({}))}));
    server.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": modern(json!({"name": "search_tools", "arguments": {"query": "x"}}))}));
    server.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}),
    );
    server.client.close_stdin();
    let mut ids = Vec::new();
    while let Ok(line) = server.client.recv_line(TIMEOUT) {
        let message: Value = serde_json::from_slice(&line).unwrap();
        assert!(
            message.get("method").is_none(),
            "no server-to-client requests: {message}"
        );
        ids.push(message["id"].clone());
    }
    ids.sort_by_key(|id| id.as_i64());
    assert_eq!(ids, [json!(1), json!(2)]);
    assert!(server.finish().success());
}

/// The official Python SDK client (2.x), default auto mode, in a throwaway virtual environment.
#[test]
fn the_official_python_sdk_client_negotiates_the_modern_era() {
    let venv = tempfile::Builder::new()
        .prefix("mcp-sdk-venv-")
        .tempdir()
        .unwrap();
    let python = |args: &[&str]| {
        let out = std::process::Command::new("python3")
            .args(args)
            .output()
            .expect("python3 is needed for the SDK interoperability test (install Python 3.10+)");
        assert!(
            out.status.success(),
            "python3 {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let venv_dir = venv.path().to_str().unwrap();
    python(&["-m", "venv", venv_dir]);
    let pip = venv.path().join("bin/pip");
    let install = std::process::Command::new(&pip)
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "mcp>=2,<3",
        ])
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "pip install mcp: {}",
        String::from_utf8_lossy(&install.stderr)
    );

    let sandbox = crate::harness::Sandbox::new();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_client.py");
    let out = std::process::Command::new(venv.path().join("bin/python"))
        .arg(&script)
        .arg(server_bin())
        .env("HOME", sandbox.path())
        .env("XDG_STATE_HOME", sandbox.path().join("state"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "SDK client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    assert_eq!(
        report["protocol_version"], "2026-07-28",
        "auto mode chose the modern era"
    );
    assert_eq!(report["tools"], json!(BUILTIN_TOOLS));
    assert_eq!(report["is_error"], false);
    assert_eq!(
        report["structured"]["categories"][0]["category"],
        "discovery"
    );
}
