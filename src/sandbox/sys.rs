//! The raw system calls the safe crates do not wrap: asking the kernel for its Landlock ABI,
//! closing a range of descriptors and installing a seccomp filter.

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

/// Installs a seccomp filter on the calling thread, or with `all_threads` on every thread of
/// the process (TSYNC). Sets no_new_privs first, which the kernel requires of an unprivileged
/// caller and which the sandbox sets anyway.
pub fn install_seccomp_filter(
    program: &[super::bpf::Instruction],
    all_threads: bool,
) -> std::io::Result<()> {
    // Passed through the variadic syscall(), so as full registers.
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    const SECCOMP_FILTER_FLAG_TSYNC: libc::c_ulong = 1;
    let mut filter: Vec<libc::sock_filter> = program
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let len = u16::try_from(filter.len())
        .ok()
        .filter(|len| *len > 0 && usize::from(*len) <= super::bpf::MAX_INSTRUCTIONS)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog {
        len,
        filter: filter.as_mut_ptr(),
    };
    rustix::thread::set_no_new_privs(true)?;
    let flags = if all_threads {
        SECCOMP_FILTER_FLAG_TSYNC
    } else {
        0
    };
    // SAFETY: seccomp(SECCOMP_SET_MODE_FILTER) reads `len` instructions from `fprog.filter`,
    // which points into `filter`, alive and unmoved until the call returns; the kernel copies
    // the program and keeps no pointer to it.
    let result = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::from_ref(&fprog),
        )
    };
    match result {
        0 => Ok(()),
        // With TSYNC, a positive result is a thread that could not be synchronised.
        tid if tid > 0 => Err(std::io::Error::other(format!(
            "thread {tid} could not take the filter (TSYNC)"
        ))),
        _ => Err(std::io::Error::last_os_error()),
    }
}
