//! Test helper (not a user example): installs a seccomp program from `sandbox::bpf` built to
//! reach the emitter's edge cases, then makes real system calls and prints, one per line,
//! `NAME<TAB>EXPECTED<TAB>OBSERVED`, where each is `allowed` or `errno=N`, and last
//! `instructions=N jumps=M returns=R` (unconditional jumps: the long layout's path; shared
//! returns: the short layout's).
//!
//! ```text
//! bpf_probe [--long]
//! ```
//!
//! With `--long`, 200 filler calls with checks make the program long enough for the layout
//! with inline returns and unconditional jumps; without, it is the short layout with shared
//! returns, as the server's own filter.
//!
//! The expectation is the table read directly (`bpf::decide`); the observation is the kernel
//! running the emitted program. The table gives each probed call its own errno (100 and up,
//! which none of these calls returns by itself) and allows everything else, so the process can
//! still print and exit.
#![allow(clippy::print_stdout)]
// Raw system calls with integer arguments only: nothing to pass by pointer.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::process::ExitCode;

use mcp_secure_server::sandbox::bpf::{
    self, Action, Check, Comparison, Filter, SeccompData, SyscallAction, Width,
};
use mcp_secure_server::sandbox::seccomp;

fn check(arg: u8, width: Width, comparison: Comparison) -> Vec<Check> {
    vec![Check {
        arg,
        width,
        comparison,
    }]
}

fn number(n: libc::c_long) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The probed calls get errnos 100 and up; `fillers` calls with checks, on numbers no process
/// uses here, make the program longer.
fn table(fillers: u32) -> Filter {
    let errno = |n: u16| Action::Errno(100 + n);
    let mut syscalls = BTreeMap::new();
    for (i, n) in [
        libc::SYS_getpid,
        libc::SYS_getppid,
        libc::SYS_getuid,
        libc::SYS_geteuid,
        libc::SYS_getgid,
        libc::SYS_getegid,
        libc::SYS_sched_yield,
    ]
    .into_iter()
    .enumerate()
    {
        syscalls.insert(number(n), SyscallAction::always(errno(i as u16)));
    }
    // getpgid(0) refused, any other pid allowed; compared as 32 bits.
    syscalls.insert(
        number(libc::SYS_getpgid),
        SyscallAction {
            when: vec![check(0, Width::Low32, Comparison::Eq(0))],
            action: errno(20),
            otherwise: Action::Allow,
        },
    );
    // getsid(pid) refused unless all 64 bits differ from 1 << 32 (so getsid(0) is refused).
    syscalls.insert(
        number(libc::SYS_getsid),
        SyscallAction {
            when: vec![check(0, Width::Full64, Comparison::Ne(1 << 32))],
            action: errno(21),
            otherwise: Action::Allow,
        },
    );
    // Fixed answers on scattered numbers: one shared return in the short layout, one
    // return each in the long one.
    for scattered in 0..60u32 {
        syscalls.insert(1000 + 3 * scattered, SyscallAction::always(errno(40)));
    }
    for filler in 0..fillers {
        syscalls.insert(
            2000 + 2 * filler,
            SyscallAction {
                when: vec![
                    check(0, Width::Low32, Comparison::Eq(u64::from(filler))),
                    check(1, Width::Full64, Comparison::Eq(u64::from(filler) << 33)),
                ],
                action: errno(30),
                otherwise: errno(31),
            },
        );
    }
    Filter {
        syscalls,
        default: Action::Allow,
        x32: Action::Errno(140),
    }
}

fn describe(raw: u32) -> String {
    if raw == Action::Allow.raw() {
        "allowed".into()
    } else if raw & 0xffff_0000 == Action::Errno(0).raw() {
        format!("errno={}", raw & 0xffff)
    } else {
        format!("action={raw:#x}")
    }
}

fn main() -> ExitCode {
    let long = std::env::args().nth(1).as_deref() == Some("--long");
    let filter = table(if long { 200 } else { 0 });
    let program = match bpf::emit(&filter) {
        Ok(program) => program,
        Err(error) => {
            eprintln!("bpf_probe: {error}");
            return ExitCode::from(2);
        }
    };
    let mut probes: Vec<(String, u32, [u64; 6])> = Vec::new();
    for (name, n) in [
        ("getpid", libc::SYS_getpid),
        ("getppid", libc::SYS_getppid),
        ("getuid", libc::SYS_getuid),
        ("geteuid", libc::SYS_geteuid),
        ("getgid", libc::SYS_getgid),
        ("getegid", libc::SYS_getegid),
        ("sched_yield", libc::SYS_sched_yield),
        ("gettid", libc::SYS_gettid),
    ] {
        probes.push((name.into(), number(n), [0; 6]));
    }
    for pid in [0u64, 1 << 32, 1, 1 | 1 << 32] {
        probes.push((
            format!("getpgid({pid:#x})"),
            number(libc::SYS_getpgid),
            [pid, 0, 0, 0, 0, 0],
        ));
        probes.push((
            format!("getsid({pid:#x})"),
            number(libc::SYS_getsid),
            [pid, 0, 0, 0, 0, 0],
        ));
    }
    if cfg!(target_arch = "x86_64") {
        probes.push((
            "x32 getpid".into(),
            0x4000_0000 | number(libc::SYS_getpid),
            [0; 6],
        ));
    }
    let expected: Vec<String> = probes
        .iter()
        .map(|(_, nr, args)| describe(bpf::decide(&filter, &SeccompData::call(*nr, *args))))
        .collect();
    if let Err(error) = seccomp::install_on_this_thread(&program) {
        eprintln!("bpf_probe: {error}");
        return ExitCode::from(2);
    }
    for ((name, nr, args), expected) in probes.iter().zip(expected) {
        // SAFETY: each probed call takes integers only (pids) or nothing, and only reads
        // process state; a refused one returns an error without running.
        let result = unsafe {
            libc::syscall(
                libc::c_long::from(*nr),
                args[0] as libc::c_long,
                args[1] as libc::c_long,
            )
        };
        let observed = if result >= 0 {
            "allowed".to_owned()
        } else {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            // An allowed call may fail by itself (getpgid of a missing pid: ESRCH).
            if errno < 100 {
                "allowed".to_owned()
            } else {
                format!("errno={errno}")
            }
        };
        println!("{name}\t{expected}\t{observed}");
    }
    let jumps = program
        .iter()
        .filter(|i| i.code == (libc::BPF_JMP | libc::BPF_JA) as u16)
        .count();
    let returns = program
        .iter()
        .filter(|i| i.code == (libc::BPF_RET | libc::BPF_K) as u16)
        .count();
    println!(
        "instructions={} jumps={jumps} returns={returns}",
        program.len()
    );
    ExitCode::SUCCESS
}
