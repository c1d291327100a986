//! Test helper (not a user example): makes the kernel look as if its capabilities ended at
//! CAP_SYS_ADMIN (21) — a seccomp filter answers `prctl(PR_CAPBSET_DROP, n)` for n ≥ 21 with
//! EINVAL, as an intercepting parent could — then runs the sandbox's capability drop and prints
//! its outcome: `ok bounding-empty=BOOL` or `error MESSAGE`. The drop must not take the early
//! EINVAL for the end of the list and report success. Needs root (CAP_SETPCAP); otherwise it
//! prints `not-root`.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::process::ExitCode;

use mcp_secure_server::sandbox::bpf::{
    self, Action, Check, Comparison, Filter, SyscallAction, Width,
};
use mcp_secure_server::sandbox::{privileges, seccomp};

fn main() -> ExitCode {
    if !rustix::process::geteuid().is_root() {
        println!("not-root");
        return ExitCode::SUCCESS;
    }
    let equal = |arg: u8, value: u64| Check {
        arg,
        width: Width::Low32,
        comparison: Comparison::Eq(value),
    };
    let pr_capbset_drop = libc::PR_CAPBSET_DROP as u64;
    let prctl = SyscallAction {
        when: (21..64)
            .map(|cap| vec![equal(0, pr_capbset_drop), equal(1, cap)])
            .collect(),
        action: Action::Errno(libc::EINVAL as u16),
        otherwise: Action::Allow,
    };
    let filter = Filter {
        syscalls: BTreeMap::from([(libc::SYS_prctl as u32, prctl)]),
        default: Action::Allow,
        x32: Action::Allow,
    };
    let installed = bpf::emit(&filter)
        .map_err(|e| e.to_string())
        .and_then(|program| seccomp::install_on_this_thread(&program).map_err(|e| e.to_string()));
    if let Err(error) = installed {
        eprintln!("capability_probe: {error}");
        return ExitCode::from(2);
    }
    match privileges::drop_all() {
        Ok(empty) => println!("ok bounding-empty={empty}"),
        Err(error) => println!("error {error}"),
    }
    ExitCode::SUCCESS
}
