//! External plugins through the real binary, in seccomp kill mode: the shipped examples (Rust,
//! Node.js, Python), escapes refused with the errno of the layer that refuses them, misbehaving
//! plugins stopped with clear errors, no process left behind, and manifests that ask for too
//! much refused at start-up.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest;

use crate::harness::{Server, example, server_bin, tool_text};

const EACCES: &str = "errno=13";
const EPERM: &str = "errno=1";

/// The repository's example plugins.
fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plugins")
}

/// A policy serving only the external plugins listed, with `~/work` allowed.
fn policy(external: &[String]) -> String {
    let list: Vec<String> = external
        .iter()
        .map(|e| format!("    - \"{e}\"\n"))
        .collect();
    format!(
        "filesystem:\n  allowed_paths: [\"~/work/**\"]\nplugins:\n  web_search: {{enabled: false}}\n  bugtracker: {{enabled: false}}\n  external:\n{}",
        list.concat()
    )
}

/// A manifest for the `plugin_probe` helper with `tools` and extra top-level YAML.
fn probe_manifest(dir: &Path, name: &str, tools: &[&str], extra: &str) -> PathBuf {
    let plugin_dir = dir.join("plugins").join(name);
    std::fs::create_dir_all(&plugin_dir).unwrap();
    let mut yaml = format!(
        "name: {name}\nversion: \"0.1\"\ntype: external\nexecutable: {}\ntools:\n",
        example("plugin_probe").display()
    );
    for tool in tools {
        yaml.push_str(&format!(
            "  - name: {tool}\n    description: probe {tool}\n    input_schema:\n      type: object\n      properties:\n        pid_dir: {{type: string}}\n        children: {{type: integer}}\n        secret: {{type: string}}\n        target_pid: {{type: integer}}\n        file: {{type: string, format: path}}\n        outside_dir: {{type: string}}\n        symlink: {{type: string}}\n        granted_dir: {{type: string}}\n"
        ));
    }
    yaml.push_str(extra);
    let path = plugin_dir.join("manifest.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn start(external: &[String], setup: impl FnOnce(&Path), env: &[(String, String)]) -> Server {
    let mut server = Server::launch_with(&server_bin(), Some(&policy(external)), setup, env);
    server.initialize();
    server
}

fn is_error(response: &Value) -> bool {
    response["result"]["isError"] == json!(true)
}

#[test]
fn the_shipped_examples_work_in_the_sandbox() {
    let rust_manifest = |dir: &Path| {
        let shipped =
            std::fs::read_to_string(examples_dir().join("rust-hash/manifest.yaml")).unwrap();
        let built = example("calculate_hash");
        let manifest = shipped.replace(
            "../../../target/release/examples/calculate_hash",
            built.to_str().unwrap(),
        );
        assert_ne!(
            manifest, shipped,
            "the shipped manifest names the release build"
        );
        std::fs::create_dir_all(dir.join("rust")).unwrap();
        std::fs::write(dir.join("rust/manifest.yaml"), manifest).unwrap();
    };
    let examples = examples_dir();
    let external = [
        "~/rust/manifest.yaml".to_owned(),
        format!("{}/node-format-json/manifest.yaml", examples.display()),
        format!("{}/python-*/manifest.yaml", examples.display()),
    ];
    let mut server = start(&external, rust_manifest, &[]);

    let input = "hello world";
    let expected = [
        ("sha256", hex(&sha2::Sha256::digest(input))),
        ("sha512", hex(&sha2::Sha512::digest(input))),
        (
            "blake3",
            blake3::hash(input.as_bytes()).to_hex().to_string(),
        ),
    ];
    for (i, (algorithm, digest)) in expected.iter().enumerate() {
        let response = server.call_tool(
            json!(i),
            "calculate_hash",
            json!({"algorithm": algorithm, "input": input}),
        );
        assert!(!is_error(&response), "{response}");
        assert_eq!(tool_text(&response), format!("{algorithm}: {digest}"));
    }
    assert!(
        expected[0].1.starts_with("b94d27b9934d3e08"),
        "the original README's value"
    );
    let refused = server.call_tool(
        json!(10),
        "calculate_hash",
        json!({"algorithm": "md5", "input": input}),
    );
    assert!(
        is_error(&refused),
        "schema enum checked before the process starts"
    );

    let formatted = server.call_tool(
        json!(11),
        "format_json",
        json!({"input": "{\"a\":[1,{\"b\":null}]}"}),
    );
    assert_eq!(
        tool_text(&formatted),
        "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ]\n}"
    );
    let bad_json = server.call_tool(json!(12), "format_json", json!({"input": "{"}));
    assert!(is_error(&bad_json), "the plugin's own error: {bad_json}");

    for id in 13..15 {
        let stats = server.call_tool(json!(id), "text_stats", json!({"text": "one two\nthree"}));
        assert_eq!(
            tool_text(&stats),
            "lines: 2, words: 3, characters: 13",
            "persistent mode, call {id}"
        );
    }
    let categories = server.call_tool(json!(20), "list_categories", json!({}));
    let text = tool_text(&categories);
    for name in ["my-rust-tools", "node-json", "python-text"] {
        assert!(text.contains(name), "{name} is a category: {text}");
    }
    server.assert_alive();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn escapes_are_refused_by_the_layer_that_owns_them() {
    let setup = |dir: &Path| {
        std::fs::write(dir.join("secret.txt"), "top secret").unwrap();
        std::fs::create_dir_all(dir.join("outside")).unwrap();
        std::fs::create_dir_all(dir.join("work/granted")).unwrap();
        std::os::unix::fs::symlink(dir.join("secret.txt"), dir.join("work/granted/link")).unwrap();
        probe_manifest(
            dir,
            "probe",
            &["escape"],
            "sandbox:\n  write: [\"~/work/granted\"]\n  env: [PROBE_PASS, \"PROBE_SET=1\", PROBE_UNSET]\n",
        );
        probe_manifest(
            dir,
            "forker",
            &["escape_forking"],
            "sandbox:\n  limits: {processes: 4}\n",
        );
    };
    let env = [
        ("PROBE_PASS".to_owned(), "x".to_owned()),
        ("SECRET_TOKEN".to_owned(), "hunter2".to_owned()),
    ];
    let mut server = start(&["~/plugins/*/manifest.yaml".to_owned()], setup, &env);
    let home = server.sandbox.path().to_owned();
    let arguments = json!({
        "secret": home.join("secret.txt"),
        "outside_dir": home.join("outside"),
        "symlink": home.join("work/granted/link"),
        "granted_dir": home.join("work/granted"),
    });
    let response = server.call_tool(json!(1), "escape", arguments.clone());
    let report: Value =
        serde_json::from_str(&tool_text(&response)).unwrap_or_else(|e| panic!("{e}: {response}"));
    let expected = [
        // Landlock: the plugin's layer grants only its own paths.
        ("read_secret", EACCES),
        ("write_outside", EACCES),
        ("follow_symlink", EACCES),
        ("server_environ", EACCES),
        ("server_mem", EACCES),
        // The control: what the manifest grants works.
        ("write_granted", "ok"),
        // seccomp: the plugin's filter (and the server's answers for the plugin runtime).
        ("socket_inet", EPERM),
        ("socket_inet6", EPERM),
        ("socket_netlink", EPERM),
        ("socket_packet", EPERM),
        ("socket_unix", EPERM),
        ("socketpair_datagram", EPERM),
        ("socketpair_stream", "ok"),
        ("prlimit_server", EPERM),
        // No processes unless the manifest allows them (seccomp)...
        ("fork", EPERM),
        ("exec_sh", EPERM),
        ("ptrace_server", EPERM),
        ("userns", EPERM),
        ("io_uring", EPERM),
        ("setsid", EPERM),
        // Landlock signal scoping.
        ("signal_server", EPERM),
        ("no_new_privs", "1"),
        ("seccomp", "2"),
        ("env", "PROBE_PASS,PROBE_SET"),
    ];
    for (probe, want) in expected {
        assert_eq!(report[probe], json!(want), "{probe}: {report}");
    }
    assert_eq!(report["capabilities"], json!(0), "{report}");
    assert!(home.join("work/granted/written").exists());
    // ...and with processes allowed, Landlock still refuses to execute anything but the plugin.
    let forking = server.call_tool(json!(2), "escape_forking", arguments.clone());
    let report: Value =
        serde_json::from_str(&tool_text(&forking)).unwrap_or_else(|e| panic!("{e}: {forking}"));
    assert_eq!(report["fork"], json!("ok"), "{report}");
    assert_eq!(report["exec_sh"], json!(EACCES), "{report}");
    assert_eq!(report["read_secret"], json!(EACCES), "{report}");
    assert_eq!(report["socket_inet"], json!(EPERM), "{report}");
    assert_eq!(report["env"], json!(""), "{report}");
    assert!(!home.join("outside/escaped").exists());
    server.assert_alive();

    // Control: the same probe outside any sandbox succeeds where the sandbox refused, so the
    // refusals above come from the sandbox and not from the test's set-up.
    let mut target = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let mut arguments = arguments;
    arguments["target_pid"] = json!(target.id());
    let mut direct = std::process::Command::new(example("plugin_probe"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let request = json!({"tool": "escape", "arguments": arguments});
    writeln!(direct.stdin.take().unwrap(), "{request}").unwrap();
    let output = direct.wait_with_output().unwrap();
    target.kill().unwrap();
    target.wait().unwrap();
    let line: Value = serde_json::from_slice(&output.stdout).unwrap();
    let control: Value =
        serde_json::from_str(line["content"][0]["text"].as_str().unwrap()).unwrap();
    for probe in [
        "read_secret",
        "write_outside",
        "follow_symlink",
        "socket_inet",
        "socket_unix",
        "fork",
        "exec_sh",
        "ptrace_server",
        "signal_server",
        "socketpair_datagram",
        "prlimit_server",
    ] {
        assert_eq!(control[probe], json!("ok"), "control {probe}: {control}");
    }
    assert_eq!(control["seccomp"], json!("0"), "{control}");
    drop(server);
}

/// Whether process `pid` still exists (a zombie counts: it was not reaped).
fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn wait_until_gone(pids: &[i32]) -> Vec<i32> {
    let deadline = Instant::now() + crate::harness::TIMEOUT;
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_hanging_plugin_and_its_children_are_killed_at_its_deadline() {
    let setup = |dir: &Path| {
        std::fs::create_dir_all(dir.join("work/pids")).unwrap();
        probe_manifest(
            dir,
            "sleepy",
            &["hang", "orphan"],
            "sandbox:\n  timeout: 1\n  write: [\"~/work/pids\"]\n  limits: {processes: 8}\n",
        );
    };
    let mut server = start(&["~/plugins/sleepy/manifest.yaml".to_owned()], setup, &[]);
    let pid_dir = server.sandbox.path().join("work/pids");
    let response = server.call_tool(json!(1), "hang", json!({"pid_dir": pid_dir, "children": 2}));
    assert!(is_error(&response), "{response}");
    let text = tool_text(&response);
    assert!(
        text.contains("did not answer within 1.0 s") && text.contains("process group"),
        "{text}"
    );
    let pids: Vec<i32> = std::fs::read_dir(&pid_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect();
    assert_eq!(
        pids.len(),
        3,
        "the plugin and two children wrote their pids"
    );
    assert_eq!(wait_until_gone(&pids), Vec::<i32>::new(), "no survivor");
    server.assert_alive();

    // A plugin that answers and exits, leaving children behind: they go with it.
    for pid in &pids {
        std::fs::remove_file(pid_dir.join(pid.to_string())).unwrap();
    }
    let response = server.call_tool(
        json!(2),
        "orphan",
        json!({"pid_dir": pid_dir, "children": 2}),
    );
    assert_eq!(tool_text(&response), "2", "{response}");
    let children: Vec<i32> = std::fs::read_dir(&pid_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect();
    assert_eq!(children.len(), 2);
    assert_eq!(wait_until_gone(&children), Vec::<i32>::new(), "no orphan");
}

#[test]
fn misbehaving_plugins_get_clear_errors_and_the_server_keeps_serving() {
    let tools = ["garbage", "flood", "fail", "crash", "silent"];
    let setup = |dir: &Path| {
        probe_manifest(dir, "bad", &tools, "");
    };
    let mut server = start(&["~/plugins/bad/manifest.yaml".to_owned()], setup, &[]);
    let expected = [
        ("garbage", "not one JSON object"),
        (
            "flood",
            "more than 1048576 bytes (sandbox.limits.output_bytes)",
        ),
        ("fail", "exited with status 3"),
        ("crash", "killed by signal 6 (SIGABRT)"),
        ("silent", "printed nothing"),
    ];
    for (i, (tool, wanted)) in expected.iter().enumerate() {
        let response = server.call_tool(json!(i), tool, json!({}));
        assert!(is_error(&response), "{tool}: {response}");
        let text = tool_text(&response);
        assert!(
            text.starts_with("plugin \"bad\"") && text.contains(wanted),
            "{tool}: {text}"
        );
        server.assert_alive();
    }
    let failed = server.call_tool(json!(9), "fail", json!({}));
    let text = tool_text(&failed);
    assert!(
        text.contains("it said: half done") && text.contains("stderr: probe: something broke"),
        "{text}"
    );
    let (_, stderr) = server.finish_with_stderr();
    assert!(
        stderr.contains("plugin stderr") && stderr.contains("something broke"),
        "stderr goes to the server log: {stderr}"
    );
}

#[test]
fn a_persistent_plugin_is_reused_and_restarted_after_it_dies() {
    let setup = |dir: &Path| {
        probe_manifest(
            dir,
            "keeper",
            &["pid", "crash", "twice"],
            "mode: persistent\n",
        );
    };
    let mut server = start(&["~/plugins/keeper/manifest.yaml".to_owned()], setup, &[]);
    let pid = |server: &mut Server, id| tool_text(&server.call_tool(json!(id), "pid", json!({})));
    let first = pid(&mut server, 1);
    assert_eq!(pid(&mut server, 2), first, "one process serves every call");
    let crashed = server.call_tool(json!(3), "crash", json!({}));
    let text = tool_text(&crashed);
    assert!(
        text.contains("SIGABRT") && text.contains("restarted on the next call"),
        "{text}"
    );
    let second = pid(&mut server, 4);
    assert_ne!(second, first, "a new process after the crash");
    assert!(!alive(first.parse().unwrap()), "the dead one was reaped");
    // An extra answer line is never handed to the next call: the process is replaced.
    let twice = server.call_tool(json!(5), "twice", json!({}));
    assert_eq!(tool_text(&twice), "first");
    let second = {
        let third = pid(&mut server, 6);
        assert!(third.parse::<i32>().is_ok(), "not the stale line: {third}");
        assert_ne!(third, second, "restarted after the stray line");
        third
    };
    let (status, _) = server.finish_with_stderr();
    assert!(status.success());
    assert_eq!(
        wait_until_gone(&[second.parse().unwrap()]),
        Vec::<i32>::new(),
        "the live plugin ends with the server"
    );
}

#[test]
fn manifests_that_ask_for_too_much_refuse_to_start() {
    let cases: [(&str, &str, &str); 4] = [
        (
            "sandbox:\n  write: [\"/etc\"]\n",
            "sandbox.write[0]",
            "outside what the policy allows",
        ),
        (
            "sandbox:\n  read: [\"~/secret\"]\n",
            "sandbox.read[0]",
            "outside what the policy allows",
        ),
        (
            "sandbox:\n  limits: {output_bytes: 0}\n",
            "sandbox.limits.output_bytes",
            "out of range",
        ),
        ("sandbox:\n  networking: true\n", "sandbox", "unknown field"),
    ];
    // A manifest in the home directory would let its plugin read all of it.
    let in_home = Server::launch_with(
        &server_bin(),
        Some(&policy(&["~/manifest.yaml".to_owned()])),
        |dir| {
            let written = probe_manifest(dir, "p", &["pid"], "");
            std::fs::copy(written, dir.join("manifest.yaml")).unwrap();
        },
        &[],
    );
    let (status, stderr) = in_home.finish_with_stderr();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("a directory of its own"), "{stderr}");
    for (extra, key, message) in cases {
        let server = Server::launch_with(
            &server_bin(),
            Some(&policy(&["~/plugins/p/manifest.yaml".to_owned()])),
            |dir| {
                std::fs::create_dir_all(dir.join("secret")).unwrap();
                probe_manifest(dir, "p", &["pid"], extra);
            },
            &[],
        );
        let (status, stderr) = server.finish_with_stderr();
        assert_eq!(status.code(), Some(2), "{extra}: {stderr}");
        assert!(
            stderr.contains("manifest.yaml: ") && stderr.contains(key) && stderr.contains(message),
            "{extra}: {stderr}"
        );
    }
    let collision = Server::launch_with(
        &server_bin(),
        Some(&policy(&["~/plugins/p/manifest.yaml".to_owned()])),
        |dir| {
            probe_manifest(dir, "p", &["search_tools"], "");
        },
        &[],
    );
    let (status, stderr) = collision.finish_with_stderr();
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("\"search_tools\" is defined by both \"discovery\" and \"p\""),
        "{stderr}"
    );
}

/// Waits for the first pid file in `dir`.
fn wait_for_pid(dir: &Path) -> i32 {
    let deadline = Instant::now() + crate::harness::TIMEOUT;
    loop {
        let found = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .next();
        if let Some(pid) = found {
            return pid;
        }
        assert!(Instant::now() < deadline, "the plugin never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cancelling_a_call_or_killing_the_server_kills_the_plugin() {
    let setup = |dir: &Path| {
        std::fs::create_dir_all(dir.join("work/pids")).unwrap();
        probe_manifest(
            dir,
            "sleepy",
            &["hang"],
            "sandbox:\n  write: [\"~/work/pids\"]\n",
        );
    };
    let mut server = start(&["~/plugins/sleepy/manifest.yaml".to_owned()], setup, &[]);
    let pid_dir = server.sandbox.path().join("work/pids");
    let hang = |id: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "hang", "arguments": {"pid_dir": pid_dir}}})
    };

    server.send(hang(1));
    let plugin = wait_for_pid(&pid_dir);
    server.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                       "params": {"requestId": 1, "reason": "test"}}),
    );
    assert_eq!(wait_until_gone(&[plugin]), Vec::<i32>::new(), "cancelled");
    server.assert_alive();

    std::fs::remove_file(pid_dir.join(plugin.to_string())).unwrap();
    server.send(hang(2));
    let plugin = wait_for_pid(&pid_dir);
    let server_pid = rustix::process::Pid::from_raw(server.client.pid() as i32).unwrap();
    rustix::process::kill_process(server_pid, rustix::process::Signal::KILL).unwrap();
    assert_eq!(
        wait_until_gone(&[plugin]),
        Vec::<i32>::new(),
        "the parent-death signal ends the plugin with the server"
    );
}

