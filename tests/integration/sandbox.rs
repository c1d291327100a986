//! The kernel sandbox, proven by the errno the kernel returns.
//!
//! `sandbox_probe` applies exactly what the server applies (same loader, plan and `apply`) and
//! then tries forbidden operations. CI runs as root, so Unix permissions would allow all of
//! them: a denial here can only come from the sandbox. Every denial has a control run with
//! `sandbox.mode: off` in which the same operation succeeds.

use std::collections::HashMap;
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

use serde_json::{Value, json};

use crate::harness::{Sandbox, Server, example, server_bin, stdout_of_success};

const EACCES: &str = "errno=13";
const EPERM: &str = "errno=1";
const EXDEV: &str = "errno=18";

/// A temp tree: a planted secret in `home`, an allowed `work` directory (with a symlink to the
/// secret), an `outside` directory, and listeners the probe may or may not reach.
struct World {
    sandbox: Sandbox,
    allowed_port: u16,
    _allowed: TcpListener,
    denied_port: u16,
    _denied: TcpListener,
    abstract_name: String,
    _abstract: UnixListener,
    _named: UnixListener,
}

impl World {
    fn new() -> Self {
        let sandbox = Sandbox::new();
        let root = sandbox.path();
        std::fs::create_dir_all(root.join("home/.ssh")).unwrap();
        std::fs::create_dir_all(root.join("work/sub")).unwrap();
        std::fs::create_dir_all(root.join("outside")).unwrap();
        std::fs::write(root.join("home/.ssh/id_rsa"), "SECRET").unwrap();
        std::fs::write(root.join("work/ok.txt"), "fine").unwrap();
        std::fs::write(root.join("work/move-me.txt"), "move").unwrap();
        std::os::unix::fs::symlink(root.join("home/.ssh/id_rsa"), root.join("work/link")).unwrap();
        let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
        let denied = TcpListener::bind("127.0.0.1:0").unwrap();
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let abstract_name = format!("mcp-secure-server-test-{}-{unique}", std::process::id());
        let address = SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
        let abstract_listener = UnixListener::bind_addr(&address).unwrap();
        let named = UnixListener::bind(root.join("outside/daemon.sock")).unwrap();
        World {
            _named: named,
            allowed_port: allowed.local_addr().unwrap().port(),
            denied_port: denied.local_addr().unwrap().port(),
            _allowed: allowed,
            _denied: denied,
            abstract_name,
            _abstract: abstract_listener,
            sandbox,
        }
    }

    fn path(&self, relative: &str) -> String {
        self.sandbox.path().join(relative).display().to_string()
    }

    fn policy(&self, mode: &str) -> String {
        self.policy_with(mode, "errno")
    }

    fn policy_with(&self, mode: &str, seccomp_action: &str) -> String {
        format!(
            "filesystem:\n  allowed_paths: [\"{work}/**\"]\n  denied_paths: [\"**/.ssh/**\"]\n\
             audit:\n  log_file: \"{state}/audit.log\"\n\
             network:\n  allowed_endpoints:\n    - {{host: localhost, ports: [{port}]}}\n\
             sandbox:\n  mode: {mode}\n  seccomp_action: {seccomp_action}\n",
            work = self.path("work"),
            state = self.path("state"),
            port = self.allowed_port,
        )
    }

    /// Runs the probe with `ops` under the policy in `mode`; returns op → outcome.
    fn probe(&self, mode: &str, ops: &[String]) -> HashMap<String, String> {
        self.probe_with(mode, "errno", ops)
    }

    fn probe_with(&self, mode: &str, action: &str, ops: &[String]) -> HashMap<String, String> {
        let policy = self
            .sandbox
            .path()
            .join(format!("policy-{mode}-{action}.yaml"));
        std::fs::write(&policy, self.policy_with(mode, action)).unwrap();
        stdout_of_success(
            self.sandbox
                .command(&example("sandbox_probe"))
                .env("RUST_BACKTRACE", "1")
                .arg("--policy")
                .arg(&policy)
                .args(ops),
        )
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(op, outcome)| (op.to_owned(), outcome.to_owned()))
        .collect()
    }
}

