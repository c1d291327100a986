//! A compact seccomp-BPF emitter: a table of system calls becomes one classic-BPF program that
//! finds the number with a binary search over ranges.
//!
//! Why our own: the program is JIT-compiled and checked when it is installed, and the kernel
//! runs it for every system call whose answer it cannot cache. A linear chain of comparisons
//! (5 instructions per allowed call) made the allowlist 572 instructions long; as a search tree
//! over runs of numbers with the same answer, whose splits jump straight to one shared return
//! per answer, it is 143, and any number is decided after about 7 comparisons instead of up to
//! 120. Programs too long for the shared returns (BPF jumps reach 255 instructions) return
//! inline instead.
//!
//! The program only uses the instructions the kernel's action cache can emulate (loads of the
//! number and architecture, constant jumps, `and`, constant returns), so a call allowed whatever
//! its arguments never runs the filter at all. [`evaluate`] runs a program the way the kernel
//! does; the tests and the `seccomp_filter` fuzz target compare it against [`decide`], the
//! table read directly, and against the seccompiler crate's programs.

use std::collections::BTreeMap;

use thiserror::Error;

/// One classic-BPF instruction, laid out as the kernel's `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instruction {
    /// Operation class, size, mode and source bits.
    pub code: u16,
    /// Forward jump when the condition holds.
    pub jt: u8,
    /// Forward jump when it does not.
    pub jf: u8,
    /// The constant operand.
    pub k: u32,
}

impl Instruction {
    /// For a jump, how many instructions it skips given the accumulator; `None` for others.
    fn skip(&self, accumulator: u32) -> Option<usize> {
        let k = self.k;
        let holds = match self.code {
            JMP_JA => return Some(k as usize),
            JMP_JEQ_K => accumulator == k,
            JMP_JGT_K => accumulator > k,
            JMP_JGE_K => accumulator >= k,
            JMP_JSET_K => accumulator & k != 0,
            _ => return None,
        };
        Some(usize::from(if holds { self.jt } else { self.jf }))
    }
}

/// A seccomp program, ready to install.
pub type Program = Vec<Instruction>;

/// An instruction code from the kernel's `BPF_*` bits (all below 0x100).
const fn code(bits: u32) -> u16 {
    bits as u16
}

const LD_W_ABS: u16 = code(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS);
const ALU_AND_K: u16 = code(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K);
const JMP_JA: u16 = code(libc::BPF_JMP | libc::BPF_JA);
const JMP_JEQ_K: u16 = code(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K);
const JMP_JGT_K: u16 = code(libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K);
const JMP_JGE_K: u16 = code(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K);
const JMP_JSET_K: u16 = code(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K);
const RET_K: u16 = code(libc::BPF_RET | libc::BPF_K);

/// The longest program the kernel accepts (BPF_MAXINSNS).
pub const MAX_INSTRUCTIONS: usize = libc::BPF_MAXINSNS as usize;

/// The size of `struct seccomp_data`, which loads must stay within.
const DATA_SIZE: usize = 64;

/// `struct seccomp_data` offsets: the call number, the architecture, then six 64-bit arguments.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
const ARGS_OFFSET: u32 = 16;

/// The audit architecture of the build target, which every filter checks first.
#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH: u32 = 0xc000_003e;
/// The audit architecture of the build target, which every filter checks first.
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH: u32 = 0xc000_00b7;
/// The audit architecture of the build target, which every filter checks first.
#[cfg(target_arch = "riscv64")]
pub const AUDIT_ARCH: u32 = 0xc000_00f3;

/// On x86_64, numbers with this bit set are x32-ABI calls under the same audit architecture.
/// A table never lists them, nor anything above (negative as `int`); x32 numbers get the
/// filter's `x32` answer.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The first number a table may not list on this architecture.
const fn first_unlisted() -> u32 {
    if cfg!(target_arch = "x86_64") {
        X32_SYSCALL_BIT
    } else {
        u32::MAX
    }
}

