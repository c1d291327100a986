//! Shared test harness: run the real binary over pipes, each test in its own directory.
//!
//! Every server gets a fresh temp dir that is also its `HOME` and `XDG_STATE_HOME`, so data
//! directories are created there and nothing touches the real home. stderr goes to a file in
//! that directory (a pipe nobody reads could block the server). The wrapped client kills and
//! reaps the child on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mcp_secure_server::client::StdioClient;
use serde_json::{Value, json};

/// Generous: tests must pass on a loaded 2-core machine; this only bounds a hang.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The server binary under test.
pub fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-secure-server"))
}

/// The example server with the extra `text` plugin (`word_count`, `wait`). `cargo test`
/// builds examples before running tests.
pub fn example_bin() -> PathBuf {
    example("custom_plugin")
}

/// A binary from `examples/`, checked to be built from the current library.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = profile_dir.join("examples").join(name);
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    // The example links the library; if the newest library build is younger than the example,
    // the example runs older code (`cargo test --test integration` does not rebuild examples).
    let newest_library = std::fs::read_dir(profile_dir.join("deps"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.starts_with("libmcp_secure_server-") && name.ends_with(".rlib")
        })
        .filter_map(|entry| modified(&entry.path()))
        .max();
    let example = modified(&bin);
    assert!(
        example.is_some() && example >= newest_library,
        "{} is missing or older than the library; run the whole suite with `cargo test` \
         (it builds examples), or `cargo build --examples` first",
        bin.display()
    );
    bin
}

/// The tools of the shipped binary, in `tools/list` order.
pub const BUILTIN_TOOLS: [&str; 10] = [
    "search_tools",
    "list_categories",
    "web_search",
    "init_bugtracker",
    "add_bug",
    "get_bug",
    "update_bug",
    "close_bug",
    "list_bugs",
    "search_bugs_global",
];

/// A temp dir with an optional policy file in it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("mcp-secure-server-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `policy.yaml` and returns its path.
    pub fn policy(&self, yaml: &str) -> PathBuf {
        let path = self.path().join("policy.yaml");
        std::fs::write(&path, yaml).expect("write policy");
        path
    }

    /// A command for `bin` with this dir as its home and cwd.
    pub fn command(&self, bin: &Path) -> Command {
        let mut command = Command::new(bin);
        command
            .current_dir(self.path())
            .env("HOME", self.path())
            .env("XDG_STATE_HOME", self.path().join("state"))
            .env("RUST_LOG", "debug");
        command
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.path().join("stderr.log")
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }
}

