//! The raw system calls the safe crates do not wrap: asking the kernel for its Landlock ABI, and
//! closing a range of descriptors.

/// The kernel's Landlock ABI version; 0 when Landlock is not built in or not enabled.
pub fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only returns a
    // version number (or -1 with errno); with a null attribute pointer and size 0 the kernel
    // reads no memory, and no descriptor is created, so nothing needs closing. The `landlock`
    // crate makes the same call internally but keeps it private.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    i32::try_from(version.max(0)).unwrap_or(0)
}

/// Closes every descriptor numbered `first` or higher (close_range(2), which no safe crate
/// wraps). Used by the plugin helper so that nothing the server opened reaches a plugin.
pub fn close_descriptors_from(first: u32) -> std::io::Result<()> {
    // SAFETY: close_range(first, ~0, 0) takes no pointers and only closes descriptors. It runs
    // in the single-threaded plugin helper, which owns no descriptor above 2 that any code
    // still uses (std keeps none open across this point).
    let result = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    if result < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