/// What the kernel does with a call, from least to most severe as the kernel ranks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run it.
    Allow,
    /// Run it and write an audit record.
    Log,
    /// Fail it with this errno.
    Errno(u16),
    /// Kill the whole process.
    KillProcess,
}

impl Action {
    /// The `SECCOMP_RET_*` value.
    pub const fn raw(self) -> u32 {
        match self {
            Action::Allow => 0x7fff_0000,
            Action::Log => 0x7ffc_0000,
            Action::Errno(errno) => 0x0005_0000 | errno as u32,
            Action::KillProcess => 0x8000_0000,
        }
    }

    /// The more severe of two answers, as the kernel chooses between filters.
    pub fn strictest(self, other: Action) -> Action {
        if precedence(other.raw()) < precedence(self.raw()) {
            other
        } else {
            self
        }
    }
}

/// The kernel's ranking of `SECCOMP_RET_*` values: lower is more severe (the action bits
/// compared as a signed number, so KILL_PROCESS comes first).
pub fn precedence(raw: u32) -> i32 {
    (raw & 0xffff_0000) as i32
}

/// How much of an argument a check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// The low 32 bits: for arguments the kernel reads as `int`, whose upper bits a caller can
    /// set freely without changing what the call does.
    Low32,
    /// All 64 bits.
    Full64,
}

/// A comparison of one argument with a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Equal to the value.
    Eq(u64),
    /// Different from the value.
    Ne(u64),
    /// `argument & mask == value`.
    MaskedEq {
        /// Bits compared.
        mask: u64,
        /// Their expected value.
        value: u64,
    },
}

/// One argument check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Which argument, 0 to 5.
    pub arg: u8,
    /// How much of it.
    pub width: Width,
    /// Compared how.
    pub comparison: Comparison,
}

/// What one system call gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallAction {
    /// Alternatives, each a list of checks that must all hold. Empty: `action` always applies.
    pub when: Vec<Vec<Check>>,
    /// The answer when an alternative holds (or always, without alternatives).
    pub action: Action,
    /// The answer when none holds.
    pub otherwise: Action,
}

impl SyscallAction {
    /// The same answer whatever the arguments.
    pub fn always(action: Action) -> Self {
        SyscallAction {
            when: Vec::new(),
            action,
            otherwise: action,
        }
    }

    /// The answer when it does not depend on the arguments: no alternatives, an alternative
    /// without checks (it always holds), or the same answer either way. Such a call needs no
    /// argument loads, so the kernel can cache it.
    pub fn fixed_answer(&self) -> Option<Action> {
        let always = self.when.is_empty() || self.when.iter().any(Vec::is_empty);
        (always || self.action == self.otherwise).then_some(self.action)
    }
}

/// A whole filter: the answer for each listed number, and for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Listed calls by number.
    pub syscalls: BTreeMap<u32, SyscallAction>,
    /// The answer for every number not listed.
    pub default: Action,
    /// The answer for x32-ABI numbers on x86_64 (ignored elsewhere). A deny list must not let
    /// them through its default.
    pub x32: Action,
}

/// Why a filter cannot be emitted. These are mistakes in the table, not in the policy.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EmitError {
    /// A check names an argument a system call does not have.
    #[error("syscall {number}: argument {arg} does not exist (0 to 5)")]
    NoSuchArgument {
        /// The call.
        number: u32,
        /// The argument index.
        arg: u8,
    },
    /// A 32-bit check with a constant that does not fit in 32 bits can never mean what it says.
    #[error("syscall {number}: a 32-bit check compares with {value:#x}, which needs 64 bits")]
    WideConstant {
        /// The call.
        number: u32,
        /// The constant.
        value: u64,
    },
    /// A number no system call has here: in or above the x32 range on x86_64 (the `x32`
    /// answer covers those), or `u32::MAX`.
    #[error("syscall {number:#x} is not a system call number of this architecture")]
    NotANumber {
        /// The call.
        number: u32,
    },
    /// One call's checks need a jump longer than BPF's 255 instructions.
    #[error("syscall {number}: its checks are too long for one BPF jump")]
    ChecksTooLong {
        /// The call.
        number: u32,
    },
    /// The program is longer than the kernel accepts.
    #[error("the filter needs {0} instructions; the kernel accepts at most {MAX_INSTRUCTIONS}")]
    TooLong(usize),
    /// The number ranges came out unsorted (a bug in this module).
    #[error("internal error: the syscall number ranges are not sorted")]
    Unordered,
    /// The program would fail the kernel's load-time checks (a bug in this module).
    #[error("internal error: the emitted program is invalid: {0}")]
    Invalid(InvalidProgram),
}