/// Runs `command` to the end and returns its stdout; the test fails, showing both outputs,
/// unless it exits successfully.
pub fn stdout_of_success(command: &mut Command) -> String {
    let out = command.output().expect("run the command");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{:?} failed: {:?}\n{stdout}\n{}",
        command.get_program(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A running server in its own sandbox directory.
pub struct Server {
    pub client: StdioClient,
    pub sandbox: Sandbox,
}

impl Server {
    /// The real binary with the default policy, in seccomp kill mode.
    pub fn start() -> Self {
        Self::start_with(
            &server_bin(),
            Some(mcp_secure_server::policy::DEFAULT_POLICY_YAML),
        )
    }

    /// `bin` with an optional policy file. A policy without a `sandbox:` section runs with
    /// `seccomp_action: kill`, so a system call missing from the allowlist kills the server and
    /// fails the test instead of hiding behind EPERM.
    pub fn start_with(bin: &Path, policy: Option<&str>) -> Self {
        Self::launch(bin, policy, |_| {})
    }

    /// `bin` with `policy`, after `setup` has prepared the server's directory (its HOME and cwd).
    pub fn start_with_setup(bin: &Path, policy: &str, setup: impl FnOnce(&Path)) -> Self {
        Self::launch(bin, Some(policy), setup)
    }

    /// `bin` with `policy` and extra environment variables.
    pub fn start_with_env(bin: &Path, policy: &str, env: &[(&str, &str)]) -> Self {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::launch_with(bin, Some(policy), |_| {}, &env)
    }

    fn launch(bin: &Path, policy: Option<&str>, setup: impl FnOnce(&Path)) -> Self {
        Self::launch_with(bin, policy, setup, &[])
    }

    pub fn launch_with(
        bin: &Path,
        policy: Option<&str>,
        setup: impl FnOnce(&Path),
        env: &[(String, String)],
    ) -> Self {
        let sandbox = Sandbox::new();
        setup(sandbox.path());
        let mut command = sandbox.command(bin);
        command.envs(env.iter().map(|(k, v)| (k, v)));
        if let Some(yaml) = policy {
            command
                .arg("--policy")
                .arg(sandbox.policy(&kill_mode(yaml)));
        }
        let stderr = std::fs::File::create(sandbox.stderr_path()).expect("stderr file");
        command.stderr(stderr);
        let client = StdioClient::spawn(command).expect("spawn server");
        Server { client, sandbox }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.client.send_raw(bytes).expect("write to server");
    }

    pub fn send(&mut self, message: Value) {
        self.client.send(&message).expect("write to server");
    }

    /// The next message from the server.
    pub fn recv(&mut self) -> Value {
        self.client
            .recv(TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}; server stderr:\n{}", self.sandbox.stderr()))
    }

    /// Sends a request and returns the response with the same id.
    pub fn request(&mut self, id: Value, method: &str, params: Value) -> Value {
        self.client
            .request(id, method, params, TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}; server stderr:\n{}", self.sandbox.stderr()))
    }

    pub fn initialize(&mut self) -> Value {
        let response = self.request(
            json!(0),
            "initialize",
            json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"}
            }),
        );
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        response
    }

    /// Proves the server is alive and that nothing else is queued before the pong: the very
    /// next line must be the ping's answer.
    pub fn assert_alive(&mut self) {
        self.send(json!({"jsonrpc": "2.0", "id": "alive", "method": "ping"}));
        let answer = self.recv();
        assert_eq!(
            answer,
            json!({"jsonrpc": "2.0", "id": "alive", "result": {}}),
            "expected the ping answer next"
        );
    }

    /// Calls a tool and returns the whole response.
    pub fn call_tool(&mut self, id: Value, name: &str, arguments: Value) -> Value {
        self.request(
            id,
            "tools/call",
            json!({"name": name, "arguments": arguments}),
        )
    }

    /// Peak resident memory of the server so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.client.pid()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc status")
    }

    /// Closes stdin and returns the exit status and everything the server logged.
    pub fn finish_with_stderr(self) -> (std::process::ExitStatus, String) {
        let stderr = self.sandbox.stderr_path();
        let dir = self.sandbox;
        let status = self.client.finish(TIMEOUT).expect("server exits after EOF");
        let text = std::fs::read_to_string(stderr).unwrap_or_default();
        drop(dir);
        (status, text)
    }

    /// Closes stdin and returns the exit status and the server's directory, kept alive so its
    /// files (the audit log) can be read.
    pub fn stop(self) -> (std::process::ExitStatus, Sandbox) {
        let sandbox = self.sandbox;
        let status = self.client.finish(TIMEOUT).expect("server exits after EOF");
        (status, sandbox)
    }

    /// Closes stdin and returns the exit status.
    pub fn finish(self) -> std::process::ExitStatus {
        let stderr = self.sandbox.stderr_path();
        self.client.finish(TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "{e}; stderr:\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            )
        })
    }
}

/// The error code of a response (panics if it is not an error).
pub fn error_code(response: &Value) -> i64 {
    response["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("expected an error response, got {response}"))
}

/// The text of the first content block of a tool result response.
pub fn tool_text(response: &Value) -> String {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("expected a tool result, got {response}"))
        .to_owned()
}

/// `yaml` with `sandbox.seccomp_action: kill` (replacing the default's `errno`).
pub fn kill_mode(yaml: &str) -> String {
    if yaml.contains("seccomp_action: errno") {
        yaml.replace("seccomp_action: errno", "seccomp_action: kill")
    } else if yaml.contains("sandbox:") {
        yaml.to_owned()
    } else {
        format!("{yaml}\nsandbox:\n  seccomp_action: kill\n")
    }
}
