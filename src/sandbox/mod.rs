//! The kernel sandbox: the policy becomes dropped capabilities, no_new_privs, Landlock rules and
//! seccomp filters, applied once, in `main`, before any thread exists (DESIGN.md §3).
//!
//! [`plan()`] decides (pure data, printed by `check`); [`apply`] is the only function that touches
//! the kernel, and it reports what it actually enforced. It does not decide whether a degraded
//! result is acceptable beyond the policy's `sandbox.mode`: `enforce` fails closed.

pub mod bpf;
pub mod child;
pub mod doctor;
pub mod landlock;
pub mod plan;
pub mod privileges;
pub mod seccomp;
#[allow(unsafe_code)]
mod sys;
pub mod syscalls;

use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

pub use plan::{FsAccess, FsGrant, PathKind, SandboxPlan, plan};
pub use sys::landlock_abi;

use self::landlock::LandlockOutcome;
use crate::policy::SandboxMode;

/// Why the sandbox could not be applied.
#[derive(Debug, Error)]
pub enum SandboxError {
    /// The kernel has no Landlock.
    #[error(
        "Landlock is not available on this kernel, so filesystem isolation cannot be enforced\nhint: enable it (add `landlock` to the kernel's `lsm=` boot parameter, or use a kernel >= 5.13 built with CONFIG_SECURITY_LANDLOCK), or set `sandbox.mode: best-effort` in the policy to run without it"
    )]
    LandlockUnavailable,
    /// The kernel's Landlock is older than the policy's minimum.
    #[error(
        "the kernel's Landlock ABI is {have}, but the policy requires at least {need} (sandbox.min_landlock_abi; 6 with plugins.external, so that plugins cannot signal the server)\nhint: use a newer kernel, lower sandbox.min_landlock_abi, or set `sandbox.mode: best-effort`"
    )]
    LandlockTooOld {
        /// The kernel's ABI.
        have: i32,
        /// The policy's minimum.
        need: u8,
    },
    /// A Landlock call failed.
    #[error("Landlock: {0}")]
    Landlock(#[from] ::landlock::RulesetError),
    /// Landlock enforced nothing although the kernel has it.
    #[error(
        "Landlock accepted the rules but enforced none of them\nhint: run `mcp-secure-server doctor` for details"
    )]
    LandlockNotEnforced,
    /// A granted path could not be opened.
    #[error(
        "cannot open {path} to grant access to it: {source}\nhint: create it, or remove it from the policy"
    )]
    PathGrant {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: ::landlock::PathFdError,
    },
    /// Capabilities could not be dropped.
    #[error("cannot drop capabilities ({step}): {detail}")]
    Capabilities {
        /// Which step failed.
        step: &'static str,
        /// The error.
        detail: String,
    },
    /// no_new_privs could not be set.
    #[error("cannot set no_new_privs: {source}")]
    NoNewPrivs {
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The seccomp filter could not be built or installed.
    #[error(
        "seccomp: {detail}\nhint: the kernel needs CONFIG_SECCOMP_FILTER; inside a container, its own seccomp profile may forbid installing filters; or set `sandbox.mode: best-effort`"
    )]
    Seccomp {
        /// The error.
        detail: String,
    },
}

/// What [`apply`] actually enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enforcement {
    /// The policy's mode.
    pub mode: SandboxMode,
    /// The kernel's Landlock ABI (0: none).
    pub landlock_abi: i32,
    /// Landlock rules enforced (fully or partially).
    pub landlock: bool,
    /// The seccomp filters are installed.
    pub seccomp: bool,
    /// Effective, permitted, inheritable and ambient capabilities are empty.
    pub capabilities_dropped: bool,
    /// The bounding set is empty too (cleared with CAP_SETPCAP, or empty from the start).
    pub bounding_set_cleared: bool,
    /// no_new_privs is set.
    pub no_new_privs: bool,
    /// What is not enforced, and why.
    pub degraded: Vec<String>,
}

/// Applies `plan` to the calling thread and every thread created afterwards.
///
/// # Errors
/// In `enforce` mode, anything the kernel cannot enforce; in `best-effort` mode only failures
/// that leave the process in an unknown state.
///
/// # Security
/// Call it before any thread exists: Landlock (below ABI 8) restricts only the calling thread
/// and its future children.
pub fn apply(plan: &SandboxPlan) -> Result<Enforcement, SandboxError> {
    let abi = landlock_abi();
    let mut enforcement = Enforcement {
        mode: plan.mode,
        landlock_abi: abi,
        landlock: false,
        seccomp: false,
        capabilities_dropped: false,
        bounding_set_cleared: false,
        no_new_privs: false,
        degraded: abi_gaps(abi),
    };
    let strict = match plan.mode {
        SandboxMode::Off => {
            enforcement.degraded = vec![
                "sandbox.mode is off: no capabilities dropped, no Landlock, no seccomp".into(),
            ];
            return Ok(enforcement);
        }
        SandboxMode::Enforce => true,
        SandboxMode::BestEffort => false,
    };
    if strict && abi == 0 {
        return Err(SandboxError::LandlockUnavailable);
    }
    if abi < i32::from(plan.min_landlock_abi) {
        if strict {
            return Err(SandboxError::LandlockTooOld {
                have: abi,
                need: plan.min_landlock_abi,
            });
        }
        enforcement.degraded.push(format!(
            "Landlock ABI {abi} is below sandbox.min_landlock_abi {}",
            plan.min_landlock_abi
        ));
    }

    enforcement.bounding_set_cleared = privileges::drop_all()?;
    enforcement.capabilities_dropped = true;
    enforcement.no_new_privs = true;

    match landlock::restrict(plan) {
        Ok(LandlockOutcome::Full | LandlockOutcome::Partial) => enforcement.landlock = true,
        Ok(LandlockOutcome::None) if strict => return Err(SandboxError::LandlockNotEnforced),
        Ok(LandlockOutcome::None) => {
            enforcement
                .degraded
                .push("Landlock: nothing enforced".into());
        }
        Err(error) if strict => return Err(error),
        Err(error) => enforcement.degraded.push(format!("Landlock: {error}")),
    }
    match seccomp::install(plan) {
        Ok(()) => enforcement.seccomp = true,
        Err(error) if strict => return Err(error),
        Err(error) => enforcement.degraded.push(error.to_string()),
    }
    Ok(enforcement)
}

/// What a kernel with Landlock ABI `abi` cannot enforce of any plan.
pub fn abi_gaps(abi: i32) -> Vec<String> {
    let mut gaps = Vec::new();
    if abi == 0 {
        gaps.push("Landlock unavailable: no filesystem, TCP or scope rules".into());
        return gaps;
    }
    if abi < 2 {
        gaps.push("Landlock ABI < 2: renames and links across directories are refused".into());
    }
    if abi < 3 {
        gaps.push("Landlock ABI < 3: truncation is not restricted".into());
    }
    if abi < 4 {
        gaps.push("Landlock ABI < 4: TCP connect/bind ports are not restricted".into());
    }
    if abi < 6 {
        gaps.push("Landlock ABI < 6: signals and abstract unix sockets are not scoped".into());
    }
    gaps
}

/// Answers the plan's question about a path from the real filesystem.
pub fn probe_path(path: &Path) -> PathKind {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => PathKind::Directory,
        Ok(_) => PathKind::File,
        Err(_) => PathKind::Missing,
    }
}