#[test]
fn the_sandbox_denies_what_the_policy_does_not_grant() {
    let world = World::new();
    let me = std::process::id();
    // (operation, outcome under the sandbox, outcome without it)
    let cases: Vec<(String, &str, &str)> = vec![
        (format!("read:{}", world.path("work/ok.txt")), "ok", "ok"),
        (format!("write:{}", world.path("work/new.txt")), "ok", "ok"),
        (format!("connect:{}", world.allowed_port), "ok", "ok"),
        (
            format!("read:{}", world.path("home/.ssh/id_rsa")),
            EACCES,
            "ok",
        ),
        (format!("list:{}", world.path("home")), EACCES, "ok"),
        (format!("read:{}", world.path("work/link")), EACCES, "ok"),
        (
            format!("write:{}", world.path("outside/planted")),
            EACCES,
            "ok",
        ),
        (format!("mkdir:{}", world.path("outside/dir")), EACCES, "ok"),
        (
            format!(
                "rename:{}:{}",
                world.path("work/move-me.txt"),
                world.path("outside/moved")
            ),
            EACCES,
            "ok",
        ),
        (
            format!(
                "link:{}:{}",
                world.path("work/ok.txt"),
                world.path("outside/hard")
            ),
            EACCES,
            "ok",
        ),
        (
            format!(
                "link:{}:{}",
                world.path("home/.ssh/id_rsa"),
                world.path("work/stolen")
            ),
            EXDEV,
            "ok",
        ),
        (format!("connect:{}", world.denied_port), EACCES, "ok"),
        ("bind".to_owned(), EACCES, "ok"),
        (format!("abstract:{}", world.abstract_name), EPERM, "ok"),
        (
            format!("unix:{}", world.path("outside/daemon.sock")),
            EPERM,
            "ok",
        ),
        (format!("kill:{me}"), EPERM, "ok"),
        ("exec:/bin/true".to_owned(), EPERM, "ok"),
        ("userns".to_owned(), EPERM, "-"),
        ("io_uring".to_owned(), EPERM, "-"),
        ("ptrace".to_owned(), EPERM, "-"),
        ("panic".to_owned(), "ok", "ok"),
    ];
    let ops: Vec<String> = cases.iter().map(|(op, _, _)| op.clone()).collect();
    let sandboxed = world.probe("enforce", &ops);
    let control = World::new();
    let control_ops: Vec<String> = ops
        .iter()
        .map(|op| {
            op.replace(
                &world.sandbox.path().display().to_string(),
                &control.sandbox.path().display().to_string(),
            )
        })
        .map(|op| {
            op.replace(
                &world.allowed_port.to_string(),
                &control.allowed_port.to_string(),
            )
        })
        .map(|op| {
            op.replace(
                &world.denied_port.to_string(),
                &control.denied_port.to_string(),
            )
        })
        .map(|op| op.replace(&world.abstract_name, &control.abstract_name))
        .collect();
    let unsandboxed = control.probe("off", &control_ops);
    for ((op, expected, expected_without), control_op) in cases.iter().zip(&control_ops) {
        assert_eq!(
            sandboxed.get(op).map(String::as_str),
            Some(*expected),
            "sandboxed {op}"
        );
        if *expected_without != "-" {
            assert_eq!(
                unsandboxed.get(control_op).map(String::as_str),
                Some(*expected_without),
                "control run (sandbox off) {control_op}"
            );
        }
    }
}

#[test]
fn the_secret_stays_unread_through_every_path() {
    let world = World::new();
    let secret = world.path("home/.ssh/id_rsa");
    let through_dotdot = format!("{}/../home/.ssh/id_rsa", world.path("work"));
    let outcome = world.probe(
        "enforce",
        &[format!("read:{secret}"), format!("read:{through_dotdot}")],
    );
    assert!(outcome.values().all(|o| o == EACCES), "{outcome:?}");
}

#[test]
fn the_panic_path_and_allowed_work_survive_seccomp_kill_mode() {
    let world = World::new();
    let ops = vec![
        "panic".to_owned(),
        format!("read:{}", world.path("work/ok.txt")),
        format!("write:{}", world.path("work/sub/new.txt")),
        format!("connect:{}", world.allowed_port),
        format!("read:{}", world.path("home/.ssh/id_rsa")),
    ];
    let outcome = world.probe_with("enforce", "kill", &ops);
    assert_eq!(
        outcome.get("panic").map(String::as_str),
        Some("ok"),
        "{outcome:?}"
    );
    assert_eq!(outcome[&ops[1]], "ok");
    assert_eq!(outcome[&ops[2]], "ok");
    assert_eq!(outcome[&ops[3]], "ok");
    assert_eq!(
        outcome[&ops[4]], EACCES,
        "Landlock still answers with an errno"
    );
}

