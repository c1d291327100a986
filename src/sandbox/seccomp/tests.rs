//! The filters checked against an independent implementation: the seccompiler crate, which
//! built them (as three filters for the server) before [`super::bpf`] did. Every call number,
//! with arguments at and around every constant the tables compare with, must get the same
//! answer from our one program as from seccompiler's programs combined the way the kernel
//! combines filters.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction as Old, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::*;
use crate::policy::{PolicySource, parse};
use crate::sandbox::bpf::{Instruction, SeccompData, evaluate, precedence};
use crate::sandbox::plan::{PathKind, plan};

fn base_plan() -> SandboxPlan {
    let env = |name: &str| (name == "HOME").then(|| "/home/test".to_owned());
    let policy = parse("", &PolicySource::Embedded, &env).unwrap();
    plan(&policy, &|_| PathKind::Missing)
}

/// Every combination of `seccomp_action` and plugins.
fn plans() -> Vec<SandboxPlan> {
    let mut plans = Vec::new();
    for action in [
        SeccompAction::Errno,
        SeccompAction::Kill,
        SeccompAction::Log,
    ] {
        for plugins in [false, true] {
            let mut plan = base_plan();
            plan.seccomp_action = action;
            if plugins {
                plan.allow_plugins([]);
            }
            plans.push(plan);
        }
    }
    plans
}

fn convert(program: &BpfProgram) -> Vec<Instruction> {
    program
        .iter()
        .map(|i| Instruction {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect()
}

/// The kernel runs every filter, newest first, and keeps the most severe answer; of two
/// answers of the same kind the newest wins.
fn combined(programs: &[Vec<Instruction>], data: &SeccompData) -> u32 {
    let mut answer = None;
    for program in programs.iter().rev() {
        let raw = evaluate(program, data).unwrap();
        match answer {
            Some(best) if precedence(raw) >= precedence(best) => {}
            _ => answer = Some(raw),
        }
    }
    answer.unwrap()
}

fn arch() -> TargetArch {
    TargetArch::try_from(std::env::consts::ARCH).unwrap()
}

fn dword(arg: u8, op: SeccompCmpOp, value: u64) -> SeccompRule {
    SeccompRule::new(vec![
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).unwrap(),
    ])
    .unwrap()
}

/// The server's filters as seccompiler built them: clone3 → ENOSYS; the deny filter (only with
/// plugins or `log`); the allowlist.
fn reference_server(plan: &SandboxPlan) -> Vec<Vec<Instruction>> {
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, vec![])]),
        Old::Allow,
        Old::Errno(libc::ENOSYS as u32),
        arch(),
    )
    .unwrap();
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = never_allowed()
        .into_iter()
        .map(|(_, n)| (n, vec![]))
        .collect();
    if plan.plugin_runtime {
        let conditions = SOCKET_FAMILIES
            .iter()
            .map(|f| {
                SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *f as u64)
                    .unwrap()
            })
            .collect();
        denied.insert(
            libc::SYS_socket,
            vec![SeccompRule::new(conditions).unwrap()],
        );
    }
    let never =
        SeccompFilter::new(denied, Old::Allow, Old::Errno(libc::EPERM as u32), arch()).unwrap();
    let mut rules = BTreeMap::new();
    for syscall in &plan.syscalls {
        let equal = |arg, values: &[u64]| -> Vec<SeccompRule> {
            values
                .iter()
                .map(|v| dword(arg, SeccompCmpOp::Eq, *v))
                .collect()
        };
        let options = |o: &[i32]| o.iter().map(|v| *v as u64).collect::<Vec<_>>();
        let list = match syscall.args {
            ArgRule::Any => vec![],
            ArgRule::CloneWithoutNamespaces => vec![
                SeccompRule::new(vec![
                    SeccompCondition::new(
                        0,
                        SeccompCmpArgLen::Qword,
                        SeccompCmpOp::MaskedEq(CLONE_NAMESPACE_FLAGS),
                        0,
                    )
                    .unwrap(),
                ])
                .unwrap(),
            ],
            ArgRule::SocketFamilies => equal(0, &SOCKET_FAMILIES.map(|f| f as u64)),
            ArgRule::SafeIoctls => equal(1, &IOCTLS),
            ArgRule::SafePrctl => equal(0, &options(&PRCTL_OPTIONS)),
            ArgRule::PluginPrctl => equal(
                0,
                &options(&[PRCTL_OPTIONS.as_slice(), &PLUGIN_PRCTL_OPTIONS].concat()),
            ),
        };
        rules.insert(syscall.number, list);
    }
    let mismatch = match plan.seccomp_action {
        SeccompAction::Errno => Old::Errno(libc::EPERM as u32),
        SeccompAction::Kill => Old::KillProcess,
        SeccompAction::Log => Old::Log,
    };
    let allowlist = SeccompFilter::new(rules, mismatch, Old::Allow, arch()).unwrap();
    let filters = if plan.plugin_runtime || plan.seccomp_action == SeccompAction::Log {
        vec![clone3, never, allowlist]
    } else {
        vec![clone3, allowlist]
    };
    filters
        .into_iter()
        .map(|f| convert(&BpfProgram::try_from(f).unwrap()))
        .collect()
}