#[test]
fn arguments_pass_the_guardrails_before_the_plugin_starts() {
    let setup = |dir: &Path| {
        std::fs::create_dir_all(dir.join("work")).unwrap();
        probe_manifest(dir, "guarded", &["pid"], "");
    };
    let mut server = start(&["~/plugins/guarded/manifest.yaml".to_owned()], setup, &[]);
    let home = server.sandbox.path().to_owned();
    let allowed = server.call_tool(json!(1), "pid", json!({"file": home.join("work")}));
    assert!(!is_error(&allowed), "{allowed}");
    let refused = server.call_tool(json!(2), "pid", json!({"file": "/etc/passwd"}));
    assert!(is_error(&refused), "{refused}");
    assert!(
        tool_text(&refused).contains("filesystem.allowed_paths"),
        "{refused}"
    );
    let unknown = server.call_tool(json!(3), "pid", json!({"nope": 1}));
    assert!(is_error(&unknown), "closed schema: {unknown}");
    let (_, sandbox) = server.stop();
    let log =
        std::fs::read_to_string(sandbox.path().join("state/mcp-secure-server/audit.log")).unwrap();
    let outcomes: Vec<(Value, Value)> = log
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|record| record["type"] == "call")
        .map(|record| (record["request_id"].clone(), record["outcome"].clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (json!(1), json!("ok")),
            (json!(2), json!("denied")),
            (json!(3), json!("denied")),
        ]
    );
}

#[test]
fn a_grant_swapped_for_a_symlink_after_start_up_is_refused() {
    let setup = |dir: &Path| {
        std::fs::create_dir_all(dir.join("work/ref")).unwrap();
        std::fs::create_dir_all(dir.join("work/other")).unwrap();
        probe_manifest(
            dir,
            "reader",
            &["pid"],
            "sandbox:\n  read: [\"~/work/ref\"]\n",
        );
    };
    let mut server = start(&["~/plugins/reader/manifest.yaml".to_owned()], setup, &[]);
    let work = server.sandbox.path().join("work");
    let before = server.call_tool(json!(1), "pid", json!({}));
    assert!(!is_error(&before), "{before}");
    std::fs::remove_dir(work.join("ref")).unwrap();
    std::os::unix::fs::symlink(work.join("other"), work.join("ref")).unwrap();
    let after = server.call_tool(json!(2), "pid", json!({}));
    assert!(
        tool_text(&after).contains("could not be started in its sandbox"),
        "{after}"
    );
    let (_, stderr) = server.finish_with_stderr();
    assert!(stderr.contains("without following symlinks"), "{stderr}");
}
