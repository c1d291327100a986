//! The emitter's edge cases, each with a table built to reach it.

use super::*;

const DENY: Action = Action::Errno(1);

fn low32_eq(arg: u8, value: u64) -> Check {
    Check {
        arg,
        width: Width::Low32,
        comparison: Comparison::Eq(value),
    }
}

fn table(syscalls: impl IntoIterator<Item = (u32, SyscallAction)>) -> Filter {
    Filter {
        syscalls: syscalls.into_iter().collect(),
        default: Action::Allow,
        x32: Action::Errno(13),
    }
}

/// Numbers around every listed one, each with arguments on and off every check's constant.
fn agrees_everywhere(filter: &Filter, program: &[Instruction]) {
    for (&number, syscall) in &filter.syscalls {
        for nr in [number.wrapping_sub(1), number, number + 1] {
            let mut argument_sets = vec![[0; 6], [u64::MAX; 6]];
            for check in syscall.when.iter().flatten() {
                if let Comparison::Eq(value) = check.comparison {
                    for value in [value, value + 1, value | 1 << 40] {
                        let mut args = [0; 6];
                        args[usize::from(check.arg)] = value;
                        argument_sets.push(args);
                    }
                }
            }
            for args in argument_sets {
                let call = SeccompData::call(nr, args);
                assert_eq!(
                    evaluate(program, &call),
                    Ok(decide(filter, &call)),
                    "{call:?}"
                );
            }
        }
    }
}

#[test]
fn a_long_lower_half_is_reached_through_an_unconditional_jump() {
    // 200 calls with checks, each several instructions: the first split's lower half is far
    // longer than a conditional jump reaches.
    let filter = table((0..200).map(|n| {
        (
            n * 2,
            SyscallAction {
                when: vec![vec![low32_eq(0, u64::from(n))], vec![low32_eq(1, 7)]],
                action: Action::Allow,
                otherwise: DENY,
            },
        )
    }));
    let program = emit(&filter).unwrap();
    assert!(
        program.iter().any(|i| i.code == JMP_JA),
        "no trampoline in {} instructions",
        program.len()
    );
    agrees_everywhere(&filter, &program);
}

#[test]
fn short_programs_share_their_returns() {
    let filter = table((0..40).map(|n| (n * 3, SyscallAction::always(DENY))));
    let program = emit(&filter).unwrap();
    let returns = program.iter().filter(|i| i.code == RET_K).count();
    // Kill for a foreign architecture, allow, deny, and on x86_64 the x32 answer.
    let answers = if cfg!(target_arch = "x86_64") { 4 } else { 3 };
    assert_eq!(returns, answers);
    assert!(program.iter().all(|i| i.code != JMP_JA));
    agrees_everywhere(&filter, &program);
}

#[test]
fn numbers_no_call_has_are_refused() {
    let one = |number| table([(number, SyscallAction::always(DENY))]);
    for number in [0x8000_0001, u32::MAX] {
        assert_eq!(
            emit(&one(number)),
            Err(EmitError::NotANumber { number }),
            "{number:#x}"
        );
    }
    if cfg!(target_arch = "x86_64") {
        assert_eq!(
            emit(&one(0x4000_0005)),
            Err(EmitError::NotANumber {
                number: 0x4000_0005
            })
        );
        // The last number below the x32 range still works, and x32 keeps its own answer.
        let filter = one(0x3fff_ffff);
        let program = emit(&filter).unwrap();
        for nr in [0x3fff_fffe, 0x3fff_ffff, 0x4000_0000, 0x8000_0000] {
            let call = SeccompData::call(nr, [0; 6]);
            assert_eq!(evaluate(&program, &call), Ok(decide(&filter, &call)));
        }
    }
}

