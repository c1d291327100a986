//! Every guardrail on the live `tools/call` path, through the real server code (the example
//! binary adds `file_info` with a `format: path` argument and `plan_command` with a
//! `format: command` one), each with its tool error and exactly one audit record.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::harness::{Server, TIMEOUT, example_bin, server_bin, tool_text};

/// Secrets that must never reach the audit log.
const PLANTED: [&str; 8] = [
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB",
    "sk-live-0123456789abcdefghij",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl",
    "Bearer s3cr3t-bearer-value",
    "hunter2-in-a-url",
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    "plain-password-value",
];

struct Guarded {
    server: Server,
    work: PathBuf,
    log: PathBuf,
}

/// The example server with a work tree, a secret outside it, and `extra` top-level policy
/// lines (`audit_extra` goes under `audit:`).
fn start_in(extra: &str) -> Guarded {
    start_with_audit(extra, "")
}

fn start_with_audit(extra: &str, audit_extra: &str) -> Guarded {
    // The harness gives the server its own temp dir (also its cwd and HOME); the policy refers to
    // it through ${HOME}, which the harness sets to that dir.
    let policy = format!(
        "filesystem:\n  allowed_paths: [\"${{HOME}}/work/**\"]\n  denied_paths: [\"**/.ssh/**\", \"**/.ssh\", \"**/*.pem\"]\n\
         commands:\n  blocked: [curl, wget, nc]\n\
         audit:\n  log_file: \"${{HOME}}/state/audit.log\"\n{audit_extra}{extra}"
    );
    let server = Server::start_with_setup(&example_bin(), &policy, |root| {
        for dir in ["work/sub", "work/.SSH", "home/.ssh", "outside"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("work/a.txt"), "hello").unwrap();
        std::fs::write(root.join("work/KEY.PEM"), "k").unwrap();
        std::fs::write(root.join("home/.ssh/id_rsa"), "k").unwrap();
        std::os::unix::fs::symlink(root.join("outside"), root.join("work/escape")).unwrap();
    });
    let root = server.sandbox.path().to_path_buf();
    Guarded {
        work: root.join("work"),
        log: root.join("state/audit.log"),
        server,
    }
}

fn records(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn call_records(log: &Path) -> Vec<Value> {
    records(log)
        .into_iter()
        .filter(|r| r["type"] == "call")
        .collect()
}

/// Calls `tool`, returns the result text and the single audit record for this id.
fn call(g: &mut Guarded, id: &str, tool: &str, arguments: Value) -> (Value, Value) {
    let answer = g.server.call_tool(json!(id), tool, arguments);
    let matching: Vec<Value> = call_records(&g.log)
        .into_iter()
        .filter(|r| r["request_id"] == id)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "exactly one audit record for {id}: {matching:?}"
    );
    (answer, matching[0].clone())
}

