//! Test helper (not a user example): applies exactly the sandbox the server applies, then tries
//! operations and prints, one per line, `OP<TAB>ok` or `OP<TAB>errno=N`.
//!
//! ```text
//! sandbox_probe --policy FILE OP...
//! ```
//!
//! It loads the policy with the server's loader, creates the same data directories, builds the
//! plan with `sandbox::plan` and applies it with `sandbox::apply`: what the integration tests
//! prove is what ships. Operations: `read:PATH`, `list:PATH`, `write:PATH`, `mkdir:PATH`,
//! `rename:FROM:TO`, `link:FROM:TO`, `connect:PORT`, `bind`, `exec:PATH`, `userns`, `io_uring`,
//! `ptrace`, `kill:PID`, `abstract:NAME`, `unix:PATH`, `panic`.
#![allow(clippy::print_stdout)]
// The `panic` probe panics on purpose.
#![allow(clippy::panic)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::process::ExitCode;

use mcp_secure_server::{app, policy, sandbox};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some("--policy"), Some(path)) = (args.first().map(String::as_str), args.get(1)) else {
        eprintln!("usage: sandbox_probe --policy FILE OP...");
        return ExitCode::from(2);
    };
    let (policy, _) = match policy::load(Some(std::path::Path::new(path))) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = app::create_data_dirs(&policy) {
        eprintln!("{error}");
        return ExitCode::from(3);
    }
    let plan = sandbox::plan(&policy, &sandbox::probe_path);
    match sandbox::apply(&plan) {
        Ok(enforcement) => eprintln!("applied: {enforcement:?}"),
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(4);
        }
    }
    let mut out = std::io::stdout().lock();
    for op in &args[2..] {
        let outcome = match run(op) {
            Ok(()) => "ok".to_owned(),
            Err(error) => match error.raw_os_error() {
                Some(errno) => format!("errno={errno}"),
                None => format!("error={error}"),
            },
        };
        let _ = writeln!(out, "{op}\t{outcome}");
    }
    ExitCode::SUCCESS
}

fn run(op: &str) -> std::io::Result<()> {
    let (verb, arg) = op.split_once(':').unwrap_or((op, ""));
    match verb {
        "read" => std::fs::read(arg).map(drop),
        "list" => std::fs::read_dir(arg)
            .and_then(|mut d| d.next().transpose())
            .map(drop),
        "write" => std::fs::write(arg, b"probe"),
        "mkdir" => std::fs::create_dir(arg),
        "rename" => {
            let (from, to) = arg.split_once(':').unwrap_or((arg, ""));
            std::fs::rename(from, to)
        }
        "link" => {
            let (from, to) = arg.split_once(':').unwrap_or((arg, ""));
            std::fs::hard_link(from, to)
        }
        "connect" => TcpStream::connect(("127.0.0.1", arg.parse::<u16>().unwrap_or(0))).map(drop),
        "bind" => TcpListener::bind("127.0.0.1:0").map(drop),
        "exec" => std::process::Command::new(arg).status().map(drop),
        "userns" => raw::unshare_user_namespace(),
        "io_uring" => raw::io_uring_setup(),
        "ptrace" => raw::ptrace_traceme(),
        "kill" => {
            let pid = arg
                .parse::<i32>()
                .ok()
                .and_then(rustix::process::Pid::from_raw);
            let pid = pid.ok_or_else(|| std::io::Error::other("bad pid"))?;
            rustix::process::test_kill_process(pid).map_err(Into::into)
        }
        "unix" => UnixStream::connect(arg).map(drop),
        "abstract" => {
            let address = SocketAddr::from_abstract_name(arg.as_bytes())?;
            UnixStream::connect_addr(&address).map(drop)
        }
        "panic" => {
            // The panic path (message to stderr, unwinding, thread exit) must survive seccomp.
            let joined = std::thread::spawn(|| panic!("probe panic")).join();
            if joined.is_err() {
                Ok(())
            } else {
                Err(std::io::Error::other("no panic"))
            }
        }
        _ => Err(std::io::Error::other(format!("unknown op {op}"))),
    }
}

#[path = "support/raw_probes.rs"]
mod raw;
