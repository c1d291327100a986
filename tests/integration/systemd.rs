//! The systemd units, the `connect` bridge, journal logging and the packaging commands.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcp_secure_server::client::StdioClient;
use serde_json::json;

use crate::harness::{BUILTIN_TOOLS, Sandbox, TIMEOUT, server_bin};

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd")
}

/// Copies the units of `dir` into `to`, pointing ExecStart at the binary under test.
fn install_units(dir: &Path, to: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text
                .replace(
                    "/usr/local/bin/mcp-secure-server",
                    server_bin().to_str().unwrap(),
                )
                .replace(
                    "%h/.cargo/bin/mcp-secure-server",
                    server_bin().to_str().unwrap(),
                );
            std::fs::write(to.join(entry.file_name()), text).unwrap();
        }
    }
}

fn systemd_analyze(args: &[&str], dir: &Path, runtime: &Path) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .current_dir(dir)
        .env("XDG_RUNTIME_DIR", runtime)
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed for the unit tests")
}

#[test]
fn the_units_verify_and_the_service_scores_at_most_1_5() {
    let sandbox = Sandbox::new();
    let system = sandbox.path().join("system");
    let user = sandbox.path().join("user");
    let runtime = sandbox.path().join("runtime");
    for dir in [&system, &user, &runtime] {
        std::fs::create_dir_all(dir).unwrap();
    }
    install_units(&units_dir(), &system);
    install_units(&units_dir().join("user"), &user);
    let units = ["mcp-secure-server.socket", "mcp-secure-server@.service"];

    let out = systemd_analyze(
        &[&["verify", "--man=no"][..], &units].concat(),
        &system,
        &runtime,
    );
    let report =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.trim().is_empty(),
        "system units: {report}"
    );
    let out = systemd_analyze(
        &[&["--user", "verify", "--man=no"][..], &units].concat(),
        &user,
        &runtime,
    );
    let report =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.trim().is_empty(),
        "user units: {report}"
    );

    let out = systemd_analyze(
        &["security", "--offline=true", "./mcp-secure-server@.service"],
        &system,
        &runtime,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split_once("Overall exposure level for")?
                .1
                .split_once(": ")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    eprintln!("systemd-analyze security exposure level: {score}");
    assert!(score <= 1.5, "exposure level {score} > 1.5");
}

/// The ExecStart of the system service, with the binary under test and a test policy.
fn exec_start(policy: &Path) -> Vec<String> {
    let unit = std::fs::read_to_string(units_dir().join("mcp-secure-server@.service")).unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    line.split_whitespace()
        .map(|word| match word {
            "/usr/local/bin/mcp-secure-server" => server_bin().display().to_string(),
            "/etc/mcp-secure-server/policy.yaml" => policy.display().to_string(),
            other => other.to_owned(),
        })
        .collect()
}

struct Activator(std::process::Child);

impl Drop for Activator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_socket_activated_session_works_through_connect() {
    let sandbox = Sandbox::new();
    let policy = sandbox.policy(&format!(
        "audit:\n  log_file: \"{}/audit-${{MCP_CONNECTION:-manual}}.log\"\nsandbox:\n  seccomp_action: kill\n",
        sandbox.path().join("logs").display()
    ));
    let socket = sandbox.path().join("mcp.sock");
    let command = exec_start(&policy);
    let _activator = Activator(
        Command::new("systemd-socket-activate")
            .args(["--accept", "--inetd", "-l"])
            .arg(&socket)
            .args(["-E", "MCP_CONNECTION=test-1"])
            .args(&command)
            .env("HOME", sandbox.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("systemd-socket-activate (Debian package systemd) is needed"),
    );
    let started = Instant::now();
    while !socket.exists() {
        assert!(started.elapsed() < TIMEOUT, "socket never appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut bridge = Command::new(server_bin());
    bridge.arg("connect").arg(&socket).stderr(Stdio::null());
    let mut client = StdioClient::spawn(bridge).unwrap();
    let init = client.initialize(TIMEOUT).unwrap();
    assert_eq!(init["protocolVersion"], "2025-11-25");
    let tools = client
        .call_method(json!(1), "tools/list", json!({}), TIMEOUT)
        .unwrap();
    assert_eq!(
        tools["tools"].as_array().unwrap().len(),
        BUILTIN_TOOLS.len()
    );
    let call = client
        .call_method(
            json!(2),
            "tools/call",
            json!({"name": "list_categories"}),
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(call["isError"], false);
    let status = client.finish(TIMEOUT).unwrap();
    assert!(
        status.success(),
        "the bridge exits 0 when the server closes"
    );
    // The per-connection audit log of the unit's environment was written.
    assert!(sandbox.path().join("logs/audit-test-1.log").exists());
}

#[test]
fn connect_explains_a_missing_socket() {
    let out = Command::new(server_bin())
        .args(["connect", "/nonexistent/mcp.sock"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no such socket") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn logs_carry_journal_priorities_when_stderr_is_the_journal() {
    let sandbox = Sandbox::new();
    let out = sandbox
        .command(&server_bin())
        .env("JOURNAL_STREAM", "8:12345")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("<6>") && l.contains("serving MCP on stdio")),
        "{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.starts_with("<4>")),
        "warnings are priority 4: {stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "no ANSI colours");
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(server_bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("mcp-secure-server") && script.contains("doctor"),
            "{shell}"
        );
    }
    let out = Command::new(server_bin()).arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH mcp-secure-server"),
        "{page}"
    );
    assert!(page.contains("connect"));
}
