//! Test helper (not a user example): an external plugin that misbehaves on request and tries
//! to escape its sandbox, reporting what the kernel answered.
//!
//! Tools (the tests' manifests list the ones they use):
//! - `escape {secret, outside_dir, symlink, granted_dir, target_pid?}` (or `escape_forking`, for a manifest
//!   that allows processes): tries each escape (on the server, its
//!   parent) and
//!   answers a JSON object of `probe: "ok" | "errno=N" | value`;
//! - `hang {pid_dir, children}`: writes its pid (and its children's) into `pid_dir`, then sleeps
//!   forever; `orphan {pid_dir, children}` starts the children and answers at once;
//! - `garbage`, `flood`, `fail`, `crash`, `silent`: wrong output, too much output, exit status
//!   3, SIGABRT, no output;
//! - `pid`: answers its process id (persistent mode keeps it); `twice` answers two lines.
#![allow(clippy::print_stdout)]

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value, json};

#[path = "support/raw_probes.rs"]
mod raw;

fn main() {
    if std::env::args().nth(1).as_deref() == Some("sleep") {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return };
        let Ok(request) = serde_json::from_str::<Value>(&line) else {
            return;
        };
        let arguments = request["arguments"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let text = match request["tool"].as_str().unwrap_or("") {
            "escape" | "escape_forking" => escape(&arguments).to_string(),
            "pid" => std::process::id().to_string(),
            "hang" => hang(&arguments),
            "orphan" => start_children(&arguments).unwrap_or_else(|e| e),
            "garbage" => return print_raw(b"this is not JSON\n"),
            "flood" => return print_raw(&vec![b'x'; 8 * 1024 * 1024]),
            "silent" => return,
            "twice" => {
                // Both lines in one write, so they arrive together.
                let line = |text: &str| {
                    json!({"content": [{"type": "text", "text": text}], "isError": false})
                        .to_string()
                };
                let both = format!("{}\n{}\n", line("first"), line("second"));
                print_raw(both.as_bytes());
                continue;
            }
            "fail" => {
                answer("half done");
                let _ = writeln!(std::io::stderr(), "probe: something broke");
                std::process::exit(3);
            }
            "crash" => std::process::abort(),
            other => format!("unknown tool {other}"),
        };
        answer(&text);
    }
}

fn answer(text: &str) {
    let response = json!({"content": [{"type": "text", "text": text}], "isError": false});
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{response}");
    let _ = stdout.flush();
}

fn print_raw(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(bytes);
    let _ = stdout.flush();
}

/// A string argument, or "" when it is missing.
fn text<'a>(arguments: &'a Map<String, Value>, key: &str) -> &'a str {
    arguments.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Starts `children` sleeping children that record their pids in `pid_dir`; answers how many.
fn start_children(arguments: &Map<String, Value>) -> Result<String, String> {
    let dir = Path::new(text(arguments, "pid_dir"));
    let children = arguments
        .get("children")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let me = std::env::current_exe().unwrap_or_default();
    for _ in 0..children {
        // A child that would outlive the plugin if only the plugin were killed, holding the
        // plugin's stdout and stderr open.
        let child = std::process::Command::new(&me)
            .arg("sleep")
            .stdin(std::process::Stdio::null())
            .spawn()
            .map_err(|error| format!("spawn failed: {error}"))?;
        let _ = std::fs::write(dir.join(child.id().to_string()), "child");
    }
    Ok(children.to_string())
}

fn hang(arguments: &Map<String, Value>) -> String {
    if let Err(error) = start_children(arguments) {
        return error;
    }
    let dir = Path::new(text(arguments, "pid_dir"));
    let _ = std::fs::write(dir.join(std::process::id().to_string()), "plugin");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn outcome(result: std::io::Result<()>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(error) => match error.raw_os_error() {
            Some(errno) => format!("errno={errno}"),
            None => format!("error={error}"),
        },
    }
}

