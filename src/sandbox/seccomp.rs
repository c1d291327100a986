//! Installing the plan's seccomp filters on every thread.
//!
//! Three filters, in this order (the kernel runs them all; the strictest answer wins, and of two
//! errno answers the most recently installed one's errno is returned):
//! 1. `clone3` → ENOSYS, so glibc falls back to `clone`, whose flags a filter can inspect;
//! 2. the deny filter: the never-allowed calls → EPERM, and with external plugins also sockets
//!    other than AF_INET/AF_INET6. Installed only with `seccomp_action: log` or external
//!    plugins; otherwise the allowlist already refuses those calls, and every filter costs time
//!    on every system call;
//! 3. the allowlist, last, because without plugins it does not allow `seccomp(2)` itself.
//!
//! Plugins get one more filter of their own, [`child_filter`], installed by the plugin helper.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction as Action, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::SandboxError;
use super::plan::SandboxPlan;
use super::syscalls::{
    ArgRule, CLONE_NAMESPACE_FLAGS, IOCTLS, PLUGIN_PRCTL_OPTIONS, PRCTL_OPTIONS, SOCKET_FAMILIES,
    never_allowed,
};
use crate::policy::SeccompAction;

/// Builds and installs the filters, with TSYNC.
///
/// # Errors
/// The architecture is unsupported, a filter does not compile, or the kernel refuses it.
pub fn install(plan: &SandboxPlan) -> Result<(), SandboxError> {
    for program in compile(plan)? {
        seccompiler::apply_filter_all_threads(&program).map_err(|e| SandboxError::Seccomp {
            detail: e.to_string(),
        })?;
    }
    Ok(())
}

/// The BPF programs, in installation order.
///
/// # Errors
/// The architecture is unsupported or a filter does not compile.
pub fn compile(plan: &SandboxPlan) -> Result<Vec<BpfProgram>, SandboxError> {
    let bad = |e: seccompiler::Error| SandboxError::Seccomp {
        detail: e.to_string(),
    };
    let bad_backend = |e: seccompiler::BackendError| SandboxError::Seccomp {
        detail: e.to_string(),
    };
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(bad_backend)?;

    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, vec![])]),
        Action::Allow,
        Action::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(bad_backend)?;

    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = never_allowed()
        .into_iter()
        .map(|(_, number)| (number, vec![]))
        .collect();
    if plan.plugin_runtime {
        denied.insert(
            libc::SYS_socket,
            other_socket_families().map_err(bad_backend)?,
        );
    }
    let never = SeccompFilter::new(
        denied,
        Action::Allow,
        Action::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(bad_backend)?;

    let mut rules = BTreeMap::new();
    for syscall in &plan.syscalls {
        rules.insert(
            syscall.number,
            arg_rules(syscall.args).map_err(bad_backend)?,
        );
    }
    let mismatch = match plan.seccomp_action {
        SeccompAction::Errno => Action::Errno(libc::EPERM as u32),
        SeccompAction::Kill => Action::KillProcess,
        SeccompAction::Log => Action::Log,
    };
    let allowlist =
        SeccompFilter::new(rules, mismatch, Action::Allow, arch).map_err(bad_backend)?;

    let filters = if plan.plugin_runtime || plan.seccomp_action == SeccompAction::Log {
        vec![clone3, never, allowlist]
    } else {
        vec![clone3, allowlist]
    };
    let programs = filters
        .into_iter()
        .map(|filter| BpfProgram::try_from(filter).map_err(bad_backend))
        .collect::<Result<Vec<_>, _>>()?;
    // An empty program would be refused by the kernel with a cryptic EINVAL.
    if programs.iter().any(Vec::is_empty) {
        return Err(bad(seccompiler::Error::EmptyFilter));
    }
    Ok(programs)
}