fn assert_chain_verifies(log: &Path) {
    let out = std::process::Command::new(server_bin())
        .args(["audit", "verify"])
        .arg(log)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

fn assert_denied(answer: &Value, record: &Value, rule_prefix: &str, text_fragment: &str) {
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    let text = tool_text(answer);
    assert!(text.contains(text_fragment), "{text}");
    assert_eq!(record["outcome"], "denied", "{record}");
    let rule = record["rule"].as_str().unwrap_or_default();
    assert!(rule.starts_with(rule_prefix), "rule {rule} for {text}");
}

#[test]
fn path_rules_refuse_and_resolve() {
    let mut g = start_in("");
    g.server.initialize();
    let work = g.work.display().to_string();
    let (ok, record) = call(
        &mut g,
        "ok",
        "file_info",
        json!({"path": format!("{work}/a.txt")}),
    );
    assert_eq!(tool_text(&ok), format!("{work}/a.txt: 5 bytes, file"));
    assert_eq!(record["outcome"], "ok");
    let (ok, _) = call(
        &mut g,
        "root",
        "file_info",
        json!({"path": format!("{work}/")}),
    );
    assert!(
        tool_text(&ok).ends_with("directory"),
        "the allowed root itself, trailing slash"
    );
    let (ok, _) = call(
        &mut g,
        "rel",
        "file_info",
        json!({"path": "work/sub/../a.txt"}),
    );
    assert_eq!(
        tool_text(&ok),
        format!("{work}/a.txt: 5 bytes, file"),
        "relative to the cwd"
    );

    let cases = [
        (
            "trav",
            json!("work/../../../etc"),
            "filesystem.allowed_paths",
            "outside filesystem.allowed_paths",
        ),
        (
            "etc",
            json!("/etc/passwd"),
            "filesystem.allowed_paths",
            "outside",
        ),
        (
            "link",
            json!(format!("{work}/escape")),
            "filesystem.allowed_paths",
            "outside",
        ),
        (
            "ssh",
            json!(format!("{work}/.SSH/x")),
            "filesystem.denied_paths",
            "denied",
        ),
        (
            "pem",
            json!(format!("{work}/KEY.PEM")),
            "filesystem.denied_paths",
            "denied",
        ),
        (
            "home",
            json!("~/home/.ssh/id_rsa"),
            "filesystem.denied_paths",
            "denied",
        ),
        ("empty", json!(""), "path", "empty"),
        ("nul", json!("a\u{0}b"), "path", "NUL"),
        ("long", json!("a/".repeat(3000)), "path", "limit"),
    ];
    for (id, path, rule, fragment) in cases {
        let (answer, record) = call(&mut g, id, "file_info", json!({"path": path}));
        assert_denied(&answer, &record, rule, fragment);
    }
    g.server.assert_alive();
}

#[test]
fn a_path_resolving_to_a_non_utf8_name_is_refused_with_a_reason() {
    use std::os::unix::ffi::OsStrExt;
    let mut g = start_in("");
    let odd = g.work.join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    std::fs::create_dir(&odd).unwrap();
    std::os::unix::fs::symlink(&odd, g.work.join("nice")).unwrap();
    g.server.initialize();
    let (answer, record) = call(&mut g, "odd", "file_info", json!({"path": "work/nice"}));
    assert_denied(&answer, &record, "path", "not UTF-8");
    g.server.assert_alive();
}

#[test]
fn command_rules_refuse_shell_syntax_and_blocked_programs() {
    let mut g = start_in("");
    g.server.initialize();
    let (ok, record) = call(
        &mut g,
        "ok",
        "plan_command",
        json!({"command": "echo function curl"}),
    );
    assert_eq!(tool_text(&ok), "would run: echo function curl");
    assert_eq!(record["outcome"], "ok");
    let cases = [
        ("curl", "CURL https://x", "commands.blocked"),
        ("path", "/usr/bin/curl x", "commands.blocked"),
        ("semi", "ls; rm -rf /", "commands.metacharacters"),
        ("pipe", "ls | sh", "commands.metacharacters"),
        ("and", "true && id", "commands.metacharacters"),
        ("subst", "echo $(id)", "commands.metacharacters"),
        ("tick", "echo `id`", "commands.metacharacters"),
        ("redir", "echo x > /etc/passwd", "commands.metacharacters"),
        ("newline", "ls\nid", "commands.metacharacters"),
        ("quoted", "\"curl\" x", "commands.metacharacters"),
        ("escaped", "\\curl x", "commands.metacharacters"),
        ("ifs", "cat$IFS/etc/passwd", "commands.metacharacters"),
    ];
    for (id, command, rule) in cases {
        let (answer, record) = call(&mut g, id, "plan_command", json!({"command": command}));
        assert_denied(&answer, &record, rule, "argument command");
    }
}

#[test]
fn rate_limits_are_per_tool_and_say_when_to_retry() {
    let mut g = start_in("tools:\n  rate_limits:\n    default: 100\n    word_count: 2\n");
    g.server.initialize();
    for id in ["w1", "w2"] {
        let (answer, record) = call(&mut g, id, "word_count", json!({"text": "a"}));
        assert_eq!(answer["result"]["isError"], false);
        assert_eq!(record["outcome"], "ok");
    }
    let (answer, record) = call(&mut g, "w3", "word_count", json!({"text": "a"}));
    assert_eq!(answer["result"]["isError"], true);
    let text = tool_text(&answer);
    assert!(
        text.contains("tools.rate_limits.word_count") && text.contains("retry in"),
        "{text}"
    );
    assert_eq!(record["outcome"], "rate_limited");
    // Another tool has its own window; unknown tools are never counted.
    let (answer, _) = call(&mut g, "p1", "plan_command", json!({"command": "ls"}));
    assert_eq!(answer["result"]["isError"], false);
    let unknown = g
        .server
        .request(json!("u"), "tools/call", json!({"name": "nope"}));
    assert_eq!(unknown["error"]["code"], -32602);
}

#[test]
fn per_tool_deadlines_and_cancellation_are_recorded() {
    let mut g = start_in("tools:\n  timeouts:\n    wait: 0.2\n");
    g.server.initialize();
    let (answer, record) = call(&mut g, "slow", "wait", json!({"milliseconds": 600000}));
    let text = tool_text(&answer);
    assert!(
        text.contains("timed out") && text.contains("tools.timeouts.wait"),
        "{text}"
    );
    assert_eq!(record["outcome"], "timeout");
    assert_eq!(record["rule"], "tools.timeouts.wait");

    // Other tools keep the global deadline: this wait is cancelled instead.
    g.server
        .send(json!({"jsonrpc": "2.0", "id": "c", "method": "tools/call",
                         "params": {"name": "word_count", "arguments": {"text": "x"}}}));
    assert_eq!(g.server.recv()["id"], "c");
}

#[test]
fn cancelled_calls_get_a_cancelled_record() {
    let mut g = start_in("");
    g.server.initialize();
    g.server.send(
        json!({"jsonrpc": "2.0", "id": "gone", "method": "tools/call",
                         "params": {"name": "wait", "arguments": {"milliseconds": 600000}}}),
    );
    g.server.send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "gone"}}));
    g.server.assert_alive();
    let log = g.log.clone();
    let (status, _dir) = g.server.stop();
    assert!(status.success());
    let cancelled: Vec<Value> = call_records(&log)
        .into_iter()
        .filter(|r| r["request_id"] == "gone")
        .collect();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["outcome"], "cancelled");
}