/// Emits the filter's program.
///
/// # Errors
/// A check is malformed, a number is in the x32 range, or the program would be too long.
pub fn emit(filter: &Filter) -> Result<Program, EmitError> {
    for (&number, syscall) in &filter.syscalls {
        validate(number, syscall)?;
    }
    let mut program = vec![
        load(ARCH_OFFSET),
        jump(JMP_JEQ_K, AUDIT_ARCH, 1, 0),
        ret(Action::KillProcess),
        load(NR_OFFSET),
    ];
    let ranges = ranges(filter);
    // The search relies on it; `validate` guarantees it.
    if ranges.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
        return Err(EmitError::Unordered);
    }
    // Short programs share their returns; long ones, whose splits could not reach a shared
    // return at the end, return inline.
    match shared_returns(&ranges)? {
        Some(body) => program.extend(body),
        None => program.extend(search(&ranges)?),
    }
    if program.len() > MAX_INSTRUCTIONS {
        return Err(EmitError::TooLong(program.len()));
    }
    verify(&program).map_err(EmitError::Invalid)?;
    Ok(program)
}

fn validate(number: u32, syscall: &SyscallAction) -> Result<(), EmitError> {
    if number >= first_unlisted() {
        return Err(EmitError::NotANumber { number });
    }
    for check in syscall.when.iter().flatten() {
        if check.arg > 5 {
            return Err(EmitError::NoSuchArgument {
                number,
                arg: check.arg,
            });
        }
        let constants = match check.comparison {
            Comparison::Eq(value) | Comparison::Ne(value) => [value, 0],
            Comparison::MaskedEq { mask, value } => [mask, value],
        };
        if check.width == Width::Low32
            && let Some(&value) = constants.iter().find(|c| **c > u64::from(u32::MAX))
        {
            return Err(EmitError::WideConstant { number, value });
        }
    }
    Ok(())
}

/// What a range of numbers gets: a fixed answer, or the checks of one listed call.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Leaf<'a> {
    Answer(Action),
    Checks(u32, &'a SyscallAction),
}

/// The whole number space as ranges `(first number, leaf)`, sorted, neighbours with the same
/// fixed answer merged.
fn ranges(filter: &Filter) -> Vec<(u32, Leaf<'_>)> {
    fn push<'a>(start: u32, leaf: Leaf<'a>, out: &mut Vec<(u32, Leaf<'a>)>) {
        if let (Leaf::Answer(new), Some((_, Leaf::Answer(last)))) = (leaf, out.last())
            && new == *last
        {
            return;
        }
        out.push((start, leaf));
    }
    let mut out = Vec::new();
    // Listed numbers are below `first_unlisted()` (see `validate`), so `number + 1` fits.
    let mut next = 0u32;
    for (&number, syscall) in &filter.syscalls {
        if number > next {
            push(next, Leaf::Answer(filter.default), &mut out);
        }
        let leaf = match syscall.fixed_answer() {
            Some(action) => Leaf::Answer(action),
            None => Leaf::Checks(number, syscall),
        };
        push(number, leaf, &mut out);
        next = number.saturating_add(1);
    }
    if next < first_unlisted() || !cfg!(target_arch = "x86_64") {
        push(next, Leaf::Answer(filter.default), &mut out);
    }
    if cfg!(target_arch = "x86_64") {
        push(X32_SYSCALL_BIT, Leaf::Answer(filter.x32), &mut out);
        // Numbers above the x32 range (negative as `int`) are no call at all.
        push(X32_SYSCALL_BIT << 1, Leaf::Answer(filter.default), &mut out);
    }
    out
}