/// The plugin's own filter: everything the server's filters allow, except (EPERM) every
/// `socket` (a plugin has no network, and Landlock ABI 7 does not confine connecting to named
/// unix sockets), `socketpair` other than stream pairs, `prlimit64` on another process, the
/// never-allowed calls, leaving its process group
/// (`setsid`, `setpgid`: killing the group must reach every descendant) and, when
/// `no_processes`, creating processes (`fork`, `vfork`, `clone` without `CLONE_THREAD`).
///
/// # Errors
/// The architecture is unsupported or the filter does not compile.
pub fn child_filter(no_processes: bool) -> Result<BpfProgram, SandboxError> {
    let bad = |e: seccompiler::BackendError| SandboxError::Seccomp {
        detail: e.to_string(),
    };
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(bad)?;
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = never_allowed()
        .into_iter()
        .map(|(_, number)| (number, vec![]))
        .collect();
    for number in [libc::SYS_socket, libc::SYS_setsid, libc::SYS_setpgid] {
        denied.insert(number, vec![]);
    }
    let dword = |arg: u8, op: SeccompCmpOp, value: u64| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
            .and_then(|condition| SeccompRule::new(vec![condition]))
    };
    // Same user, so the kernel would let a plugin change the server's limits (RLIMIT_CPU 1
    // kills it): only its own (pid 0).
    denied.insert(
        libc::SYS_prlimit64,
        vec![dword(0, SeccompCmpOp::Ne, 0).map_err(bad)?],
    );
    // A datagram pair can `sendto` any named unix socket (/dev/log…), which Landlock ABI 7
    // does not confine: stream pairs only (the type compared without SOCK_NONBLOCK/CLOEXEC).
    denied.insert(
        libc::SYS_socketpair,
        (0..=15u64)
            .filter(|kind| *kind != libc::SOCK_STREAM as u64)
            .map(|kind| dword(1, SeccompCmpOp::MaskedEq(0xf), kind))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?,
    );
    if no_processes {
        #[cfg(target_arch = "x86_64")]
        for number in [libc::SYS_fork, libc::SYS_vfork] {
            denied.insert(number, vec![]);
        }
        let without_thread = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
            0,
        )
        .map_err(bad)?;
        denied.insert(
            libc::SYS_clone,
            vec![SeccompRule::new(vec![without_thread]).map_err(bad)?],
        );
    }
    let filter = SeccompFilter::new(
        denied,
        Action::Allow,
        Action::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(bad)?;
    BpfProgram::try_from(filter).map_err(bad)
}

/// `socket` with a family other than AF_INET and AF_INET6 (compared as 32 bits).
fn other_socket_families() -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    let conditions = SOCKET_FAMILIES
        .iter()
        .map(|family| {
            SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *family as u64)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(vec![SeccompRule::new(conditions)?])
}

/// Argument rules: several rules are alternatives; an empty list allows any arguments.
fn arg_rules(rule: ArgRule) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    use SeccompCmpArgLen::{Dword, Qword};
    let equal = |arg: u8, value: u64| -> Result<SeccompRule, seccompiler::BackendError> {
        // Compared as 32 bits: the kernel reads these arguments as `int`, so upper bits a
        // caller sets (the snapd/flatpak TIOCSTI bypass) must not change the decision.
        SeccompRule::new(vec![SeccompCondition::new(
            arg,
            Dword,
            SeccompCmpOp::Eq,
            value,
        )?])
    };
    match rule {
        ArgRule::Any => Ok(vec![]),
        ArgRule::CloneWithoutNamespaces => {
            Ok(vec![SeccompRule::new(vec![SeccompCondition::new(
                0,
                Qword,
                SeccompCmpOp::MaskedEq(CLONE_NAMESPACE_FLAGS),
                0,
            )?])?])
        }
        ArgRule::SocketFamilies => SOCKET_FAMILIES
            .iter()
            .map(|family| equal(0, *family as u64))
            .collect(),
        ArgRule::SafeIoctls => IOCTLS.iter().map(|request| equal(1, *request)).collect(),
        ArgRule::SafePrctl => PRCTL_OPTIONS
            .iter()
            .map(|option| equal(0, *option as u64))
            .collect(),
        ArgRule::PluginPrctl => PRCTL_OPTIONS
            .iter()
            .chain(&PLUGIN_PRCTL_OPTIONS)
            .map(|option| equal(0, *option as u64))
            .collect(),
    }
}