/// The plugin filter as seccompiler built it.
fn reference_child(no_processes: bool) -> Vec<Instruction> {
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = never_allowed()
        .into_iter()
        .map(|(_, n)| (n, vec![]))
        .collect();
    for n in [libc::SYS_socket, libc::SYS_setsid, libc::SYS_setpgid] {
        denied.insert(n, vec![]);
    }
    denied.insert(libc::SYS_prlimit64, vec![dword(0, SeccompCmpOp::Ne, 0)]);
    denied.insert(
        libc::SYS_socketpair,
        (0..=15u64)
            .filter(|kind| *kind != libc::SOCK_STREAM as u64)
            .map(|kind| dword(1, SeccompCmpOp::MaskedEq(0xf), kind))
            .collect(),
    );
    if no_processes {
        #[cfg(target_arch = "x86_64")]
        for n in [libc::SYS_fork, libc::SYS_vfork] {
            denied.insert(n, vec![]);
        }
        let without_thread = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
            0,
        )
        .unwrap();
        denied.insert(
            libc::SYS_clone,
            vec![SeccompRule::new(vec![without_thread]).unwrap()],
        );
    }
    let filter =
        SeccompFilter::new(denied, Old::Allow, Old::Errno(libc::EPERM as u32), arch()).unwrap();
    convert(&BpfProgram::try_from(filter).unwrap())
}

