//! The `seccomp_filter` target: a filter table built from the input must give, through its
//! emitted program, the answer the table gives when read directly, for every call near a listed
//! number and with arguments at and around every constant a check compares with.

use std::collections::BTreeMap;

use crate::sandbox::bpf::{
    Action, Check, Comparison, EmitError, Filter, SeccompData, SyscallAction, Width,
    cached_by_kernel, decide, emit, evaluate, verify,
};

/// Reads the input a few bytes at a time; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let Some((first, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        *first
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |value, _| value << 8 | u64::from(self.u8()))
    }

    /// A constant: mostly small, sometimes with the upper half set.
    fn constant(&mut self, width: Width) -> u64 {
        let value = match self.u8() % 4 {
            0 => u64::from(self.u8()),
            1 => u64::from(self.u8()) << 32 | u64::from(self.u8()),
            _ => self.u64(),
        };
        match width {
            Width::Low32 => value & u64::from(u32::MAX),
            Width::Full64 => value,
        }
    }

    fn action(&mut self) -> Action {
        match self.u8() % 4 {
            0 => Action::Allow,
            1 => Action::Log,
            2 => Action::Errno(u16::from(self.u8())),
            _ => Action::KillProcess,
        }
    }

    fn check(&mut self) -> Check {
        let arg = self.u8() % 6;
        let width = if self.u8().is_multiple_of(2) {
            Width::Low32
        } else {
            Width::Full64
        };
        let comparison = match self.u8() % 3 {
            0 => Comparison::Eq(self.constant(width)),
            1 => Comparison::Ne(self.constant(width)),
            _ => Comparison::MaskedEq {
                mask: self.constant(width),
                value: self.constant(width),
            },
        };
        Check {
            arg,
            width,
            comparison,
        }
    }

    fn filter(&mut self) -> Filter {
        let default = self.action();
        let x32 = self.action();
        let mut syscalls = BTreeMap::new();
        for _ in 0..self.u8() % 48 {
            // Clustered numbers make runs; a few far ones make long gaps.
            let number = if self.u8().is_multiple_of(8) {
                // Sometimes beyond the numbers a table may list, which must be refused.
                let number = self.u64() as u32;
                if self.u8().is_multiple_of(4) {
                    number
                } else {
                    number & 0x3fff_ffff
                }
            } else {
                u32::from(self.u8()) + u32::from(self.u8() % 4) * 256
            };
            let alternatives = (0..self.u8() % 4)
                .map(|_| (0..self.u8() % 3).map(|_| self.check()).collect())
                .collect();
            let action = self.action();
            let otherwise = self.action();
            syscalls.insert(
                number,
                SyscallAction {
                    when: alternatives,
                    action,
                    otherwise,
                },
            );
        }
        Filter {
            syscalls,
            default,
            x32,
        }
    }
}

/// Argument values that sit on a check's decision boundary.
fn boundary_values(check: &Check) -> Vec<u64> {
    let constants = match check.comparison {
        Comparison::Eq(value) | Comparison::Ne(value) => vec![value],
        Comparison::MaskedEq { mask, value } => vec![value, mask, value | !mask, value ^ mask],
    };
    constants
        .into_iter()
        .flat_map(|c| [c, c ^ 1, c ^ 0xffff_ffff_0000_0000, c ^ 1 << 32])
        .collect()
}

pub(super) fn seccomp_filter(data: &[u8]) {
    let mut bytes = Bytes(data);
    let filter = bytes.filter();
    let first_unlisted = if cfg!(target_arch = "x86_64") {
        0x4000_0000
    } else {
        u32::MAX
    };
    let program = match emit(&filter) {
        Ok(program) => program,
        Err(EmitError::NotANumber { number }) => {
            assert!(number >= first_unlisted, "{number:#x} refused");
            return;
        }
        Err(e) => panic!("a valid table was refused: {e}"),
    };
    if let Some(number) = filter.syscalls.keys().find(|n| **n >= first_unlisted) {
        panic!("{number:#x} is no call number, yet the table was accepted");
    }
    verify(&program).unwrap_or_else(|e| panic!("the kernel would refuse the program: {e}"));
    // Compact: a few instructions per listed call, never a chain over the whole table.
    let checks: usize = filter
        .syscalls
        .values()
        .map(|s| s.when.iter().map(|all| 1 + 6 * all.len()).sum::<usize>() + 1)
        .sum();
    let bound = 4 + 3 * (2 * filter.syscalls.len() + 3) + checks;
    assert!(program.len() <= bound, "{} > {bound}", program.len());

    let mut calls = Vec::new();
    let free_args = [bytes.u64(), bytes.u64(), bytes.u64()];
    for (&number, syscall) in &filter.syscalls {
        for nr in [number.wrapping_sub(1), number, number.wrapping_add(1)] {
            calls.push(SeccompData::call(nr, [0; 6]));
            calls.push(SeccompData::call(nr, [u64::MAX; 6]));
            calls.push(SeccompData::call(
                nr,
                [free_args[0], free_args[1], free_args[2], 0, 0, 0],
            ));
        }
        for check in syscall.when.iter().flatten() {
            for value in boundary_values(check) {
                let mut args = [free_args[0]; 6];
                args[usize::from(check.arg)] = value;
                calls.push(SeccompData::call(number, args));
            }
        }
    }
    for nr in [
        0,
        0x3fff_ffff,
        0x4000_0000,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX,
    ] {
        calls.push(SeccompData::call(nr, [0; 6]));
    }
    calls.push(SeccompData {
        arch: 0x4000_0003,
        ..SeccompData::call(0, [0; 6])
    });
    for call in &calls {
        let ran = evaluate(&program, call).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ran, decide(&filter, call), "{call:?} in {filter:?}");
        // The kernel's cache skips the program for exactly the calls it always allows.
        let always_allowed = match filter.syscalls.get(&call.nr) {
            Some(syscall) => syscall.fixed_answer() == Some(Action::Allow),
            None if call.nr < first_unlisted => filter.default == Action::Allow,
            None => continue, // the kernel only caches real call numbers
        };
        assert_eq!(
            cached_by_kernel(&program, call.nr),
            always_allowed,
            "{call:?}"
        );
    }
}
