//! The plugin child sandbox: a helper mode of our own binary that locks itself down further and
//! then executes an external plugin.
//!
//! The server starts `<own binary> __plugin-sandbox <spec as JSON>`. That process is fresh and
//! single-threaded, so it can do what is unsafe between `fork` and `exec` in a multi-threaded
//! server: build a Landlock ruleset and a BPF program. In order it: starts a new session (no
//! controlling terminal, its own process group for killing), asks for SIGKILL when the server
//! dies, closes every descriptor above 2, sets resource limits, adds a Landlock layer (only the
//! spec's paths, no TCP, scoped signals and abstract sockets), adds a seccomp filter
//! ([`super::seccomp::child_filter`]) and executes the plugin. Everything the server's own
//! sandbox refuses stays refused: layers only ever narrow.
//!
//! On any failure it prints one line to stderr and exits with [`HELPER_FAILED`].

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use rustix::process::{Pid, Resource, Rlimit, Signal};
use serde::{Deserialize, Serialize};

use crate::policy::SandboxMode;

/// The first argument that selects the helper mode.
pub const HELPER_ARG: &str = "__plugin-sandbox";

/// The helper's exit status when it could not lock itself down or execute the plugin.
pub const HELPER_FAILED: i32 = 125;

/// The newest Landlock ABI handled in full (as for the server's own ruleset).
const NEWEST_ABI: ABI = ABI::V10;

/// Everything the helper needs to know, passed as one JSON argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildSpec {
    /// The file to execute (an ELF executable or the script's interpreter).
    pub program: PathBuf,
    /// Arguments after argv\[0\] (the script, for interpreted plugins).
    pub args: Vec<String>,
    /// Files and directories the plugin may read (beneath).
    pub read: Vec<PathBuf>,
    /// Files the plugin may read and execute: the program, its interpreter and ELF loader.
    pub execute: Vec<PathBuf>,
    /// Files and directories the plugin may read and write (beneath), never execute.
    pub write: Vec<PathBuf>,
    /// Resource limits.
    pub limits: ChildLimits,
    /// The server's process id: if the helper's parent is already another process, the server
    /// died before the death signal was armed.
    pub server_pid: i32,
    /// The policy's `sandbox.mode`: `off` skips the Landlock layer and the seccomp filter (the
    /// rest still applies), `best-effort` goes on without what the kernel cannot do.
    pub mode: SandboxMode,
}

/// Kernel resource limits of a plugin process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildLimits {
    /// RLIMIT_CPU, in seconds of CPU time; `None`: unlimited.
    pub cpu_seconds: Option<u64>,
    /// RLIMIT_NOFILE.
    pub open_files: u64,
    /// RLIMIT_FSIZE, in bytes.
    pub file_size: u64,
    /// 0: no new processes at all (seccomp refuses fork); otherwise RLIMIT_NPROC.
    pub processes: u64,
}

/// Runs the helper mode when `args` (without argv\[0\]) selects it; returns otherwise.
///
/// Call it first thing in `main`, before logging or threads exist.
pub fn run_if_requested(mut args: impl Iterator<Item = OsString>) {
    if args.next().as_deref() != Some(HELPER_ARG.as_ref()) {
        return;
    }
    let spec = args
        .next()
        .and_then(|json| serde_json::from_slice::<ChildSpec>(json.as_encoded_bytes()).ok());
    let error = match spec {
        Some(spec) => lock_down_and_exec(&spec),
        None => "the helper needs one JSON argument".to_owned(),
    };
    // Not eprintln!: with stderr closed it would panic instead of exiting with our status.
    let _ = writeln!(
        std::io::stderr(),
        "mcp-secure-server plugin sandbox: {error}"
    );
    std::process::exit(HELPER_FAILED);
}

/// Returns only on failure, with what went wrong.
fn lock_down_and_exec(spec: &ChildSpec) -> String {
    if let Err(error) = rustix::process::setsid() {
        return format!("setsid: {error}");
    }
    if let Err(error) = rustix::process::set_parent_process_death_signal(Some(Signal::KILL)) {
        return format!("cannot ask for a signal on the server's death: {error}");
    }
    let server_alive = rustix::process::getppid().map(Pid::as_raw_nonzero);
    if server_alive.map(|pid| pid.get()) != Some(spec.server_pid) {
        return "the server exited before the plugin started".into();
    }
    if let Err(error) = super::sys::close_descriptors_from(3) {
        return format!("cannot close inherited descriptors: {error}");
    }
    if let Err(error) = set_limits(&spec.limits) {
        return error;
    }
    if spec.mode != SandboxMode::Off {
        let strict = spec.mode == SandboxMode::Enforce;
        if let Err(error) = restrict_filesystem(spec)
            && strict
        {
            return format!("Landlock: {error}");
        }
        let filter = super::seccomp::child_filter(spec.limits.processes == 0)
            .map_err(|e| e.to_string())
            .and_then(|program| {
                super::seccomp::install_on_this_thread(&program).map_err(|e| e.to_string())
            });
        if let Err(error) = filter
            && strict
        {
            return error;
        }
    }
    let error = std::process::Command::new(&spec.program)
        .args(&spec.args)
        .exec();
    format!("cannot execute {}: {error}", spec.program.display())
}