/// Argument values worth trying: every constant the tables compare with, its neighbours, the
/// same with upper bits set, and the extremes.
fn interesting_values() -> Vec<u64> {
    let mut constants: Vec<u64> = vec![0, 1, 0xf, 0x10, u64::from(u32::MAX), u64::MAX];
    constants.extend(IOCTLS);
    constants.extend(
        PRCTL_OPTIONS
            .iter()
            .chain(&PLUGIN_PRCTL_OPTIONS)
            .map(|o| *o as u64),
    );
    constants.extend(SOCKET_FAMILIES.iter().map(|f| *f as u64));
    constants.extend([libc::AF_UNIX as u64, libc::AF_NETLINK as u64]);
    constants.extend((0..16).map(|kind| kind | libc::SOCK_CLOEXEC as u64));
    constants.extend([
        CLONE_NAMESPACE_FLAGS,
        libc::CLONE_THREAD as u64,
        libc::CLONE_NEWUSER as u64,
        0x80,
        (libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_SIGHAND) as u64,
        (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64,
    ]);
    let mut values = Vec::new();
    for c in constants {
        for v in [c, c.wrapping_add(1), c.wrapping_sub(1)] {
            values.extend([v, v | 0x1_0000_0000, v | 0xffff_ffff_0000_0000]);
        }
    }
    values.sort_unstable();
    values.dedup();
    values
}

/// Calls to try: every number up to well past the highest, and some far beyond, with zero
/// arguments; the numbers with argument checks also with each interesting value in each of
/// their first three arguments.
fn calls(checked: &[u32]) -> Vec<SeccompData> {
    let mut calls = Vec::new();
    let numbers =
        (0..1024)
            .chain(X32..X32 + 1024)
            .chain([0x3fff_ffff, 0x7fff_ffff, 0x8000_0000, u32::MAX]);
    for nr in numbers {
        calls.push(SeccompData::call(nr, [0; 6]));
        calls.push(SeccompData::call(nr, [u64::MAX; 6]));
    }
    let values = interesting_values();
    for &nr in checked {
        for arg in 0..3 {
            for &value in &values {
                let mut args = [0u64; 6];
                args[arg] = value;
                calls.push(SeccompData::call(nr, args));
            }
        }
    }
    calls.push(SeccompData {
        arch: 0x4000_0003, // AUDIT_ARCH_I386
        ..SeccompData::call(libc::SYS_read as u32, [0; 6])
    });
    calls
}

/// x86_64's x32-ABI bit: numbers from here to 0x7fffffff.
const X32: u32 = 0x4000_0000;

fn is_x32(nr: u32) -> bool {
    cfg!(target_arch = "x86_64") && (X32..2 * X32).contains(&nr)
}

fn checked_numbers(filter: &Filter) -> Vec<u32> {
    filter
        .syscalls
        .iter()
        .filter(|(_, s)| !s.when.is_empty())
        .map(|(n, _)| *n)
        .collect()
}

#[test]
fn the_server_filter_answers_as_the_three_seccompiler_filters_did() {
    for plan in plans() {
        let table = table(&plan);
        let program = compile(&plan).unwrap();
        let reference = reference_server(&plan);
        let old_length: usize = reference.iter().map(Vec::len).sum();
        // README and bpf.rs quote 143–183 instructions; past ~250 the shared returns no
        // longer fit and the program doubles.
        assert!(
            (140..=190).contains(&program.len()),
            "{} instructions instead of {old_length}: update the docs",
            program.len()
        );
        for call in calls(&checked_numbers(&table)) {
            let ours = evaluate(&program, &call).unwrap();
            assert_eq!(ours, bpf::decide(&table, &call), "{call:?}");
            let expected = if is_x32(call.nr) {
                // seccompiler's filters logged these in `log` mode; the x32 forms of the
                // never-allowed calls must not run.
                EPERM.strictest(table.default).raw()
            } else {
                combined(&reference, &call)
            };
            assert_eq!(
                ours, expected,
                "{call:?} with {:?}, plugins {}",
                plan.seccomp_action, plan.plugin_runtime
            );
        }
    }
}

#[test]
fn the_plugin_filter_answers_as_seccompiler_did_and_refuses_x32() {
    for no_processes in [false, true] {
        let table = child_table(no_processes);
        let program = child_filter(no_processes).unwrap();
        let reference = reference_child(no_processes);
        for call in calls(&checked_numbers(&table)) {
            let ours = evaluate(&program, &call).unwrap();
            assert_eq!(ours, bpf::decide(&table, &call), "{call:?}");
            if is_x32(call.nr) {
                // seccompiler let these through a deny list's default; we refuse them.
                assert_eq!(ours, EPERM.raw(), "{call:?}");
            } else {
                assert_eq!(ours, evaluate(&reference, &call).unwrap(), "{call:?}");
            }
        }
    }
}

#[test]
#[allow(clippy::unnecessary_cast)] // the ioctl requests are `c_int` on musl
fn the_server_filter_decides_the_documented_cases() {
    let answer = |plan: &SandboxPlan, nr: i64, args: [u64; 6]| {
        evaluate(&compile(plan).unwrap(), &SeccompData::call(nr as u32, args)).unwrap()
    };
    let mut plan = base_plan();
    let allow = Action::Allow.raw();
    assert_eq!(answer(&plan, libc::SYS_read, [0; 6]), allow);
    assert_eq!(
        answer(&plan, libc::SYS_clone3, [0; 6]),
        Action::Errno(libc::ENOSYS as u16).raw()
    );
    assert_eq!(answer(&plan, libc::SYS_ptrace, [0; 6]), EPERM.raw());
    assert_eq!(answer(&plan, libc::SYS_execve, [0; 6]), EPERM.raw());
    let ioctl = |request: u64| [0, request, 0, 0, 0, 0];
    assert_eq!(
        answer(&plan, libc::SYS_ioctl, ioctl(libc::FIONBIO as u64)),
        allow
    );
    assert_eq!(
        answer(&plan, libc::SYS_ioctl, ioctl(libc::TIOCSTI as u64)),
        EPERM.raw()
    );
    // The request is an `int`: upper bits do not turn FIONBIO into something else.
    assert_eq!(
        answer(
            &plan,
            libc::SYS_ioctl,
            ioctl(libc::FIONBIO as u64 | 1 << 32)
        ),
        allow
    );
    let socket = |family: i32| [family as u64, 1, 0, 0, 0, 0];
    assert_eq!(
        answer(&plan, libc::SYS_socket, socket(libc::AF_UNIX)),
        EPERM.raw()
    );
    plan.seccomp_action = SeccompAction::Kill;
    let kill = Action::KillProcess.raw();
    assert_eq!(answer(&plan, libc::SYS_socket, socket(libc::AF_UNIX)), kill);
    assert_eq!(answer(&plan, libc::SYS_ptrace, [0; 6]), kill);
    plan.allow_plugins([]);
    // With plugins, an unsupported socket family is an error, not a kill.
    assert_eq!(
        answer(&plan, libc::SYS_socket, socket(libc::AF_UNIX)),
        EPERM.raw()
    );
    assert_eq!(
        answer(&plan, libc::SYS_socket, socket(libc::AF_INET6)),
        allow
    );
    assert_eq!(answer(&plan, libc::SYS_execve, [0; 6]), allow);
    assert_eq!(answer(&plan, libc::SYS_ptrace, [0; 6]), EPERM.raw());
    plan.seccomp_action = SeccompAction::Log;
    assert_eq!(answer(&plan, libc::SYS_ptrace, [0; 6]), EPERM.raw());
    assert_eq!(answer(&plan, 1000, [0; 6]), Action::Log.raw());
}

#[test]
fn x32_calls_never_run_in_any_mode() {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    for plan in plans() {
        let program = compile(&plan).unwrap();
        for nr in (X32..X32 + 1024)
            .map(|nr| nr as i64)
            .chain(never_allowed().into_iter().map(|(_, n)| n | i64::from(X32)))
        {
            let answer = evaluate(&program, &SeccompData::call(nr as u32, [0; 6])).unwrap();
            assert!(
                precedence(answer) <= precedence(EPERM.raw()),
                "x32 call {nr:#x} answered {answer:#x} with {:?}",
                plan.seccomp_action
            );
        }
    }
}

#[test]
fn the_kernel_caches_exactly_the_calls_allowed_whatever_their_arguments() {
    let plans = plans();
    let tables = plans
        .iter()
        .map(table)
        .chain([child_table(false), child_table(true)]);
    for table in tables {
        let program = bpf::emit(&table).unwrap();
        let mut cached = 0;
        for nr in 0..1024u32 {
            let always_allowed = match table.syscalls.get(&nr) {
                Some(syscall) => syscall.fixed_answer() == Some(Action::Allow),
                None => table.default == Action::Allow,
            };
            assert_eq!(bpf::cached_by_kernel(&program, nr), always_allowed, "{nr}");
            cached += usize::from(always_allowed);
        }
        assert!(cached > 90, "{cached} cached calls");
    }
}
