//! Dropping every capability and setting no_new_privs.
//!
//! Runs first: afterwards nothing the process does can gain privileges, and the Landlock and
//! seccomp steps no longer depend on CAP_SYS_ADMIN (they rely on no_new_privs instead).

use rustix::io::Errno;
use rustix::thread::{
    CapabilitySet, CapabilitySets, capabilities, capability_is_in_bounding_set,
    clear_ambient_capability_set, remove_capability_from_bounding_set, set_capabilities,
};

use super::SandboxError;

/// Clears the bounding, ambient, inheritable, effective and permitted sets, checks that they
/// are empty, and sets no_new_privs. Returns whether the bounding set is empty: clearing it
/// needs CAP_SETPCAP, which an unprivileged user does not have (a service manager may have
/// emptied it already); its leftover entries are inert once no_new_privs is set and the
/// permitted set is empty.
///
/// About 90 system calls, most of them two per capability for the bounding set, which the
/// kernel only offers one at a time.
///
/// # Errors
/// A set could not be cleared, or is not empty afterwards.
pub fn drop_all() -> Result<bool, SandboxError> {
    let fail = |step: &'static str| {
        move |e: Errno| SandboxError::Capabilities {
            step,
            detail: std::io::Error::from(e).to_string(),
        }
    };
    let mut before = capabilities(None).map_err(fail("read the capability sets"))?;
    // Dropping from the bounding set needs CAP_SETPCAP in the effective set.
    let setpcap = CapabilitySet::SETPCAP;
    if before.permitted.contains(setpcap) && !before.effective.contains(setpcap) {
        before.effective |= setpcap;
        set_capabilities(None, before)
            .map_err(fail("raise CAP_SETPCAP to drop the bounding set"))?;
    }
    if before.effective.contains(setpcap) {
        // Capabilities are numbered from 0 up to the kernel's last; the first number it
        // refuses (EINVAL) is past that. The read-back below checks that claim on its own.
        for number in 0..64 {
            match remove_capability_from_bounding_set(capability(number)) {
                Ok(()) => {}
                Err(Errno::INVAL) if number > 0 => break,
                Err(e) => {
                    return Err(SandboxError::Capabilities {
                        step: "drop from the bounding set",
                        detail: format!("{}: {}", name(number), std::io::Error::from(e)),
                    });
                }
            }
        }
    }
    clear_ambient_capability_set().map_err(fail("clear the ambient set"))?;
    let empty = CapabilitySets {
        effective: CapabilitySet::empty(),
        permitted: CapabilitySet::empty(),
        inheritable: CapabilitySet::empty(),
    };
    set_capabilities(None, empty)
        .map_err(fail("clear the effective, permitted and inheritable sets"))?;

    let after = capabilities(None).map_err(fail("read back the capability sets"))?;
    for (set, held) in [
        ("effective", after.effective),
        ("permitted", after.permitted),
        ("inheritable", after.inheritable),
    ] {
        if !held.is_empty() {
            return Err(still_held(set, held.bits()));
        }
    }
    // The ambient set needs no read-back: the kernel keeps it within permitted ∩ inheritable
    // (capabilities(7)), both just read back empty. The bounding set is read up to the
    // kernel's own end (reading needs no privilege), not up to where dropping stopped.
    let bounding = bounding_set().map_err(fail("read back the bounding set"))?;
    if before.effective.contains(setpcap) && bounding != 0 {
        return Err(still_held("bounding", bounding));
    }
    rustix::thread::set_no_new_privs(true)
        .map_err(|e| SandboxError::NoNewPrivs { source: e.into() })?;
    Ok(bounding == 0)
}

/// The bounding set as bits, read one capability at a time up to the first number the kernel
/// does not know (EINVAL).
fn bounding_set() -> Result<u64, Errno> {
    let mut bits = 0u64;
    for number in 0..64 {
        match capability_is_in_bounding_set(capability(number)) {
            Ok(true) => bits |= 1 << number,
            Ok(false) => {}
            Err(Errno::INVAL) if number > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(bits)
}

/// Capability number `number` (0 to 63) as rustix takes it.
fn capability(number: u32) -> CapabilitySet {
    CapabilitySet::from_bits_retain(1 << number)
}

/// The error for a set that still holds the capabilities in `bits`.
fn still_held(set: &str, bits: u64) -> SandboxError {
    let names: Vec<String> = (0..64).filter(|n| bits & 1 << n != 0).map(name).collect();
    SandboxError::Capabilities {
        step: "verify",
        detail: format!("the {set} set still holds {}", names.join(", ")),
    }
}

/// A capability's name as in capabilities(7), or its number when the `caps` crate does not
/// know it (a kernel newer than the crate).
fn name(number: u32) -> String {
    caps::all()
        .into_iter()
        .find(|cap| u32::from(cap.index()) == number)
        .map_or_else(|| format!("capability {number}"), |cap| cap.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_capabilities_are_named() {
        let error = still_held("bounding", 1 << 21 | 1 << 0 | 1 << 63).to_string();
        assert!(
            error.contains("the bounding set still holds CAP_CHOWN, CAP_SYS_ADMIN, capability 63"),
            "{error}"
        );
    }
}
