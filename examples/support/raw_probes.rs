//! System calls the probes make that no safe wrapper offers; shared by `sandbox_probe` and
//! `plugin_probe`. Each returns the errno the kernel gave.
#![allow(unsafe_code, dead_code)]

pub fn io_uring_setup() -> std::io::Result<()> {
    let mut params = [0u8; 120]; // struct io_uring_params
    // SAFETY: io_uring_setup(entries, params) writes at most sizeof(io_uring_params) = 120
    // bytes into `params`, which is that large and lives across the call.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nothing else.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

pub fn unshare_user_namespace() -> std::io::Result<()> {
    // SAFETY: unshare(CLONE_NEWUSER) takes no pointers; in this single-threaded probe it
    // can only move the process into a new user namespace, which is what is being probed.
    let r = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn ptrace_traceme() -> std::io::Result<()> {
    // SAFETY: PTRACE_TRACEME takes no pointers; it only marks this process as traceable by
    // its parent, which never attaches.
    let r = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Result of a raw call: negative means failed, with errno.
fn check(r: i64) -> std::io::Result<()> {
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn socket(family: i32) -> std::io::Result<()> {
    // SAFETY: socket(2) takes no pointers; a descriptor it returns is closed at once.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM, 0) };
    check(fd.into())?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nothing else.
    unsafe { libc::close(fd) };
    Ok(())
}

pub fn ptrace_attach(pid: i32) -> std::io::Result<()> {
    // SAFETY: PTRACE_ATTACH takes no pointers; on success the probe would trace `pid`, which
    // the test then reports as an escape.
    check(unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) })
}

pub fn fork() -> std::io::Result<()> {
    // SAFETY: the probe is single-threaded; the child only calls _exit, which is
    // async-signal-safe.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: _exit ends the child without running any parent state's destructors.
        unsafe { libc::_exit(0) };
    }
    check(pid.into())?;
    // SAFETY: waitpid on our own child with a null status pointer.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    Ok(())
}

pub fn prctl_get(option: i32) -> std::io::Result<i32> {
    // SAFETY: the PR_GET_* options used here take no pointers and return the value.
    let value = unsafe { libc::prctl(option, 0, 0, 0, 0) };
    check(value.into())?;
    Ok(value)
}

/// The effective, permitted and inheritable capability sets of this process, ORed.
pub fn capabilities() -> std::io::Result<u64> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget(header, data) with version 3 writes two `Data` structs, which `data` holds;
    // both pointers are valid for the call.
    check(unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) })?;
    Ok(data
        .iter()
        .enumerate()
        .map(|(i, d)| u64::from(d.effective | d.permitted | d.inheritable) << (32 * i))
        .fold(0, |all, set| all | set))
}

pub fn socketpair(kind: i32) -> std::io::Result<()> {
    let mut fds = [0i32; 2];
    // SAFETY: socketpair writes two descriptors into `fds`, which holds two; both are closed.
    check(unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) }.into())?;
    for fd in fds {
        // SAFETY: the kernel just returned these descriptors; nothing else owns them.
        unsafe { libc::close(fd) };
    }
    Ok(())
}
