//! tools/list and tools/call through the real binary.

use serde_json::{Value, json};

use crate::harness::{BUILTIN_TOOLS, Server, error_code, example_bin, tool_text};

#[test]
fn tools_list_is_deterministic_and_complete() {
    let mut server = Server::start();
    server.initialize();
    let first = server.request(json!(1), "tools/list", json!({}));
    let second = server.request(json!(2), "tools/list", json!({}));
    assert_eq!(first["result"], second["result"]);
    let tools = first["result"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, BUILTIN_TOOLS);
    assert!(first["result"].get("nextCursor").is_none());
    for tool in tools {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        assert_eq!(tool["inputSchema"]["additionalProperties"], false, "{tool}");
        assert!(tool["description"].as_str().is_some_and(|d| !d.is_empty()));
        let annotations = &tool["annotations"];
        for hint in [
            "readOnlyHint",
            "destructiveHint",
            "idempotentHint",
            "openWorldHint",
        ] {
            assert!(
                annotations[hint].is_boolean(),
                "{hint} set explicitly on {}",
                tool["name"]
            );
        }
        assert_eq!(tool["outputSchema"]["type"], "object");
    }
}

#[test]
fn pagination_walks_every_tool_once_and_refuses_foreign_cursors() {
    let mut server = Server::start_with(&example_bin(), Some("limits:\n  tools_page_size: 1\n"));
    server.initialize();
    let mut names = Vec::new();
    let mut params = json!({});
    for id in 0..20 {
        let page = server.request(json!(id), "tools/list", params.clone());
        let tools = page["result"]["tools"].as_array().unwrap().clone();
        assert_eq!(tools.len(), 1, "page size 1");
        names.extend(tools.iter().map(|t| t["name"].as_str().unwrap().to_owned()));
        match page["result"].get("nextCursor") {
            Some(cursor) => params = json!({"cursor": cursor}),
            None => break,
        }
    }
    assert_eq!(
        names,
        BUILTIN_TOOLS
            .iter()
            .chain(&["word_count", "file_info", "plan_command", "wait"])
            .copied()
            .collect::<Vec<_>>()
    );
    for cursor in [
        json!("bogus"),
        json!(""),
        json!("tools-page:0"),
        json!(format!("tools-page:{}", names.len())),
        json!("tools-page:x"),
        json!(1),
    ] {
        let answer = server.request(json!("c"), "tools/list", json!({"cursor": cursor}));
        assert_eq!(error_code(&answer), -32602, "cursor {cursor}");
    }
    server.assert_alive();
}

#[test]
fn call_protocol_errors_are_invalid_params() {
    let mut server = Server::start();
    server.initialize();
    for params in [
        json!({}),
        json!({"name": 7}),
        json!({"name": null}),
        json!({"name": "no_such_tool"}),
        json!({"name": "list_categories", "arguments": [1]}),
        json!({"name": "list_categories", "arguments": "x"}),
        json!([{"name": "list_categories"}]),
    ] {
        let answer = server.request(json!(1), "tools/call", params.clone());
        assert_eq!(error_code(&answer), -32602, "{params}");
        server.assert_alive();
    }
    let answer = server.request(json!(2), "tools/call", json!({"name": "no_such_tool"}));
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unknown tool: no_such_tool")
    );
}

#[test]
fn schema_violations_are_tool_errors_naming_the_field() {
    let mut server = Server::start();
    server.initialize();
    let cases = [
        (
            "search_tools",
            json!({"detail_level": "everything"}),
            "arguments.detail_level",
        ),
        ("search_tools", json!({"query": 5}), "arguments.query"),
        ("search_tools", json!({"bogus": true}), "bogus"),
        ("list_categories", json!({"x": 1}), "x"),
    ];
    for (tool, arguments, field) in cases {
        let answer = server.call_tool(json!(1), tool, arguments.clone());
        assert_eq!(answer["result"]["isError"], true, "{answer}");
        let text = tool_text(&answer);
        assert!(text.contains(field), "{arguments}: {text}");
        server.assert_alive();
    }
}

#[test]
fn a_task_member_is_ignored() {
    let mut server = Server::start();
    server.initialize();
    let answer = server.request(
        json!(1),
        "tools/call",
        json!({"name": "list_categories", "arguments": {}, "task": {"ttl": 60000}, "_meta": {"progressToken": 1}}),
    );
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert!(answer["result"]["structuredContent"]["categories"].is_array());
}

#[test]
fn discovery_tools_answer_with_text_and_structured_content() {
    let mut server = Server::start_with(&example_bin(), None);
    server.initialize();
    let answer = server.call_tool(json!(1), "list_categories", json!({}));
    let structured = answer["result"]["structuredContent"].clone();
    assert_eq!(
        serde_json::from_str::<Value>(&tool_text(&answer)).unwrap(),
        structured
    );
    assert_eq!(
        structured["categories"][3],
        json!({
            "category": "text", "version": "1.0.0", "tool_count": 4,
        "tools": ["word_count", "file_info", "plan_command", "wait"]
        })
    );

    let answer = server.call_tool(
        json!(2),
        "search_tools",
        json!({"query": "WORD", "detail_level": "name"}),
    );
    // A name match ranks before a description match ("keyword" in search_tools' text).
    assert_eq!(
        answer["result"]["structuredContent"]["tools"],
        json!(["word_count", "search_tools"])
    );
    let answer = server.call_tool(
        json!(3),
        "search_tools",
        json!({"category": "text", "detail_level": "full"}),
    );
    let tools = answer["result"]["structuredContent"]["tools"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(tools.len(), 4);
    assert_eq!(tools[0]["inputSchema"]["required"], json!(["text"]));
    let answer = server.call_tool(json!(4), "search_tools", json!({"category": "nope"}));
    assert_eq!(answer["result"]["isError"], true);
    assert!(
        tool_text(&answer).contains("available categories: discovery, websearch, bugtracker, text")
    );
}

#[test]
fn the_example_plugin_runs_inside_the_same_server() {
    let mut server = Server::start_with(&example_bin(), None);
    server.initialize();
    let answer = server.call_tool(json!(1), "word_count", json!({"text": "one two\nthree"}));
    assert_eq!(
        answer["result"]["structuredContent"],
        json!({"words": 3, "lines": 2, "characters": 13})
    );
    let answer = server.call_tool(json!(2), "word_count", json!({}));
    assert_eq!(answer["result"]["isError"], true);
    assert!(tool_text(&answer).contains("\"text\" is a required property"));
}