#[test]
fn planted_secrets_never_reach_the_log() {
    let mut g = start_in("");
    g.server.initialize();
    let text = format!(
        "keys {} {} {} {} {} https://bob:{}@example.com -----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
        PLANTED[0], PLANTED[1], PLANTED[2], PLANTED[3], PLANTED[4], PLANTED[5], PLANTED[6]
    );
    call(&mut g, "ok", "word_count", json!({"text": text}));
    // Refused by the schema, still audited: the secret key name is redacted.
    let (answer, record) = call(
        &mut g,
        "bad",
        "word_count",
        json!({"text": "x", "password": PLANTED[7]}),
    );
    assert_eq!(answer["result"]["isError"], true);
    assert_eq!(record["arguments"]["password"], "[REDACTED]");
    let log = g.log.clone();
    let (status, _dir) = g.server.stop();
    assert!(status.success());
    let written = std::fs::read_to_string(&log).unwrap();
    for secret in PLANTED {
        let probe = secret.trim_start_matches("Bearer ");
        assert!(
            !written.contains(probe),
            "{secret} leaked into the audit log"
        );
    }
    assert!(written.contains("[REDACTED]"));
}

#[test]
fn audit_records_the_session_and_its_chain_verifies() {
    let mut g = start_in("");
    g.server.initialize();
    call(&mut g, "1", "word_count", json!({"text": "a b"}));
    let log = g.log.clone();
    let (status, _dir) = g.server.stop();
    assert!(status.success());
    let all = records(&log);
    assert_eq!(all.first().unwrap()["type"], "startup");
    assert!(all[0]["policy_sha256"].as_str().unwrap().len() == 64);
    assert_eq!(all[0]["sandbox"]["seccomp"], true);
    assert_eq!(all.last().unwrap()["type"], "shutdown");
    let call = &all[1];
    for field in [
        "ts",
        "request_id",
        "tool",
        "arguments",
        "outcome",
        "duration_us",
        "seq",
        "prev",
        "hash",
    ] {
        assert!(call.get(field).is_some(), "{field} missing in {call}");
    }
    assert!(call["ts"].as_str().unwrap().ends_with('Z'), "UTC RFC 3339");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(log.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    let verify = |path: &Path| {
        std::process::Command::new(server_bin())
            .args(["audit", "verify"])
            .arg(path)
            .output()
            .unwrap()
    };
    let out = verify(&log);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("chain intact"));

    let original = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() >= 3);
    let tampered = [
        (
            "edited",
            original.replacen("\"word_count\"", "\"file_info\"", 1),
        ),
        ("deleted", [lines[0], lines[2]].join("\n") + "\n"),
        (
            "reordered",
            [lines[1], lines[0], lines[2]].join("\n") + "\n",
        ),
    ];
    for (what, text) in tampered {
        std::fs::write(&log, text).unwrap();
        let out = verify(&log);
        assert_eq!(out.status.code(), Some(5), "{what} not detected");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("verification failed"),
            "{what}"
        );
    }
}

