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
    // Probed once (one prctl per capability): the caps crate's set-wide helpers probe again
    // on every use, which made this step three times as many system calls.
    let supported = caps::runtime::thread_all_supported();
    if supported.is_empty() {
        // Every later check loops over this list: empty, they would all pass unchecked.
        return Err(SandboxError::Capabilities {
            step: "list supported capabilities",
            detail: "the kernel reported none (PR_CAPBSET_READ failed for every one)".into(),
        });
    }
    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes with `permitted`.
    let can_clear_bounding = caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)
        .map_err(fail("read effective set"))?;
    if can_clear_bounding {
        // Dropping a capability that is not in the set succeeds, so no read first.
        for &cap in &supported {
            caps::drop(None, CapSet::Bounding, cap).map_err(fail("drop from bounding set"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(fail("clear ambient set"))?;
    caps::clear(None, CapSet::Inheritable).map_err(fail("clear inheritable set"))?;
    caps::clear(None, CapSet::Effective).map_err(fail("clear effective set"))?;
    caps::clear(None, CapSet::Permitted).map_err(fail("clear permitted set"))?;

    let still_held = |set: CapSet, held: Vec<Capability>| {
        let mut names: Vec<String> = held.iter().map(Capability::to_string).collect();
        names.sort();
        SandboxError::Capabilities {
            step: "verify",
            detail: format!("{set:?} still holds {}", names.join(", ")),
        }
    };
    for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        let held: Vec<Capability> = caps::read(None, set)
            .map_err(fail(
                "read back the inheritable, effective and permitted sets",
            ))?
            .into_iter()
            .collect();
        if !held.is_empty() {
            return Err(still_held(set, held));
        }
    }
    // The ambient set needs no read-back: the kernel keeps it within permitted ∩ inheritable
    // (capabilities(7)), both just read back empty. The bounding set is read one capability
    // at a time, as it can only be.
    if can_clear_bounding {
        let mut held = Vec::new();
        for &cap in &supported {
            if caps::has_cap(None, CapSet::Bounding, cap)
                .map_err(fail("read back the bounding set"))?
            {
                held.push(cap);
            }
        }
        if !held.is_empty() {
            return Err(still_held(CapSet::Bounding, held));
        }
    }
    rustix::thread::set_no_new_privs(true)
        .map_err(|e| SandboxError::NoNewPrivs { source: e.into() })?;
    Ok(can_clear_bounding)
}
