//! The one raw system call the safe crates do not wrap: asking the kernel for its Landlock ABI.

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