fn status_fields(status: &str) -> HashMap<String, String> {
    status
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn every_thread_of_the_serving_process_is_locked_down() {
    let mut server = Server::start();
    server.initialize();
    // Tool calls and pings make the runtime start its worker threads.
    for id in 0..20 {
        server.call_tool(json!(id), "list_categories", json!({}));
    }
    let pid = server.client.pid();
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .collect();
    assert!(
        tasks.len() >= 2,
        "expected worker threads, found {}",
        tasks.len()
    );
    for task in tasks {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap();
        let fields = status_fields(&status);
        let name = fields.get("Name").cloned().unwrap_or_default();
        assert_eq!(fields["NoNewPrivs"], "1", "thread {name}");
        assert_eq!(fields["Seccomp"], "2", "thread {name}");
        assert_eq!(
            fields["Seccomp_filters"], "1",
            "one filter (the allowlist, clone3 answered ENOSYS), thread {name}"
        );
        for set in ["CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"] {
            assert_eq!(fields[set], "0000000000000000", "{set} of thread {name}");
        }
    }
    server.assert_alive();
    assert!(server.finish().success());
}

#[test]
fn a_session_with_error_paths_survives_seccomp_kill_mode() {
    // Server::start runs the default policy with seccomp_action: kill: any system call missing
    // from the allowlist would kill the server here.
    let mut server = Server::start();
    server.send_raw(b"garbage\n\xff\xfe\n[1,2]\n");
    for _ in 0..3 {
        assert!(server.recv()["error"]["code"].is_i64());
    }
    server.initialize();
    let mut huge = vec![b'x'; 5 * 1024 * 1024];
    huge.push(b'\n');
    server.send_raw(&huge);
    assert_eq!(server.recv()["error"]["code"], -32600);
    assert_eq!(
        server.request(json!(1), "tools/call", json!({"name": "nope"}))["error"]["code"],
        -32602
    );
    let bad = server.call_tool(json!(2), "search_tools", json!({"detail_level": 7}));
    assert_eq!(bad["result"]["isError"], true);
    let good = server.call_tool(json!(3), "search_tools", json!({"detail_level": "full"}));
    assert_eq!(good["result"]["isError"], false);
    server.assert_alive();
    let (status, stderr) = server.finish_with_stderr();
    assert!(status.success(), "{status}\n{stderr}");
    assert!(stderr.contains("sandbox applied"), "{stderr}");
}

#[test]
fn enforce_mode_refuses_to_start_when_the_kernel_is_too_old_for_the_policy() {
    let sandbox = Sandbox::new();
    let policy = sandbox.policy("sandbox:\n  min_landlock_abi: 10\n");
    let out = sandbox
        .command(&server_bin())
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "exit code for an unenforceable sandbox"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("requires at least 10") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn best_effort_and_off_say_loudly_what_is_missing() {
    for (mode, expected) in [
        ("best-effort", "below sandbox.min_landlock_abi 10"),
        ("off", "sandbox.mode is off"),
    ] {
        let sandbox = Sandbox::new();
        let policy = sandbox.policy(&format!(
            "sandbox:\n  mode: {mode}\n  min_landlock_abi: 10\n"
        ));
        let mut command = sandbox.command(&server_bin());
        command
            .arg("--policy")
            .arg(&policy)
            .stdin(std::process::Stdio::null());
        let out = command.output().unwrap();
        assert!(out.status.success(), "{mode}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("WARN") && stderr.contains(expected),
            "{mode}: {stderr}"
        );
    }
}

#[test]
fn check_prints_the_plan_and_what_the_kernel_cannot_enforce() {
    let world = World::new();
    let policy = world.sandbox.path().join("p.yaml");
    std::fs::write(&policy, world.policy("enforce")).unwrap();
    let out = world
        .sandbox
        .command(&server_bin())
        .args(["check", "--json", "--policy"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan = &report["sandbox"];
    let grants: Vec<&str> = plan["fs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["path"].as_str().unwrap())
        .collect();
    assert!(grants.contains(&world.path("work").as_str()), "{grants:?}");
    assert!(
        grants.contains(&world.path("state/mcp-secure-server").as_str())
            || grants.contains(&world.path("state").as_str()),
        "{grants:?}"
    );
    assert_eq!(plan["tcp_connect"], json!([world.allowed_port]));
    assert_eq!(plan["tcp_bind"], json!([]));
    let syscalls = plan["syscalls"].as_array().unwrap();
    assert!(
        syscalls
            .iter()
            .all(|s| s["reason"].as_str().is_some_and(|r| !r.is_empty()))
    );
    assert!(
        plan["never"]
            .as_array()
            .unwrap()
            .contains(&json!("io_uring_setup"))
    );
    let warnings = report["warnings"].to_string();
    assert!(warnings.contains("no deny rules"), "{warnings}");

    let table = world
        .sandbox
        .command(&server_bin())
        .args(["check", "--policy"])
        .arg(&policy)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("seccomp allowlist") && text.contains("tcp connect:"),
        "{text}"
    );
}

#[test]
fn doctor_reports_the_kernel_and_the_verdict() {
    let sandbox = Sandbox::new();
    let out = sandbox
        .command(&server_bin())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // This machine (and CI) has Landlock ABI 7: a kernel without it must fail here, loudly,
    // rather than let the sandbox tests pass vacuously.
    assert!(
        report["kernel"]["landlock_abi"].as_i64().unwrap() >= 6,
        "{report}"
    );
    assert_eq!(report["kernel"]["seccomp_filter"], true);
    assert_eq!(
        report["verdict"],
        json!(["the policy can be enforced on this kernel"])
    );
    let text = sandbox
        .command(&server_bin())
        .arg("doctor")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("Landlock ABI"));
}

#[test]
fn an_emitted_filter_answers_in_the_kernel_as_its_table_does() {
    // `bpf_probe` installs a program with 32- and 64-bit argument checks and an x32 answer,
    // in either layout, then makes the calls: what the tests' interpreter predicts, the
    // kernel does.
    for long in [false, true] {
        let summary = probe_emitted_filter(long);
        let count = |key: &str| -> usize {
            summary
                .split(' ')
                .find_map(|field| field.strip_prefix(key))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {summary}"))
        };
        // The table has 60 scattered fixed answers: one return each inline, one in all shared.
        if long {
            assert!(count("jumps=") > 0 && count("returns=") > 60, "{summary}");
        } else {
            assert!(count("jumps=") == 0 && count("returns=") < 20, "{summary}");
        }
    }
}

/// Runs `bpf_probe`, checks every call, and returns its summary line.
fn probe_emitted_filter(long: bool) -> String {
    let sandbox = Sandbox::new();
    let mut command = sandbox.command(&example("bpf_probe"));
    if long {
        command.arg("--long");
    }
    let stdout = stdout_of_success(&mut command);
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.contains('\t'))
        .map(|l| l.split('\t').collect())
        .collect();
    assert!(lines.len() >= 16, "{stdout}");
    for line in &lines {
        assert_eq!(
            line[1], line[2],
            "{}: the table says {}, the kernel {}",
            line[0], line[1], line[2]
        );
    }
    let refused = lines.iter().filter(|l| l[2].starts_with("errno=")).count();
    assert!(refused >= 10 && refused < lines.len(), "{stdout}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.starts_with("instructions="), "{stdout}");
    summary.to_owned()
}

#[test]
fn the_capability_drop_fails_closed_when_the_kernel_stops_it_early() {
    // `capability_probe` makes PR_CAPBSET_DROP refuse CAP_SYS_ADMIN and above with EINVAL,
    // the answer that normally marks the end of the list: the read-back must catch it.
    let sandbox = Sandbox::new();
    let stdout = stdout_of_success(&mut sandbox.command(&example("capability_probe")));
    if stdout.trim() == "not-root" {
        // Only root can drop from the bounding set; CI runs as root.
        eprintln!("capability_probe needs root: nothing to check");
        return;
    }
    assert!(
        stdout.starts_with("error ")
            && stdout.contains("the bounding set still holds")
            && stdout.contains("CAP_SYS_ADMIN"),
        "{stdout}"
    );
}