fn escape(arguments: &Map<String, Value>) -> Value {
    // The plugin helper executed this program in place, so the parent is the server. A control
    // run outside the sandbox names a throwaway process instead.
    let server = arguments
        .get("target_pid")
        .and_then(Value::as_i64)
        .map_or(std::os::unix::process::parent_id() as i32, |pid| pid as i32);
    let (secret, outside, symlink, granted) = (
        text(arguments, "secret"),
        text(arguments, "outside_dir"),
        text(arguments, "symlink"),
        text(arguments, "granted_dir"),
    );
    let mut report = Map::new();
    let mut probe = |name: &str, result: std::io::Result<()>| {
        report.insert(name.into(), Value::from(outcome(result)));
    };
    probe("read_secret", std::fs::read(secret).map(drop));
    probe(
        "write_outside",
        std::fs::write(Path::new(&outside).join("escaped"), b"x"),
    );
    probe("follow_symlink", std::fs::read(symlink).map(drop));
    probe(
        "write_granted",
        std::fs::write(Path::new(&granted).join("written"), b"x"),
    );
    probe("socket_inet", raw::socket(libc::AF_INET));
    probe("socket_inet6", raw::socket(libc::AF_INET6));
    probe("socket_netlink", raw::socket(libc::AF_NETLINK));
    probe("socket_packet", raw::socket(libc::AF_PACKET));
    probe("socket_unix", raw::socket(libc::AF_UNIX));
    probe("socketpair_stream", raw::socketpair(libc::SOCK_STREAM));
    probe(
        "socketpair_datagram",
        raw::socketpair(libc::SOCK_DGRAM | libc::SOCK_CLOEXEC),
    );
    probe(
        "prlimit_server",
        rustix::process::Pid::from_raw(server)
            .ok_or_else(|| std::io::Error::other("no pid"))
            .and_then(|pid| {
                let limit = rustix::process::Rlimit {
                    current: Some(64),
                    maximum: Some(64),
                };
                rustix::process::prlimit(Some(pid), rustix::process::Resource::Nofile, limit)
                    .map(drop)
                    .map_err(Into::into)
            }),
    );
    // Through fork and exec, so that a success (outside the sandbox) does not replace the probe.
    probe(
        "exec_sh",
        std::process::Command::new("/bin/sh")
            .args(["-c", "exit 0"])
            .status()
            .map(drop),
    );
    probe("fork", raw::fork());
    probe("ptrace_server", raw::ptrace_attach(server));
    probe(
        "signal_server",
        rustix::process::Pid::from_raw(server)
            .ok_or_else(|| std::io::Error::other("no pid"))
            .and_then(|pid| rustix::process::test_kill_process(pid).map_err(Into::into)),
    );
    probe(
        "server_environ",
        std::fs::read(format!("/proc/{server}/environ")).map(drop),
    );
    probe(
        "server_mem",
        std::fs::File::open(format!("/proc/{server}/mem")).map(drop),
    );
    probe("userns", raw::unshare_user_namespace());
    probe("io_uring", raw::io_uring_setup());
    probe(
        "setsid",
        rustix::process::setsid().map(drop).map_err(Into::into),
    );
    let prctl = |option| match raw::prctl_get(option) {
        Ok(value) => value.to_string(),
        Err(error) => format!("error={error}"),
    };
    report.insert(
        "no_new_privs".into(),
        prctl(libc::PR_GET_NO_NEW_PRIVS).into(),
    );
    report.insert("seccomp".into(), prctl(libc::PR_GET_SECCOMP).into());
    // capget(2) only: the ambient and bounding sets need prctl options the plugin may not use,
    // and ambient capabilities need permitted ones.
    let capabilities = raw::capabilities().map_or(u32::MAX, |set| set.count_ones());
    report.insert("capabilities".into(), capabilities.into());
    let mut names: Vec<String> = std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    names.sort();
    report.insert("env".into(), names.join(",").into());
    Value::Object(report)
}
