//! Concurrency through the example server's `wait` tool: slow calls never block the reader,
//! cancellation stops work and suppresses the answer, deadlines apply, work is bounded.
//! No assertion depends on timing: long waits are 10 minutes and always end by cancellation.

use serde_json::{Value, json};

use crate::harness::{Server, example_bin, tool_text};

const FOREVER_MS: u64 = 600_000;

fn call_wait(server: &mut Server, id: Value, ms: u64) {
    server.send(json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "wait", "arguments": {"milliseconds": ms}}
    }));
}

fn cancel(server: &mut Server, id: Value) {
    server.send(json!({
        "jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": id, "reason": "test"}
    }));
}

#[test]
fn a_slow_call_never_blocks_ping_or_other_calls() {
    let mut server = Server::start_with(&example_bin(), None);
    server.initialize();
    call_wait(&mut server, json!("slow"), FOREVER_MS);
    server.assert_alive();
    let answer = server.call_tool(json!("fast"), "word_count", json!({"text": "a b"}));
    assert_eq!(answer["result"]["structuredContent"]["words"], 2);
    cancel(&mut server, json!("slow"));
    server.assert_alive();
}

#[test]
fn cancellation_suppresses_the_response_and_frees_the_slot() {
    let policy = "limits:\n  max_in_flight: 1\n";
    let mut server = Server::start_with(&example_bin(), Some(policy));
    server.initialize();
    call_wait(&mut server, json!(1), FOREVER_MS);
    // With one slot, this call waits behind call 1 until call 1 is cancelled.
    call_wait(&mut server, json!(2), 0);
    cancel(&mut server, json!(1));
    let next = server.recv();
    assert_eq!(next["id"], 2, "call 1 must never be answered: {next}");
    assert_eq!(tool_text(&next), "waited 0 ms");
    server.assert_alive();
}

#[test]
fn a_queued_call_can_be_cancelled_before_it_starts() {
    let mut server = Server::start_with(&example_bin(), Some("limits:\n  max_in_flight: 1\n"));
    server.initialize();
    call_wait(&mut server, json!("running"), FOREVER_MS);
    call_wait(&mut server, json!("queued"), 0);
    cancel(&mut server, json!("queued"));
    cancel(&mut server, json!("running"));
    server.assert_alive();
    let answer = server.call_tool(json!("after"), "wait", json!({"milliseconds": 0}));
    assert_eq!(
        tool_text(&answer),
        "waited 0 ms",
        "only the new call is answered"
    );
}

#[test]
fn calls_past_the_admission_bound_are_answered_busy_at_once() {
    // One running slot and four admitted in total: the fifth call is refused immediately.
    let mut server = Server::start_with(&example_bin(), Some("limits:\n  max_in_flight: 1\n"));
    server.initialize();
    for id in 1..=4 {
        call_wait(&mut server, json!(id), FOREVER_MS);
    }
    call_wait(&mut server, json!(5), 0);
    let busy = server.recv();
    assert_eq!(busy["id"], 5);
    assert_eq!(busy["result"]["isError"], true);
    assert!(tool_text(&busy).contains("busy"), "{busy}");
    server.assert_alive();
    for id in 1..=4 {
        cancel(&mut server, json!(id));
    }
    let answer = server.call_tool(json!(6), "wait", json!({"milliseconds": 0}));
    assert_eq!(
        tool_text(&answer),
        "waited 0 ms",
        "{}",
        server.sandbox.stderr()
    );
}

#[test]
fn the_deadline_stops_a_call_with_a_tool_error() {
    let mut server = Server::start_with(&example_bin(), Some("tools:\n  timeout: 0.2\n"));
    server.initialize();
    let answer = server.call_tool(json!(1), "wait", json!({"milliseconds": FOREVER_MS}));
    assert_eq!(answer["result"]["isError"], true);
    let text = tool_text(&answer);
    assert!(
        text.contains("did not finish within 0.2 s") && text.contains("tools.timeout"),
        "{text}"
    );
    server.assert_alive();
}

#[test]
fn a_reused_in_flight_id_is_refused() {
    let mut server = Server::start_with(&example_bin(), None);
    server.initialize();
    call_wait(&mut server, json!("dup"), FOREVER_MS);
    call_wait(&mut server, json!("dup"), 0);
    let answer = server.recv();
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    assert_eq!(answer["id"], "dup");
    cancel(&mut server, json!("dup"));
    server.assert_alive();
}

#[test]
fn a_burst_of_200_pipelined_calls_is_fully_answered() {
    let policy = "tools:\n  rate_limits:\n    default: 1000\n";
    let mut server = Server::start_with(&crate::harness::server_bin(), Some(policy));
    server.initialize();
    let mut burst = Vec::new();
    for id in 0..200 {
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                             "params": {"name": "list_categories"}});
        burst.extend(serde_json::to_vec(&request).unwrap());
        burst.push(b'\n');
    }
    server.send_raw(&burst);
    let mut seen = [false; 200];
    for _ in 0..200 {
        let answer = server.recv();
        let id = answer["id"].as_u64().unwrap() as usize;
        assert!(!seen[id], "id {id} answered twice");
        seen[id] = true;
        assert_eq!(answer["result"]["isError"], false, "{answer}");
    }
    server.assert_alive();
}
