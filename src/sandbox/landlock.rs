//! Applying the plan's Landlock part: path rules, TCP port rules and scopes.
//!
//! Every right of the newest ABI the `landlock` crate knows is handled (so anything not granted
//! is denied); on an older kernel the crate drops what the kernel lacks (best effort), and
//! `apply` compares the kernel's ABI with the policy's minimum before calling this.

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};

use super::SandboxError;
use super::plan::{FsAccess, SandboxPlan, ScopeRule};

/// The newest Landlock ABI the crate knows: handled in full, so new kernels deny more, never less.
const NEWEST_ABI: ABI = ABI::V10;

/// How much of the ruleset the kernel enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LandlockOutcome {
    /// Every requested right is enforced.
    Full,
    /// The kernel lacks some rights (older ABI); the rest is enforced.
    Partial,
    /// Nothing is enforced.
    None,
}

/// Restricts the calling thread (and every thread it creates later).
///
/// # Errors
/// A grant's path cannot be opened, or a Landlock call fails.
pub fn restrict(plan: &SandboxPlan) -> Result<LandlockOutcome, SandboxError> {
    let all_fs = AccessFs::from_all(NEWEST_ABI);
    let mut scopes = BitFlags::<Scope>::empty();
    for scope in &plan.scopes {
        scopes |= match scope {
            ScopeRule::AbstractUnixSocket => Scope::AbstractUnixSocket,
            ScopeRule::Signal => Scope::Signal,
        };
    }
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all_fs)?
        .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?
        .scope(scopes)?
        .create()?;
    for grant in &plan.fs {
        let fd = PathFd::new(&grant.path).map_err(|source| SandboxError::PathGrant {
            path: grant.path.clone(),
            source,
        })?;
        let is_dir = grant.path.is_dir();
        let access = match grant.access {
            FsAccess::ReadWrite if is_dir => all_fs & !AccessFs::Execute,
            // Directory-only rights on a file are an error; keep the file rights.
            FsAccess::ReadWrite => AccessFs::from_file(NEWEST_ABI) & !AccessFs::Execute,
            FsAccess::ReadWriteFile => AccessFs::ReadFile | AccessFs::WriteFile,
            FsAccess::Read if is_dir => AccessFs::from_read(NEWEST_ABI) & !AccessFs::Execute,
            FsAccess::Read => AccessFs::ReadFile.into(),
            FsAccess::ReadExecute => AccessFs::ReadFile | AccessFs::Execute,
        };
        ruleset = ruleset.add_rule(PathBeneath::new(fd, access))?;
    }
    for port in &plan.tcp_connect {
        ruleset = ruleset.add_rule(NetPort::new(*port, AccessNet::ConnectTcp))?;
    }
    let status = ruleset.restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => LandlockOutcome::Full,
        RulesetStatus::PartiallyEnforced => LandlockOutcome::Partial,
        RulesetStatus::NotEnforced => LandlockOutcome::None,
    })
}