#[test]
fn malformed_checks_are_refused() {
    let with = |check: Check| {
        table([(
            3,
            SyscallAction {
                when: vec![vec![check]],
                action: Action::Allow,
                otherwise: DENY,
            },
        )])
    };
    assert_eq!(
        emit(&with(low32_eq(6, 0))),
        Err(EmitError::NoSuchArgument { number: 3, arg: 6 })
    );
    assert_eq!(
        emit(&with(low32_eq(0, 1 << 32))),
        Err(EmitError::WideConstant {
            number: 3,
            value: 1 << 32
        })
    );
    let wide = Check {
        arg: 0,
        width: Width::Full64,
        comparison: Comparison::MaskedEq {
            mask: u64::MAX,
            value: 1,
        },
    };
    let filter = table([(
        3,
        SyscallAction {
            when: vec![vec![wide; 50]],
            action: Action::Allow,
            otherwise: DENY,
        },
    )]);
    assert_eq!(emit(&filter), Err(EmitError::ChecksTooLong { number: 3 }));
}

#[test]
fn sixty_four_bit_checks_compare_both_halves() {
    let check = |comparison| Check {
        arg: 2,
        width: Width::Full64,
        comparison,
    };
    let value = 0x1234_5678_9abc_def0;
    let filter = table([
        (
            1,
            SyscallAction {
                when: vec![vec![check(Comparison::Ne(value))]],
                action: Action::Allow,
                otherwise: DENY,
            },
        ),
        (
            2,
            SyscallAction {
                when: vec![vec![check(Comparison::MaskedEq {
                    mask: 0xff00_0000_0000_00ff,
                    value: 0x1200_0000_0000_00f0,
                })]],
                action: Action::Allow,
                otherwise: DENY,
            },
        ),
    ]);
    let program = emit(&filter).unwrap();
    for nr in [1, 2] {
        for arg in [
            value,
            value ^ 1,
            value ^ 1 << 32,
            value ^ 1 << 63,
            0x12ff_ffff_ffff_fff0,
            0x1300_0000_0000_00f0,
        ] {
            let call = SeccompData::call(nr, [0, 0, arg, 0, 0, 0]);
            assert_eq!(
                evaluate(&program, &call),
                Ok(decide(&filter, &call)),
                "{call:?}"
            );
        }
    }
}

#[test]
fn the_load_time_checks_refuse_what_the_kernel_refuses() {
    let allow = ret(Action::Allow);
    assert_eq!(verify(&[]), Err(InvalidProgram::Length(0)));
    assert_eq!(
        verify(&[load(NR_OFFSET)]),
        Err(InvalidProgram::NoFinalReturn)
    );
    assert_eq!(
        verify(&[load(2), allow]),
        Err(InvalidProgram::BadLoad { at: 0, offset: 2 })
    );
    assert_eq!(
        verify(&[load(64), allow]),
        Err(InvalidProgram::BadLoad { at: 0, offset: 64 })
    );
    assert_eq!(
        verify(&[jump(JMP_JEQ_K, 0, 0, 1), allow]),
        Err(InvalidProgram::JumpOut { at: 0 })
    );
    assert_eq!(
        verify(&[jump(JMP_JA, 1, 0, 0), allow]),
        Err(InvalidProgram::JumpOut { at: 0 })
    );
    let jge_x = Instruction {
        code: JMP_JGE_K | code(libc::BPF_X),
        jt: 0,
        jf: 0,
        k: 0,
    };
    assert_eq!(
        verify(&[jge_x, allow]),
        Err(InvalidProgram::Unsupported {
            at: 0,
            code: jge_x.code
        })
    );
    assert_eq!(verify(&[jump(JMP_JEQ_K, 0, 1, 0), allow, allow]), Ok(()));
}

#[test]
fn the_opcodes_are_the_kernels() {
    // From linux/bpf_common.h and linux/filter.h, spelled out so that a wrong constant
    // cannot hide in both the emitter and the interpreter.
    assert_eq!(
        [
            LD_W_ABS, ALU_AND_K, JMP_JA, JMP_JEQ_K, JMP_JGT_K, JMP_JGE_K, JMP_JSET_K, RET_K
        ],
        [0x20, 0x54, 0x05, 0x15, 0x25, 0x35, 0x45, 0x06]
    );
    assert_eq!(Action::KillProcess.raw(), 0x8000_0000);
    assert_eq!(Action::Errno(1).raw(), 0x0005_0001);
    assert_eq!(Action::Log.raw(), 0x7ffc_0000);
    assert_eq!(Action::Allow.raw(), 0x7fff_0000);
}
