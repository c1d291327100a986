//! Dropping every capability and setting no_new_privs.
//!
//! Runs first: afterwards nothing the process does can gain privileges, and the Landlock and
//! seccomp steps no longer depend on CAP_SYS_ADMIN (they rely on no_new_privs instead).

use caps::{CapSet, Capability};

use super::SandboxError;

/// Clears the bounding, ambient, inheritable, effective and permitted sets, checks that they
/// are empty, and sets no_new_privs. Returns whether the bounding set could be cleared: that
/// needs CAP_SETPCAP, which an unprivileged user does not have; its leftover entries are inert
/// once no_new_privs is set and the permitted set is empty.
///
/// # Errors
/// A set could not be cleared, or is not empty afterwards.
pub fn drop_all() -> Result<bool, SandboxError> {
    let fail = |step: &'static str| {
        move |e: caps::errors::CapsError| SandboxError::Capabilities {
            step,
            detail: e.to_string(),
        }
    };
    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes with `permitted`.
    let can_clear_bounding = caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)
        .map_err(fail("read effective set"))?;
    if can_clear_bounding {
        for cap in caps::runtime::thread_all_supported() {
            if caps::has_cap(None, CapSet::Bounding, cap).map_err(fail("read bounding set"))? {
                caps::drop(None, CapSet::Bounding, cap).map_err(fail("drop from bounding set"))?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(fail("clear ambient set"))?;
    caps::clear(None, CapSet::Inheritable).map_err(fail("clear inheritable set"))?;
    caps::clear(None, CapSet::Effective).map_err(fail("clear effective set"))?;
    caps::clear(None, CapSet::Permitted).map_err(fail("clear permitted set"))?;
    let bounding = can_clear_bounding.then_some(CapSet::Bounding);
    for set in bounding.into_iter().chain([
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ]) {
        let left = caps::read(None, set).map_err(fail("read back"))?;
        if !left.is_empty() {
            let mut names: Vec<String> = left.iter().map(Capability::to_string).collect();
            names.sort();
            return Err(SandboxError::Capabilities {
                step: "verify",
                detail: format!("{set:?} still holds {}", names.join(", ")),
            });
        }
    }
    rustix::thread::set_no_new_privs(true)
        .map_err(|e| SandboxError::NoNewPrivs { source: e.into() })?;
    Ok(can_clear_bounding)
}