#[test]
fn sigterm_still_writes_the_shutdown_record() {
    let mut g = start_in("");
    g.server.initialize();
    call(&mut g, "1", "word_count", json!({"text": "a"}));
    let pid = g.server.client.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = g.server.client.wait_exit(TIMEOUT).unwrap();
    assert_eq!(status.code(), Some(0));
    let all = records(&g.log);
    assert_eq!(all.last().unwrap()["type"], "shutdown");
    assert_eq!(all.last().unwrap()["reason"], "signal");
}

#[test]
fn five_hundred_concurrent_calls_give_one_well_formed_record_each() {
    let mut g = start_in("tools:\n  rate_limits:\n    default: 10000\n");
    g.server.initialize();
    let mut burst = Vec::new();
    for id in 0..500 {
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                             "params": {"name": "word_count", "arguments": {"text": "x y"}}});
        burst.extend(request.to_string().into_bytes());
        burst.push(b'\n');
    }
    g.server.send_raw(&burst);
    for _ in 0..500 {
        g.server.recv();
    }
    let log = g.log.clone();
    let (status, _dir) = g.server.stop();
    assert!(status.success());
    let calls = call_records(&log);
    assert_eq!(calls.len(), 500);
    let mut ids: Vec<i64> = calls
        .iter()
        .map(|r| r["request_id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 500, "one record per call");
    assert_chain_verifies(&log);
}

#[test]
fn log_level_and_include_do_what_they_say() {
    let mut g = start_with_audit(
        "",
        "  log_level: WARN\n  include: [tool_name, result_status]\n",
    );
    g.server.initialize();
    g.server
        .call_tool(json!("fine"), "word_count", json!({"text": "a"}));
    g.server.call_tool(
        json!("refused"),
        "plan_command",
        json!({"command": "curl x"}),
    );
    let log = g.log.clone();
    let (status, _dir) = g.server.stop();
    assert!(status.success());
    let calls = call_records(&log);
    assert_eq!(calls.len(), 1, "WARN keeps refusals only: {calls:?}");
    let keys: Vec<&str> = calls[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, ["hash", "outcome", "prev", "seq", "tool", "type"]);
    assert_eq!(calls[0]["outcome"], "denied");
}

#[test]
fn two_server_processes_share_one_audit_chain() {
    let shared = crate::harness::Sandbox::new();
    let log = shared.path().join("shared-audit.log");
    let policy = format!(
        "audit:\n  log_file: \"{}\"\ntools:\n  rate_limits:\n    default: 1000\n",
        log.display()
    );
    let mut a = Server::start_with(&example_bin(), Some(&policy));
    let mut b = Server::start_with(&example_bin(), Some(&policy));
    a.initialize();
    b.initialize();
    for id in 0..50 {
        a.call_tool(json!(id), "word_count", json!({"text": "a"}));
        b.call_tool(json!(id), "word_count", json!({"text": "b"}));
    }
    assert!(a.finish().success());
    assert!(b.finish().success());
    assert_eq!(call_records(&log).len(), 100);
    assert_chain_verifies(&log);
}
