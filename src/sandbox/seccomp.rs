//! The plan's seccomp filter, and the plugins' own.
//!
//! The server installs one filter, with TSYNC, last of all the sandbox steps (without plugins
//! it does not allow `seccomp(2)` itself). For each system call it answers:
//! - the plan's allowed calls: allowed, with their argument checks; a call whose checks fail
//!   gets the policy's `seccomp_action`;
//! - `clone3`: ENOSYS, so glibc falls back to `clone`, whose flags a filter can inspect;
//! - the never-allowed calls: EPERM even with `seccomp_action: log`, and the policy's action
//!   when it is stricter, except with external plugins;
//! - with external plugins, `socket` of a family other than AF_INET/AF_INET6: EPERM;
//!
//! With external plugins those two are errors rather than `seccomp_action: kill`, so that a
//! plugin probing for them (interpreters do) is told no instead of killed.
//! - every other call: the policy's `seccomp_action`, except x32-ABI calls on x86_64, which are
//!   refused (EPERM) even with `log`.
//!
//! One filter rather than one per rule because every filter is JIT-compiled at start-up and
//! run on every call the kernel cannot answer from its cache. [`super::bpf`] emits it; the
//! tests check it against the three seccompiler filters it replaces.
//!
//! Plugins get one more filter of their own, [`child_filter`], installed by the plugin helper.

use std::collections::BTreeMap;

use super::SandboxError;
use super::bpf::{self, Action, Check, Comparison, Filter, Program, SyscallAction, Width};
use super::plan::SandboxPlan;
use super::syscalls::{
    ArgRule, CLONE_NAMESPACE_FLAGS, IOCTLS, PLUGIN_PRCTL_OPTIONS, PRCTL_OPTIONS, SOCKET_FAMILIES,
    never_allowed,
};
use crate::policy::SeccompAction;

const EPERM: Action = Action::Errno(libc::EPERM as u16);

/// Builds the plan's filter and installs it on every thread (TSYNC).
///
/// # Errors
/// The filter does not compile, or the kernel refuses it.
pub fn install(plan: &SandboxPlan) -> Result<(), SandboxError> {
    let program = compile(plan)?;
    super::sys::install_seccomp_filter(&program, true).map_err(|e| SandboxError::Seccomp {
        detail: format!("the kernel refused the filter: {e}"),
    })
}

/// Installs a plugin's filter ([`child_filter`]) on the calling, single-threaded helper.
///
/// # Errors
/// The kernel refuses it.
pub fn install_on_this_thread(program: &[bpf::Instruction]) -> Result<(), SandboxError> {
    super::sys::install_seccomp_filter(program, false).map_err(|e| SandboxError::Seccomp {
        detail: format!("the kernel refused the plugin filter: {e}"),
    })
}

/// The plan's filter as a table.
pub fn table(plan: &SandboxPlan) -> Filter {
    let mismatch = match plan.seccomp_action {
        SeccompAction::Errno => EPERM,
        SeccompAction::Kill => Action::KillProcess,
        SeccompAction::Log => Action::Log,
    };
    let mut syscalls = BTreeMap::new();
    for syscall in &plan.syscalls {
        let when = arg_checks(syscall.args);
        syscalls.insert(
            number(syscall.number),
            SyscallAction {
                when,
                action: Action::Allow,
                otherwise: mismatch,
            },
        );
    }
    syscalls.insert(
        number(libc::SYS_clone3),
        SyscallAction::always(Action::Errno(libc::ENOSYS as u16)),
    );
    for (_, never) in never_allowed() {
        // A plugin probing for them gets EPERM, not a kill; the server itself gets the
        // policy's action when it is stricter.
        let answer = if plan.plugin_runtime {
            EPERM
        } else {
            EPERM.strictest(mismatch)
        };
        syscalls.insert(number(never), SyscallAction::always(answer));
    }
    if plan.plugin_runtime {
        syscalls.insert(
            number(libc::SYS_socket),
            SyscallAction {
                when: socket_families(),
                action: Action::Allow,
                otherwise: EPERM,
            },
        );
    }
    Filter {
        syscalls,
        default: mismatch,
        // Never `log`: most never-allowed calls have the same number in the x32 ABI.
        x32: EPERM.strictest(mismatch),
    }
}

/// The plan's BPF program.
///
/// # Errors
/// The table cannot be emitted (a mistake in the syscall tables, caught by the tests).
pub fn compile(plan: &SandboxPlan) -> Result<Program, SandboxError> {
    bpf::emit(&table(plan)).map_err(|e| SandboxError::Seccomp {
        detail: e.to_string(),
    })
}

