//! Installing the plan's seccomp filters on every thread.
//!
//! Three filters, in this order (the kernel runs them all; the strictest answer wins, and of two
//! errno answers the most recently installed one's errno is returned):
//! 1. `clone3` → ENOSYS, so glibc falls back to `clone`, whose flags a filter can inspect;
//! 2. with `seccomp_action: log` only, the never-allowed calls → EPERM (otherwise the
//!    allowlist already refuses them, and every filter costs time on every system call);
//! 3. the allowlist, last, because it does not allow `seccomp(2)` itself.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction as Action, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::SandboxError;
use super::plan::SandboxPlan;
use super::syscalls::{
    ArgRule, CLONE_NAMESPACE_FLAGS, IOCTLS, PRCTL_OPTIONS, SOCKET_FAMILIES, never_allowed,
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

    let never = SeccompFilter::new(
        never_allowed()
            .into_iter()
            .map(|(_, number)| (number, vec![]))
            .collect(),
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

    let filters = match plan.seccomp_action {
        SeccompAction::Log => vec![clone3, never, allowlist],
        SeccompAction::Errno | SeccompAction::Kill => vec![clone3, allowlist],
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
    }
}
