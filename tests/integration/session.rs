//! A whole session end to end, and how the server ends.

use mcp_secure_server::rpc::{Message, parse};
use serde_json::json;

use crate::harness::{Server, TIMEOUT, example_bin};

#[test]
fn full_session_writes_only_json_rpc_to_stdout() {
    let mut server = Server::start_with(&example_bin(), None);
    let mut lines = Vec::new();
    server.send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}}));
    lines.push(server.client.recv_line(TIMEOUT).unwrap());
    server.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    server.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    lines.push(server.client.recv_line(TIMEOUT).unwrap());
    server.send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                       "params": {"name": "search_tools", "arguments": {"query": "count"}}}));
    lines.push(server.client.recv_line(TIMEOUT).unwrap());
    server.send(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                       "params": {"name": "wait", "arguments": {"milliseconds": 600000}}}));
    server.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 4}}),
    );
    server.send(json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}));
    lines.push(server.client.recv_line(TIMEOUT).unwrap());
    server.client.close_stdin();
    // Everything else the server writes before exiting, until EOF.
    while let Ok(line) = server.client.recv_line(TIMEOUT) {
        lines.push(line);
    }
    let status = server.finish();
    assert!(status.success(), "exit status {status}");

    let mut ids = Vec::new();
    for line in &lines {
        assert_eq!(line.last(), Some(&b'\n'), "every message ends its line");
        match parse(&line[..line.len() - 1]) {
            Ok(Message::Response(response)) => {
                assert!(
                    response.outcome.is_ok(),
                    "{}",
                    String::from_utf8_lossy(line)
                );
                ids.push(response.id.to_string());
            }
            other => panic!("stdout held a non-response: {other:?}"),
        }
    }
    assert_eq!(
        ids,
        ["1", "2", "3", "5"],
        "the cancelled call 4 is never answered"
    );
}

#[test]
fn eof_ends_the_server_with_status_zero() {
    let mut server = Server::start();
    server.initialize();
    server.assert_alive();
    assert!(server.finish().success());
}

#[test]
fn eof_with_a_call_running_still_exits_zero() {
    let mut server = Server::start_with(&example_bin(), None);
    server.initialize();
    server.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "wait", "arguments": {"milliseconds": 600000}}}));
    server.assert_alive();
    assert!(server.finish().success());
}

#[test]
fn pending_answers_are_flushed_on_eof() {
    let mut server = Server::start();
    // Everything in one write, then EOF at once: all three answers must still arrive.
    server.send_raw(concat!(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"p","version":"1"}}}"#, "\n",
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_categories"}}"#, "\n",
        r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#
    ).as_bytes());
    server.client.close_stdin();
    let mut ids = Vec::new();
    while let Ok(answer) = server.client.recv(TIMEOUT) {
        ids.push(answer["id"].clone());
    }
    ids.sort_by_key(|id| id.as_i64());
    assert_eq!(ids, [json!(1), json!(2), json!(3)]);
    assert!(server.finish().success());
}

#[test]
fn sigterm_ends_the_server_with_status_zero() {
    let mut server = Server::start_with(&example_bin(), None);
    server.initialize();
    server.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "wait", "arguments": {"milliseconds": 600000}}}));
    server.assert_alive();
    let pid = server.client.pid().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    // stdin stays open: the signal alone must end the process.
    let status = server
        .client
        .wait_exit(TIMEOUT)
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn logs_go_to_stderr_and_honour_rust_log() {
    let mut server = Server::start();
    server.initialize();
    server.send_raw(b"garbage\n");
    assert_eq!(server.recv()["error"]["code"], -32700);
    let (status, stderr) = server.finish_with_stderr();
    assert!(status.success());
    // The harness sets RUST_LOG=debug: the start-up line and the debug event for the
    // malformed line are on stderr (and, as other tests show, never on stdout).
    assert!(stderr.contains("serving MCP on stdio"), "{stderr}");
    assert!(
        stderr.contains("DEBUG") && stderr.contains("malformed message"),
        "{stderr}"
    );
}

#[test]
fn stdin_from_a_regular_file_is_served_too() {
    // Files are not pollable: the server falls back to blocking reads for them.
    let sandbox = crate::harness::Sandbox::new();
    let requests = sandbox.path().join("requests.jsonl");
    std::fs::write(&requests, concat!(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"f","version":"1"}}}"#, "\n",
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_categories"}}"#, "\n",
    )).unwrap();
    let out = sandbox
        .command(&crate::harness::server_bin())
        .stdin(std::fs::File::open(&requests).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    let answers: Vec<serde_json::Value> = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(
        answers
            .iter()
            .any(|a| a["id"] == 2 && a["result"]["isError"] == false)
    );
}

#[test]
fn full_session_on_the_shipped_binary() {
    // The shipped binary has no slow tool, so the cancellation races with a fast call: the
    // spec allows either outcome, and both must leave stdout clean.
    let mut server = Server::start();
    server.send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}}));
    server.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    server.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    server.send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                       "params": {"name": "list_categories", "arguments": {}}}));
    server.send(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                       "params": {"name": "search_tools", "arguments": {"query": "tools"}}}));
    server.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 4}}),
    );
    server.client.close_stdin();
    let mut ids = Vec::new();
    while let Ok(line) = server.client.recv_line(TIMEOUT) {
        match parse(&line[..line.len() - 1]) {
            Ok(Message::Response(response)) => {
                assert!(
                    response.outcome.is_ok(),
                    "{}",
                    String::from_utf8_lossy(&line)
                );
                ids.push(response.id.to_string());
            }
            other => panic!("stdout held a non-response: {other:?}"),
        }
    }
    assert!(server.finish().success());
    ids.sort();
    assert!(
        ids == ["1", "2", "3"] || ids == ["1", "2", "3", "4"],
        "answers {ids:?}"
    );
}

#[test]
fn a_socket_on_stdin_and_stdout_survives_output_backpressure() {
    // Socket activation hands the server one socket as both fd 0 and fd 1 (one file
    // description). Regression (review): the second direction fell back to blocking writes on a
    // non-blocking socket and died with EAGAIN once the client stopped reading for a while.
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    let sandbox = crate::harness::Sandbox::new();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let theirs: OwnedFd = theirs.into();
    let mut child = sandbox
        .command(&crate::harness::server_bin())
        .stdin(std::process::Stdio::from(theirs.try_clone().unwrap()))
        .stdout(std::process::Stdio::from(theirs))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut writer = ours.try_clone().unwrap();
    let requests = 2000;
    let feeder = std::thread::spawn(move || {
        let mut burst = String::from(concat!(
            r#"{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"s","version":"1"}}}"#,
            "\n"
        ));
        for id in 0..requests {
            burst.push_str(&format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/list\"}}\n"
            ));
        }
        writer.write_all(burst.as_bytes()).unwrap();
    });
    // Let the server's output back up before reading anything (the outcome does not depend on
    // how long this is).
    std::thread::sleep(std::time::Duration::from_millis(500));
    ours.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut reader = BufReader::new(ours.try_clone().unwrap());
    let mut answers = 0;
    let mut line = String::new();
    while answers < requests + 1 {
        line.clear();
        let read = reader.read_line(&mut line).unwrap();
        assert!(read > 0, "the server closed after {answers} answers");
        answers += 1;
    }
    feeder.join().unwrap();
    ours.shutdown(std::net::Shutdown::Write).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