/// The plugin's own filter as a table: everything the server's filter allows, except (EPERM)
/// every `socket` (a plugin has no network, and Landlock ABI 7 does not confine connecting to
/// named unix sockets), `socketpair` other than stream pairs, `prlimit64` on another process,
/// the never-allowed calls, leaving its process group (`setsid`, `setpgid`: killing the group
/// must reach every descendant) and, when `no_processes`, creating processes (`fork`, `vfork`,
/// `clone` without `CLONE_THREAD`).
pub fn child_table(no_processes: bool) -> Filter {
    let mut syscalls: BTreeMap<u32, SyscallAction> = never_allowed()
        .into_iter()
        .map(|(_, n)| (number(n), SyscallAction::always(EPERM)))
        .collect();
    for n in [libc::SYS_socket, libc::SYS_setsid, libc::SYS_setpgid] {
        syscalls.insert(number(n), SyscallAction::always(EPERM));
    }
    let refuse_when = |when: Vec<Vec<Check>>| SyscallAction {
        when,
        action: EPERM,
        otherwise: Action::Allow,
    };
    // Same user, so the kernel would let a plugin change the server's limits (RLIMIT_CPU 1
    // kills it): only its own (pid 0).
    syscalls.insert(
        number(libc::SYS_prlimit64),
        refuse_when(vec![vec![low32(0, Comparison::Ne(0))]]),
    );
    // A datagram pair can `sendto` any named unix socket (/dev/log…), which Landlock ABI 7
    // does not confine: stream pairs only (the type compared without SOCK_NONBLOCK/CLOEXEC).
    let stream = libc::SOCK_STREAM as u64;
    syscalls.insert(
        number(libc::SYS_socketpair),
        SyscallAction {
            when: vec![vec![low32(
                1,
                Comparison::MaskedEq {
                    mask: 0xf,
                    value: stream,
                },
            )]],
            action: Action::Allow,
            otherwise: EPERM,
        },
    );
    if no_processes {
        #[cfg(target_arch = "x86_64")]
        for n in [libc::SYS_fork, libc::SYS_vfork] {
            syscalls.insert(number(n), SyscallAction::always(EPERM));
        }
        let without_thread = Check {
            arg: 0,
            width: Width::Full64,
            comparison: Comparison::MaskedEq {
                mask: libc::CLONE_THREAD as u64,
                value: 0,
            },
        };
        syscalls.insert(
            number(libc::SYS_clone),
            refuse_when(vec![vec![without_thread]]),
        );
    }
    Filter {
        syscalls,
        default: Action::Allow,
        x32: EPERM,
    }
}

/// The plugin's own filter.
///
/// # Errors
/// The table cannot be emitted (a mistake in the syscall tables, caught by the tests).
pub fn child_filter(no_processes: bool) -> Result<Program, SandboxError> {
    bpf::emit(&child_table(no_processes)).map_err(|e| SandboxError::Seccomp {
        detail: e.to_string(),
    })
}

/// Syscall numbers are small and non-negative; a table entry that is not would be a bug that
/// the tests catch (it lands on number `u32::MAX`, which no call has).
fn number(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Compared as 32 bits: the kernel reads these arguments as `int`, so upper bits a caller sets
/// (the snapd/flatpak TIOCSTI bypass) must not change the decision.
fn low32(arg: u8, comparison: Comparison) -> Check {
    Check {
        arg,
        width: Width::Low32,
        comparison,
    }
}

/// `socket` of AF_INET or AF_INET6.
fn socket_families() -> Vec<Vec<Check>> {
    SOCKET_FAMILIES
        .iter()
        .map(|family| vec![low32(0, Comparison::Eq(*family as u64))])
        .collect()
}

/// Argument checks: alternatives, any of which allows the call; none means any arguments.
fn arg_checks(rule: ArgRule) -> Vec<Vec<Check>> {
    let equal = |arg: u8, values: &[u64]| -> Vec<Vec<Check>> {
        values
            .iter()
            .map(|value| vec![low32(arg, Comparison::Eq(*value))])
            .collect()
    };
    let options = |options: &[i32]| options.iter().map(|o| *o as u64).collect::<Vec<_>>();
    match rule {
        ArgRule::Any => Vec::new(),
        ArgRule::CloneWithoutNamespaces => vec![vec![Check {
            arg: 0,
            width: Width::Full64,
            comparison: Comparison::MaskedEq {
                mask: CLONE_NAMESPACE_FLAGS,
                value: 0,
            },
        }]],
        ArgRule::SocketFamilies => socket_families(),
        ArgRule::SafeIoctls => equal(1, &IOCTLS),
        ArgRule::SafePrctl => equal(0, &options(&PRCTL_OPTIONS)),
        ArgRule::PluginPrctl => equal(
            0,
            &options(&[PRCTL_OPTIONS.as_slice(), &PLUGIN_PRCTL_OPTIONS].concat()),
        ),
    }
}

#[cfg(test)]
mod tests;