fn set_limits(limits: &ChildLimits) -> Result<(), String> {
    let mut wanted = vec![
        (Resource::Nofile, limits.open_files, "open files"),
        (Resource::Fsize, limits.file_size, "file size"),
        (Resource::Core, 0, "core dumps"),
    ];
    if let Some(seconds) = limits.cpu_seconds {
        wanted.push((Resource::Cpu, seconds, "CPU seconds"));
    }
    if limits.processes > 0 {
        wanted.push((Resource::Nproc, limits.processes, "processes"));
    }
    for (resource, value, what) in wanted {
        let limit = Rlimit {
            current: Some(value),
            maximum: Some(value),
        };
        rustix::process::setrlimit(resource, limit)
            .map_err(|e| format!("cannot limit {what} to {value}: {e}"))?;
    }
    Ok(())
}

/// The plugin's Landlock layer. Unlike the server's, a path that cannot be opened is an error:
/// the server checked every path at start-up, so a missing one means the machine changed.
fn restrict_filesystem(spec: &ChildSpec) -> Result<(), String> {
    let all = AccessFs::from_all(NEWEST_ABI);
    let read_dir = AccessFs::from_read(NEWEST_ABI) & !AccessFs::Execute;
    let read_file: BitFlags<AccessFs> = AccessFs::ReadFile.into();
    // Every path was resolved at start-up, so a symlink now means someone swapped a directory
    // since: refuse it rather than follow it somewhere else.
    let open = |path: &PathBuf| {
        rustix::fs::openat2(
            rustix::fs::CWD,
            path,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
            rustix::fs::ResolveFlags::NO_SYMLINKS,
        )
        .map_err(|e| {
            format!(
                "cannot open {} (without following symlinks): {e}",
                path.display()
            )
        })
    };
    let fail = |e: landlock::RulesetError| e.to_string();
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .map_err(fail)?
        .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
        .map_err(fail)?
        .scope(Scope::AbstractUnixSocket | Scope::Signal)
        .map_err(fail)?
        .create()
        .map_err(fail)?;
    let is_dir = |path: &PathBuf| path.symlink_metadata().is_ok_and(|m| m.is_dir());
    let grants = spec
        .read
        .iter()
        .map(|p| (p, if is_dir(p) { read_dir } else { read_file }))
        .chain(
            spec.execute
                .iter()
                .map(|p| (p, AccessFs::ReadFile | AccessFs::Execute)),
        )
        .chain(spec.write.iter().map(|p| {
            let access = if is_dir(p) {
                all & !AccessFs::Execute
            } else {
                AccessFs::from_file(NEWEST_ABI) & !AccessFs::Execute
            };
            (p, access)
        }))
        .chain(std::iter::once((
            &PathBuf::from("/dev/null"),
            AccessFs::ReadFile | AccessFs::WriteFile,
        )))
        .map(|(path, access)| (path.clone(), access))
        .collect::<Vec<_>>();
    for (path, access) in grants {
        ruleset = ruleset
            .add_rule(PathBeneath::new(open(&path)?, access))
            .map_err(fail)?;
    }
    let status = ruleset.restrict_self().map_err(fail)?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err("the kernel enforced none of the plugin's rules".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_round_trips_as_one_argument() {
        let spec = ChildSpec {
            program: "/usr/bin/python3.11".into(),
            args: vec!["/opt/p/tool.py".into()],
            read: vec!["/usr/lib".into()],
            execute: vec!["/usr/bin/python3.11".into()],
            write: vec![],
            limits: ChildLimits {
                cpu_seconds: Some(31),
                open_files: 64,
                file_size: 1 << 20,
                processes: 0,
            },
            server_pid: 42,
            mode: SandboxMode::Enforce,
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<ChildSpec>(&json).unwrap(), spec);
    }
}
