//! Every JSON-RPC rule of the framing and parsing layer, through the real binary. Each case is
//! followed by `assert_alive`, which also proves no extra line was written.

use serde_json::{Value, json};

use crate::harness::{Server, error_code};

/// Sends `bytes`, expects exactly one error answer with `code` and the given id member.
fn expect_error(server: &mut Server, bytes: &[u8], code: i64, id: Option<Value>) -> Value {
    server.send_raw(bytes);
    let answer = server.recv();
    assert_eq!(
        error_code(&answer),
        code,
        "for input {:?}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
    );
    assert_eq!(answer.get("id").cloned(), id, "id member of {answer}");
    assert_eq!(answer["jsonrpc"], "2.0");
    server.assert_alive();
    answer
}

#[test]
fn invalid_utf8_is_a_parse_error_without_id() {
    let mut server = Server::start();
    let answer = expect_error(
        &mut server,
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffng\"}\n",
        -32700,
        None,
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8")
    );
}

#[test]
fn invalid_json_is_a_parse_error_without_id() {
    let mut server = Server::start();
    expect_error(
        &mut server,
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\n",
        -32700,
        None,
    );
    expect_error(&mut server, b"not json\n", -32700, None);
    expect_error(&mut server, b"{\"a\":1}}\n", -32700, None);
}

#[test]
fn non_request_json_is_an_invalid_request() {
    let mut server = Server::start();
    for input in ["42", "\"ping\"", "null", "true", "{}"] {
        expect_error(&mut server, format!("{input}\n").as_bytes(), -32600, None);
    }
}

#[test]
fn batches_are_refused_and_none_of_their_elements_run() {
    let mut server = Server::start();
    expect_error(&mut server, b"[]\n", -32600, None);
    // The batch holds a ping; if any element ran, its answer would precede the liveness pong.
    expect_error(
        &mut server,
        b"[{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}]\n",
        -32600,
        None,
    );
}

#[test]
fn wrong_jsonrpc_and_method_types_are_invalid_requests_with_the_id() {
    let mut server = Server::start();
    expect_error(
        &mut server,
        b"{\"jsonrpc\":\"1.0\",\"id\":5,\"method\":\"ping\"}\n",
        -32600,
        Some(json!(5)),
    );
    expect_error(
        &mut server,
        b"{\"id\":6,\"method\":\"ping\"}\n",
        -32600,
        Some(json!(6)),
    );
    expect_error(
        &mut server,
        b"{\"jsonrpc\":2.0,\"id\":7,\"method\":\"ping\"}\n",
        -32600,
        Some(json!(7)),
    );
    expect_error(
        &mut server,
        b"{\"jsonrpc\":\"2.0\",\"id\":\"m\",\"method\":42}\n",
        -32600,
        Some(json!("m")),
    );
    expect_error(
        &mut server,
        b"{\"jsonrpc\":\"2.0\",\"method\":null}\n",
        -32600,
        None,
    );
    expect_error(
        &mut server,
        b"{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\",\"params\":\"x\"}\n",
        -32600,
        Some(json!(8)),
    );
}

#[test]
fn ids_that_are_not_strings_or_integers_are_invalid_requests() {
    let mut server = Server::start();
    for id in [
        "null",
        "true",
        "false",
        "1.5",
        "1.0",
        "1e3",
        "{}",
        "{\"a\":1}",
        "[1]",
    ] {
        let line = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n");
        expect_error(&mut server, line.as_bytes(), -32600, None);
    }
}

#[test]
fn deep_nesting_is_a_parse_error_not_a_crash() {
    let mut server = Server::start();
    let mut line = "[".repeat(100_000).into_bytes();
    line.push(b'\n');
    expect_error(&mut server, &line, -32700, None);
    let mut objects = "{\"a\":".repeat(100_000).into_bytes();
    objects.push(b'\n');
    expect_error(&mut server, &objects, -32700, None);
    // Deep but inside a valid request envelope.
    let deep_params = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"x\":{}}}}}\n",
        "[".repeat(100_000)
    );
    expect_error(&mut server, deep_params.as_bytes(), -32700, None);
}

#[test]
fn a_20_mb_line_gets_one_error_and_memory_stays_bounded() {
    let mut server = Server::start();
    server.assert_alive();
    let before = server.peak_rss_kib();
    let mut huge = Vec::with_capacity(20 * 1024 * 1024 + 64);
    huge.extend_from_slice(
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"pad\":\"",
    );
    huge.resize(20 * 1024 * 1024, b'x');
    huge.extend_from_slice(b"\"}}\n");
    let answer = expect_error(&mut server, &huge, -32600, None);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_line_bytes"), "{message}");
    // The line was never held: the peak grew by far less than its 20 MB.
    let growth = server.peak_rss_kib().saturating_sub(before);
    assert!(growth < 12 * 1024, "peak RSS grew by {growth} KiB");
}

#[test]
fn the_line_limit_is_configurable_and_exact() {
    let mut server = Server::start_with(
        &crate::harness::server_bin(),
        Some("limits:\n  max_line_bytes: 1024\n"),
    );
    let mut line = br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"p":""#.to_vec();
    let tail = br#""}}"#;
    line.resize(1024 - tail.len(), b'x');
    line.extend_from_slice(tail);
    assert_eq!(line.len(), 1024);
    server.send_raw(&[line.as_slice(), b"\n"].concat());
    assert_eq!(
        server.recv(),
        json!({"jsonrpc": "2.0", "id": 1, "result": {}})
    );
    line.insert(line.len() - tail.len(), b'x');
    expect_error(
        &mut server,
        &[line.as_slice(), b"\n"].concat(),
        -32600,
        None,
    );
}

#[test]
fn crlf_and_blank_lines_are_accepted() {
    let mut server = Server::start();
    server.send_raw(b"\n\r\n   \n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n");
    assert_eq!(
        server.recv(),
        json!({"jsonrpc": "2.0", "id": 1, "result": {}})
    );
    server.assert_alive();
}

#[test]
fn ids_are_echoed_exactly() {
    let mut server = Server::start();
    let ids = [
        "0",
        "-1",
        "1",
        "\"1\"",
        "\"\"",
        "9007199254740993",
        "9223372036854775807",
        "18446744073709551615",
        "-9223372036854775808",
        "\"\\u00e9\\n\\\"x\"",
    ];
    for id in ids {
        server.send_raw(
            format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n").as_bytes(),
        );
        let line = server.client.recv_line(crate::harness::TIMEOUT).unwrap();
        let line = String::from_utf8(line).unwrap();
        let parsed: Value = serde_json::from_str(&line).unwrap();
        let sent: Value = serde_json::from_str(id).unwrap();
        assert_eq!(parsed["id"], sent, "id {id} came back as {line}");
        // Integers stay integers, digit for digit (no float rounding of 2^53 + 1).
        if !id.starts_with('"') {
            assert!(line.contains(&format!("\"id\":{id}")), "{line}");
        }
    }
    server.assert_alive();
}

#[test]
fn notifications_are_never_answered() {
    let mut server = Server::start();
    for notification in [
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 12345}}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": "bad"}),
        json!({"jsonrpc": "2.0", "method": "no/such/notification", "params": {}}),
        json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "list_categories"}}),
    ] {
        server.send(notification);
    }
    // Responses from the client answer nothing and are ignored too.
    server.send(json!({"jsonrpc": "2.0", "id": 77, "result": {}}));
    server.send(json!({"jsonrpc": "2.0", "id": 78, "error": {"code": -1, "message": "x"}}));
    server.assert_alive();
}