/// Where a split sends the search: to code at an index of the body, or to the shared return
/// of an answer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Destination {
    Code(usize),
    Answer(Action),
}

/// A body instruction whose jumps are resolved once the body's length is known.
enum Pending {
    Ready(Instruction),
    Split {
        pivot: u32,
        lower: Destination,
        upper: Destination,
    },
}

/// The search of [`search`], but a split whose half is a fixed answer jumps straight to one
/// return per answer, placed after the body: half the instructions of [`search`] for the
/// allowlist. `None` when some jump would be longer than BPF's 255.
fn shared_returns(ranges: &[(u32, Leaf<'_>)]) -> Result<Option<Program>, EmitError> {
    fn node(ranges: &[(u32, Leaf<'_>)], body: &mut Vec<Pending>) -> Result<Destination, EmitError> {
        let [(_, leaf)] = ranges else {
            let (lower, upper) = ranges.split_at(ranges.len() / 2);
            let Some(&(pivot, _)) = upper.first() else {
                return Ok(Destination::Code(body.len())); // unreachable: two or more ranges
            };
            let at = body.len();
            body.push(Pending::Ready(ret(Action::KillProcess))); // replaced below
            let lower = node(lower, body)?;
            let upper = node(upper, body)?;
            body[at] = Pending::Split {
                pivot,
                lower,
                upper,
            };
            return Ok(Destination::Code(at));
        };
        match *leaf {
            Leaf::Answer(action) => Ok(Destination::Answer(action)),
            Leaf::Checks(number, syscall) => {
                let at = body.len();
                body.extend(checks(number, syscall)?.into_iter().map(Pending::Ready));
                Ok(Destination::Code(at))
            }
        }
    }
    let mut body = Vec::new();
    if let Destination::Answer(action) = node(ranges, &mut body)? {
        return Ok(Some(vec![ret(action)]));
    }
    let mut answers: Vec<Action> = Vec::new();
    for pending in &body {
        if let Pending::Split { lower, upper, .. } = pending {
            for destination in [lower, upper] {
                if let Destination::Answer(action) = destination
                    && !answers.contains(action)
                {
                    answers.push(*action);
                }
            }
        }
    }
    let position = |destination: Destination| match destination {
        Destination::Code(at) => Some(at),
        Destination::Answer(action) => answers
            .iter()
            .position(|a| *a == action)
            .map(|i| body.len() + i),
    };
    let mut program = Vec::with_capacity(body.len() + answers.len());
    for (at, pending) in body.iter().enumerate() {
        let instruction = match *pending {
            Pending::Ready(instruction) => instruction,
            Pending::Split {
                pivot,
                lower,
                upper,
            } => {
                let skip = |destination| {
                    position(destination)
                        .and_then(|to| to.checked_sub(at + 1))
                        .and_then(|skip| u8::try_from(skip).ok())
                };
                let (Some(jt), Some(jf)) = (skip(upper), skip(lower)) else {
                    return Ok(None);
                };
                jump(JMP_JGE_K, pivot, jt, jf)
            }
        };
        program.push(instruction);
    }
    program.extend(answers.into_iter().map(ret));
    Ok(Some(program))
}

/// A binary search over `ranges` (the call number in the accumulator), laid out in pre-order:
/// each split jumps forward over its lower half when the number is at least the upper half's
/// first number.
fn search(ranges: &[(u32, Leaf<'_>)]) -> Result<Program, EmitError> {
    let [(_, leaf)] = ranges else {
        let (lower, upper) = ranges.split_at(ranges.len() / 2);
        let Some(&(pivot, _)) = upper.first() else {
            return Ok(Vec::new()); // no ranges: `ranges` always returns at least one
        };
        let lower = search(lower)?;
        let upper = search(upper)?;
        let mut program = Vec::with_capacity(lower.len() + upper.len() + 2);
        match u8::try_from(lower.len()) {
            Ok(skip) => program.push(jump(JMP_JGE_K, pivot, skip, 0)),
            Err(_) => {
                // Too far for a conditional jump: go through an unconditional one.
                program.push(jump(JMP_JGE_K, pivot, 0, 1));
                program.push(jump(JMP_JA, to_k(lower.len()), 0, 0));
            }
        }
        program.extend(lower);
        program.extend(upper);
        return Ok(program);
    };
    match *leaf {
        Leaf::Answer(action) => Ok(vec![ret(action)]),
        Leaf::Checks(number, syscall) => checks(number, syscall),
    }
}

/// A listed call's alternatives in order; the first that holds returns `action`.
fn checks(number: u32, syscall: &SyscallAction) -> Result<Program, EmitError> {
    let mut program = Vec::new();
    for alternative in &syscall.when {
        let mut block = Vec::new();
        // Instructions whose `jf` (or `jt`) must reach the next alternative, patched below.
        let mut exits: Vec<(usize, bool)> = Vec::new();
        for check in alternative {
            check_code(check, &mut block, &mut exits);
        }
        block.push(ret(syscall.action));
        let end = block.len();
        for (at, on_true) in exits {
            let skip =
                u8::try_from(end - at - 1).map_err(|_| EmitError::ChecksTooLong { number })?;
            if on_true {
                block[at].jt = skip;
            } else {
                block[at].jf = skip;
            }
        }
        program.extend(block);
    }
    program.push(ret(syscall.otherwise));
    Ok(program)
}

/// One check: falls through when it holds; the recorded exits leave the alternative.
fn check_code(check: &Check, block: &mut Program, exits: &mut Vec<(usize, bool)>) {
    let low =
        ARGS_OFFSET + 8 * u32::from(check.arg) + if cfg!(target_endian = "little") { 0 } else { 4 };
    let high =
        ARGS_OFFSET + 8 * u32::from(check.arg) + if cfg!(target_endian = "little") { 4 } else { 0 };
    let split = |value: u64| ((value >> 32) as u32, value as u32);
    let mut fail_unless_equal =
        |block: &mut Program, offset: u32, mask: Option<u32>, value: u32| {
            block.push(load(offset));
            if let Some(mask) = mask {
                block.push(Instruction {
                    code: ALU_AND_K,
                    jt: 0,
                    jf: 0,
                    k: mask,
                });
            }
            exits.push((block.len(), false));
            block.push(jump(JMP_JEQ_K, value, 0, 0));
        };
    match (check.width, check.comparison) {
        (Width::Low32, Comparison::Eq(value)) => {
            fail_unless_equal(block, low, None, value as u32);
        }
        (Width::Low32, Comparison::MaskedEq { mask, value }) => {
            fail_unless_equal(block, low, Some(mask as u32), value as u32);
        }
        (Width::Full64, Comparison::Eq(value)) => {
            let (hi, lo) = split(value);
            fail_unless_equal(block, high, None, hi);
            fail_unless_equal(block, low, None, lo);
        }
        (Width::Full64, Comparison::MaskedEq { mask, value }) => {
            let (mask_hi, mask_lo) = split(mask);
            let (value_hi, value_lo) = split(value);
            // (arg & 0) == 0 holds for every argument: not worth two instructions.
            if mask_hi != 0 || value_hi != 0 {
                fail_unless_equal(block, high, Some(mask_hi), value_hi);
            }
            fail_unless_equal(block, low, Some(mask_lo), value_lo);
        }
        (Width::Low32, Comparison::Ne(value)) => {
            block.push(load(low));
            exits.push((block.len(), true));
            block.push(jump(JMP_JEQ_K, value as u32, 0, 0));
        }
        (Width::Full64, Comparison::Ne(value)) => {
            // Holds when either half differs: a different high half skips the low half.
            let (hi, lo) = split(value);
            block.push(load(high));
            block.push(jump(JMP_JEQ_K, hi, 0, 2));
            block.push(load(low));
            exits.push((block.len(), true));
            block.push(jump(JMP_JEQ_K, lo, 0, 0));
        }
    }
}

fn load(offset: u32) -> Instruction {
    Instruction {
        code: LD_W_ABS,
        jt: 0,
        jf: 0,
        k: offset,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Instruction {
    Instruction { code, jt, jf, k }
}

fn ret(action: Action) -> Instruction {
    Instruction {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: action.raw(),
    }
}

fn to_k(length: usize) -> u32 {
    // Programs are capped at MAX_INSTRUCTIONS, far below u32::MAX.
    u32::try_from(length).unwrap_or(u32::MAX)
}

/// What the kernel passes a filter (`struct seccomp_data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeccompData {
    /// The call number.
    pub nr: u32,
    /// The audit architecture.
    pub arch: u32,
    /// The caller's instruction pointer.
    pub instruction_pointer: u64,
    /// The six arguments.
    pub args: [u64; 6],
}

impl SeccompData {
    /// A call of this architecture.
    pub fn call(nr: u32, args: [u64; 6]) -> Self {
        SeccompData {
            nr,
            arch: AUDIT_ARCH,
            instruction_pointer: 0,
            args,
        }
    }

    fn bytes(&self) -> [u8; DATA_SIZE] {
        let mut bytes = [0u8; DATA_SIZE];
        bytes[0..4].copy_from_slice(&self.nr.to_ne_bytes());
        bytes[4..8].copy_from_slice(&self.arch.to_ne_bytes());
        bytes[8..16].copy_from_slice(&self.instruction_pointer.to_ne_bytes());
        for (i, arg) in self.args.iter().enumerate() {
            bytes[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
        }
        bytes
    }
}

/// What the kernel's load-time checks would refuse in a program, for the instructions this
/// module emits (the kernel accepts more).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InvalidProgram {
    /// Empty, or longer than the kernel accepts.
    #[error("{0} instructions (1 to {MAX_INSTRUCTIONS} allowed)")]
    Length(usize),
    /// An instruction outside the set this module emits.
    #[error("instruction {at}: unsupported code {code:#x}")]
    Unsupported {
        /// Its index.
        at: usize,
        /// Its code.
        code: u16,
    },
    /// A load outside `struct seccomp_data` or not 4-byte aligned.
    #[error("instruction {at}: load at offset {offset}")]
    BadLoad {
        /// Its index.
        at: usize,
        /// The offset.
        offset: u32,
    },
    /// A jump, taken or not, that leaves the program.
    #[error("instruction {at}: jumps past the end")]
    JumpOut {
        /// Its index.
        at: usize,
    },
    /// The kernel requires the last instruction to be a return.
    #[error("the last instruction is not a return")]
    NoFinalReturn,
}

/// Checks a program as the kernel does when it is loaded (`bpf_check_classic` and
/// `seccomp_check_filter`), for the instructions this module emits: its length, every
/// instruction known, loads inside `struct seccomp_data`, every jump target (taken or not)
/// inside the program, and a return last.
///
/// # Errors
/// The first rule the program breaks.
pub fn verify(program: &[Instruction]) -> Result<(), InvalidProgram> {
    if program.is_empty() || program.len() > MAX_INSTRUCTIONS {
        return Err(InvalidProgram::Length(program.len()));
    }
    for (at, instruction) in program.iter().enumerate() {
        let lands = |skip: usize| at + 1 + skip < program.len();
        let fits = match instruction.code {
            LD_W_ABS => {
                check_load(at, instruction.k)?;
                true
            }
            ALU_AND_K | RET_K => true,
            JMP_JA => lands(instruction.k as usize),
            JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K | JMP_JSET_K => {
                lands(usize::from(instruction.jt)) && lands(usize::from(instruction.jf))
            }
            code => return Err(InvalidProgram::Unsupported { at, code }),
        };
        if !fits {
            return Err(InvalidProgram::JumpOut { at });
        }
    }
    match program.last() {
        Some(last) if last.code == RET_K => Ok(()),
        _ => Err(InvalidProgram::NoFinalReturn),
    }
}

fn check_load(at: usize, offset: u32) -> Result<usize, InvalidProgram> {
    let start = offset as usize;
    if !start.is_multiple_of(4) || start + 4 > DATA_SIZE {
        return Err(InvalidProgram::BadLoad { at, offset });
    }
    Ok(start)
}

/// Whether the kernel's action cache would answer `nr` without running the program: what
/// `seccomp_is_const_allow` computes when the filter is attached. It follows the program with
/// only the number and architecture known, and gives up (not cached) at any load of an
/// argument or instruction pointer; a call is cached when that walk reaches "allow".
pub fn cached_by_kernel(program: &[Instruction], nr: u32) -> bool {
    let mut register = 0u32;
    let mut pc = 0usize;
    while let Some(instruction) = program.get(pc) {
        pc += 1 + instruction.skip(register).unwrap_or(0);
        let k = instruction.k;
        match instruction.code {
            LD_W_ABS if k == NR_OFFSET => register = nr,
            LD_W_ABS if k == ARCH_OFFSET => register = AUDIT_ARCH,
            RET_K => return k == Action::Allow.raw(),
            JMP_JA | JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K | JMP_JSET_K => {}
            ALU_AND_K => register &= k,
            _ => return false,
        }
    }
    false
}

/// Runs a program on one call as the kernel does, for the instructions emitters use: 32-bit
/// absolute loads, `and` with a constant, constant jumps and constant returns.
///
/// # Errors
/// The program uses another instruction, loads outside the data, or runs past its end.
pub fn evaluate(program: &[Instruction], data: &SeccompData) -> Result<u32, InvalidProgram> {
    let bytes = data.bytes();
    let mut accumulator = 0u32;
    let mut pc = 0usize;
    loop {
        let at = pc;
        let instruction = program.get(at).ok_or(InvalidProgram::JumpOut {
            at: at.saturating_sub(1),
        })?;
        pc += 1 + instruction.skip(accumulator).unwrap_or(0);
        let k = instruction.k;
        match instruction.code {
            LD_W_ABS => {
                let offset = check_load(at, k)?;
                let mut word = [0u8; 4];
                word.copy_from_slice(&bytes[offset..offset + 4]);
                accumulator = u32::from_ne_bytes(word);
            }
            ALU_AND_K => accumulator &= k,
            JMP_JA | JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K | JMP_JSET_K => {}
            RET_K => return Ok(k),
            code => return Err(InvalidProgram::Unsupported { at, code }),
        }
    }
}

/// The filter's answer for a call, read straight from the table: what its program must return.
pub fn decide(filter: &Filter, data: &SeccompData) -> u32 {
    if data.arch != AUDIT_ARCH {
        return Action::KillProcess.raw();
    }
    if cfg!(target_arch = "x86_64") && data.nr & X32_SYSCALL_BIT != 0 {
        let x32 = data.nr & (X32_SYSCALL_BIT << 1) == 0;
        return if x32 { filter.x32 } else { filter.default }.raw();
    }
    let Some(syscall) = filter.syscalls.get(&data.nr) else {
        return filter.default.raw();
    };
    if syscall.when.is_empty() {
        return syscall.action.raw();
    }
    let holds = |check: &Check| {
        let argument = data.args[usize::from(check.arg)];
        let argument = match check.width {
            Width::Low32 => argument & u64::from(u32::MAX),
            Width::Full64 => argument,
        };
        match check.comparison {
            Comparison::Eq(value) => argument == value,
            Comparison::Ne(value) => argument != value,
            Comparison::MaskedEq { mask, value } => argument & mask == value,
        }
    };
    if syscall.when.iter().any(|all| all.iter().all(holds)) {
        syscall.action.raw()
    } else {
        syscall.otherwise.raw()
    }
}

#[cfg(test)]
mod tests;
