//! The seccomp allowlist as data: every system call the server may make after lock-down, each
//! with the reason it is needed, and the calls that are refused whatever the policy says.
//!
//! Numbers come from `libc::SYS_*` for the build target, so the table is per architecture by
//! construction. The list was found by running the whole test suite with
//! `seccomp_action: kill` (a missing call kills the server and fails a test).

use serde::Serialize;

/// An argument check on an allowed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArgRule {
    /// Allowed whatever the arguments.
    Any,
    /// `clone`: only without namespace flags (threads and vfork-style spawns).
    CloneWithoutNamespaces,
    /// `socket`: only AF_INET and AF_INET6 (the domain compared as 32 bits). No AF_UNIX: Landlock
    /// (ABI 7) does not confine connecting to named unix sockets such as `/run/docker.sock`, and
    /// the server only needs unix sockets in pairs (`socketpair`).
    SocketFamilies,
    /// `ioctl`: only FIONBIO, FIOCLEX and TCGETS (the request compared as 32 bits).
    SafeIoctls,
    /// `prctl`: only naming threads and reading state.
    SafePrctl,
    /// `prctl` with external plugins: also what the plugin helper sets (death signal,
    /// no_new_privs for Landlock and seccomp).
    PluginPrctl,
}

/// One allowed system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AllowedSyscall {
    /// The call's name.
    pub name: &'static str,
    /// Its number on this architecture.
    #[serde(skip)]
    pub number: i64,
    /// Argument restrictions.
    pub args: ArgRule,
    /// Who needs it.
    pub reason: &'static str,
}

/// Namespace flags `clone` may not carry (CLONE_NEWNS … CLONE_NEWCGROUP, CLONE_NEWTIME).
pub const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64
    | 0x80; // CLONE_NEWTIME

/// Socket families the server may create with `socket(2)`.
pub const SOCKET_FAMILIES: [i32; 2] = [libc::AF_INET, libc::AF_INET6];

/// `ioctl` requests the server may make.
// The casts are no-ops on glibc x86_64 but not on every target (musl declares them `c_int`).
#[allow(clippy::unnecessary_cast)]
pub const IOCTLS: [u64; 3] = [
    libc::FIONBIO as u64,
    libc::FIOCLEX as u64,
    libc::TCGETS as u64,
];

/// `prctl` options the server may use.
pub const PRCTL_OPTIONS: [i32; 5] = [
    libc::PR_SET_NAME,
    libc::PR_GET_NAME,
    libc::PR_GET_NO_NEW_PRIVS,
    libc::PR_GET_SECCOMP,
    libc::PR_GET_DUMPABLE,
];

/// `prctl` options the plugin helper needs on top of [`PRCTL_OPTIONS`].
pub const PLUGIN_PRCTL_OPTIONS: [i32; 2] = [libc::PR_SET_PDEATHSIG, libc::PR_SET_NO_NEW_PRIVS];

/// `allow!(SYS_read, rule, "reason")`: the name is the constant without its `SYS_` prefix.
macro_rules! allow {
    ($sys:ident, $args:expr, $reason:expr) => {
        AllowedSyscall {
            name: syscall_name(stringify!($sys)),
            number: libc::$sys,
            args: $args,
            reason: $reason,
        }
    };
}

fn syscall_name(constant: &'static str) -> &'static str {
    constant.strip_prefix("SYS_").unwrap_or(constant)
}

/// The server's allowlist.
pub fn server_allowlist() -> Vec<AllowedSyscall> {
    use ArgRule::{Any, CloneWithoutNamespaces, SafeIoctls, SafePrctl, SocketFamilies};
    #[allow(unused_mut)]
    let mut list = vec![
        allow!(SYS_read, Any, "stdin, files, sockets"),
        allow!(SYS_write, Any, "stdout, stderr logs, files, sockets"),
        allow!(SYS_readv, Any, "vectored reads (TLS, std)"),
        allow!(SYS_writev, Any, "vectored writes (TLS, logging)"),
        allow!(SYS_pread64, Any, "SQLite page reads"),
        allow!(SYS_pwrite64, Any, "SQLite page writes"),
        allow!(SYS_lseek, Any, "file positioning"),
        allow!(SYS_close, Any, "every descriptor"),
        allow!(SYS_fcntl, Any, "O_NONBLOCK on stdio, CLOEXEC, SQLite locks"),
        allow!(
            SYS_ioctl,
            SafeIoctls,
            "FIONBIO/FIOCLEX on sockets, TCGETS for isatty"
        ),
        allow!(SYS_dup, Any, "descriptor duplication (stdio)"),
        allow!(SYS_dup3, Any, "descriptor duplication"),
        allow!(SYS_pipe2, Any, "tokio signal and child pipes"),
        allow!(SYS_ppoll, Any, "std blocking waits"),
        allow!(SYS_openat, Any, "files inside the Landlock grants"),
        allow!(SYS_newfstatat, Any, "metadata"),
        allow!(SYS_fstat, Any, "metadata"),
        allow!(SYS_statx, Any, "std::fs::metadata"),
        allow!(SYS_faccessat, Any, "existence checks"),
        allow!(SYS_faccessat2, Any, "existence checks"),
        allow!(SYS_getdents64, Any, "directory listing"),
        allow!(SYS_readlinkat, Any, "symlink resolution"),
        allow!(SYS_unlinkat, Any, "SQLite journal removal"),
        allow!(SYS_renameat, Any, "atomic replace"),
        allow!(SYS_renameat2, Any, "atomic replace"),
        allow!(
            SYS_linkat,
            Any,
            "hard links (Landlock confines them to granted directories)"
        ),
        allow!(SYS_mkdirat, Any, "data directories"),
        allow!(SYS_fsync, Any, "durable audit and database writes"),
        allow!(SYS_fdatasync, Any, "durable database writes"),
        allow!(SYS_ftruncate, Any, "SQLite WAL"),
        allow!(SYS_fchmod, Any, "0600 data files"),
        allow!(SYS_fchown, Any, "SQLite -wal/-shm under euid 0"),
        allow!(SYS_flock, Any, "file locks"),
        allow!(SYS_getcwd, Any, "relative path arguments"),
        allow!(SYS_mmap, Any, "allocator, thread stacks"),
        allow!(SYS_munmap, Any, "allocator, thread stacks"),
        allow!(SYS_mprotect, Any, "thread stack guard pages"),
        allow!(SYS_madvise, Any, "allocator"),
        allow!(SYS_mremap, Any, "allocator (realloc)"),
        allow!(SYS_brk, Any, "allocator"),
        allow!(SYS_futex, Any, "every lock, condvar and park"),
        allow!(
            SYS_clone,
            CloneWithoutNamespaces,
            "tokio worker and blocking threads"
        ),
        allow!(
            SYS_clone3,
            Any,
            "answered ENOSYS so that glibc falls back to clone"
        ),
        allow!(SYS_set_robust_list, Any, "new threads (glibc)"),
        allow!(SYS_rseq, Any, "new threads (glibc >= 2.35)"),
        allow!(SYS_set_tid_address, Any, "new threads (glibc)"),
        allow!(SYS_gettid, Any, "thread ids (logging, glibc)"),
        allow!(SYS_sched_yield, Any, "spin loops in locks"),
        allow!(SYS_sched_getaffinity, Any, "CPU count (std, tokio)"),
        allow!(SYS_exit, Any, "thread exit"),
        allow!(SYS_exit_group, Any, "process exit"),
        allow!(
            SYS_prctl,
            SafePrctl,
            "thread names (PR_SET_NAME), state reads"
        ),
        allow!(SYS_rt_sigaction, Any, "SIGTERM/SIGINT handlers"),
        allow!(SYS_rt_sigprocmask, Any, "signal masks of new threads"),
        allow!(SYS_rt_sigreturn, Any, "return from signal handlers"),
        allow!(
            SYS_sigaltstack,
            Any,
            "stack-overflow guard of every thread (std)"
        ),
        allow!(SYS_tgkill, Any, "abort on a second panic (raise SIGABRT)"),
        allow!(
            SYS_kill,
            Any,
            "signals to own children; Landlock scoping refuses outsiders"
        ),
        allow!(SYS_restart_syscall, Any, "restarted calls after signals"),
        allow!(SYS_clock_gettime, Any, "time (vDSO fallback)"),
        allow!(SYS_clock_getres, Any, "time (vDSO fallback)"),
        allow!(SYS_gettimeofday, Any, "log timestamps (vDSO fallback)"),
        allow!(SYS_nanosleep, Any, "sleeps"),
        allow!(SYS_clock_nanosleep, Any, "sleeps"),
        allow!(SYS_epoll_create1, Any, "tokio reactor"),
        allow!(SYS_epoll_ctl, Any, "tokio reactor"),
        allow!(SYS_epoll_pwait, Any, "tokio reactor"),
        allow!(SYS_eventfd2, Any, "tokio reactor wake-ups"),
        allow!(
            SYS_socket,
            SocketFamilies,
            "egress connector, DNS, tokio signal pipe"
        ),
        allow!(SYS_socketpair, Any, "tokio signal handling (AF_UNIX pair)"),
        allow!(
            SYS_connect,
            Any,
            "egress connector (Landlock limits TCP ports)"
        ),
        allow!(
            SYS_bind,
            Any,
            "DNS UDP source ports (Landlock refuses TCP binds)"
        ),
        allow!(SYS_getsockname, Any, "socket addresses"),
        allow!(SYS_getpeername, Any, "socket addresses"),
        allow!(SYS_setsockopt, Any, "socket options"),
        allow!(SYS_getsockopt, Any, "socket options, connect results"),
        allow!(SYS_sendto, Any, "DNS queries, socket writes"),
        allow!(SYS_recvfrom, Any, "DNS answers, socket reads"),
        allow!(SYS_sendmsg, Any, "socket writes"),
        allow!(SYS_recvmsg, Any, "socket reads"),
        allow!(SYS_shutdown, Any, "closing connections"),
        allow!(SYS_getpid, Any, "process id (logging, SQLite)"),
        allow!(SYS_getppid, Any, "parent checks"),
        allow!(SYS_getuid, Any, "identity (SQLite, libc)"),
        allow!(SYS_geteuid, Any, "identity (SQLite, libc)"),
        allow!(SYS_getgid, Any, "identity (libc)"),
        allow!(SYS_getegid, Any, "identity (libc)"),
        allow!(SYS_getrandom, Any, "hash seeds, TLS, DNS ids"),
        allow!(SYS_uname, Any, "libc start-up checks"),
        allow!(SYS_prlimit64, Any, "resource limits (std stack size)"),
        allow!(SYS_getrusage, Any, "resource usage"),
    ];
    #[cfg(target_arch = "x86_64")]
    list.extend(legacy_x86_64());
    list
}

/// The allowlist when external plugins are configured. Plugins inherit the server's filter,
/// so this is their ceiling: the server's list plus what the plugin helper and common
/// interpreters (CPython, Node.js) need. The never-allowed calls and sockets of other families
/// are listed here and answered EPERM by the filter ([`super::seccomp::table`]): a plugin that
/// probes them gets an error, not `seccomp_action: kill`.
pub fn plugin_runtime_allowlist() -> Vec<AllowedSyscall> {
    use ArgRule::{Any, PluginPrctl};
    let mut list: Vec<AllowedSyscall> = server_allowlist()
        .into_iter()
        .map(|mut syscall| {
            syscall.args = match syscall.args {
                ArgRule::SafePrctl => PluginPrctl,
                ArgRule::SocketFamilies => Any,
                other => other,
            };
            syscall
        })
        .collect();
    list.extend([
        allow!(SYS_execve, Any, "starting plugins (Landlock limits what)"),
        allow!(SYS_wait4, Any, "reaping plugins"),
        allow!(SYS_waitid, Any, "reaping plugins"),
        allow!(SYS_pidfd_open, Any, "waiting for plugins (tokio)"),
        allow!(SYS_pidfd_send_signal, Any, "killing plugins (std)"),
        allow!(SYS_setsid, Any, "plugin helper: a new session"),
        allow!(
            SYS_setpgid,
            Any,
            "refused to plugins by their own filter (EPERM)"
        ),
        allow!(SYS_chdir, Any, "plugin working directory"),
        allow!(
            SYS_openat2,
            Any,
            "plugin helper: grants opened without following symlinks"
        ),
        allow!(
            SYS_close_range,
            Any,
            "plugin helper: closing inherited descriptors"
        ),
        allow!(
            SYS_landlock_create_ruleset,
            Any,
            "plugin helper: its Landlock layer"
        ),
        allow!(
            SYS_landlock_add_rule,
            Any,
            "plugin helper: its Landlock layer"
        ),
        allow!(
            SYS_landlock_restrict_self,
            Any,
            "plugin helper: its Landlock layer"
        ),
        allow!(SYS_seccomp, Any, "plugin helper: its seccomp filter"),
        allow!(
            SYS_capget,
            Any,
            "interpreters read their capabilities (Node.js)"
        ),
        allow!(SYS_sysinfo, Any, "interpreters read memory size"),
        allow!(SYS_pkey_alloc, Any, "memory protection keys (V8)"),
        allow!(SYS_pkey_free, Any, "memory protection keys (V8)"),
        allow!(SYS_pkey_mprotect, Any, "memory protection keys (V8)"),
        allow!(SYS_membarrier, Any, "JIT code patching (V8)"),
    ]);
    #[cfg(target_arch = "x86_64")]
    list.extend([
        allow!(
            SYS_fork,
            Any,
            "refused to plugins by their own filter unless allowed"
        ),
        allow!(
            SYS_vfork,
            Any,
            "refused to plugins by their own filter unless allowed"
        ),
    ]);
    list.extend(
        never_allowed()
            .into_iter()
            .map(|(name, number)| AllowedSyscall {
                name,
                number,
                args: Any,
                reason: "answered EPERM (a probing plugin is told no, not killed)",
            }),
    );
    list
}

/// Calls that only exist on x86_64, where glibc and std still use them.
#[cfg(target_arch = "x86_64")]
fn legacy_x86_64() -> Vec<AllowedSyscall> {
    use ArgRule::Any;
    vec![
        allow!(SYS_dup2, Any, "descriptor duplication (x86_64 libc)"),
        allow!(SYS_pipe, Any, "pipes (x86_64 libc)"),
        allow!(SYS_poll, Any, "std blocking waits"),
        allow!(SYS_open, Any, "files (x86_64 libc)"),
        allow!(SYS_stat, Any, "metadata (x86_64 libc)"),
        allow!(SYS_lstat, Any, "metadata (x86_64 libc)"),
        allow!(SYS_access, Any, "existence checks (x86_64 libc)"),
        allow!(SYS_readlink, Any, "symlink resolution (x86_64 libc)"),
        allow!(SYS_unlink, Any, "SQLite journal removal (x86_64 libc)"),
        allow!(SYS_rename, Any, "atomic replace (x86_64 libc)"),
        allow!(SYS_mkdir, Any, "data directories (x86_64 libc)"),
        allow!(SYS_arch_prctl, Any, "thread-local storage set-up (x86_64)"),
        allow!(SYS_epoll_wait, Any, "tokio reactor (x86_64)"),
    ]
}

/// Refused in every mode, including `seccomp_action: log`.
pub fn never_allowed() -> Vec<(&'static str, i64)> {
    macro_rules! never {
        ($($sys:ident),* $(,)?) => { vec![$((syscall_name(stringify!($sys)), libc::$sys)),*] };
    }
    never!(
        SYS_io_uring_setup,
        SYS_io_uring_enter,
        SYS_io_uring_register,
        SYS_ptrace,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_bpf,
        SYS_perf_event_open,
        SYS_userfaultfd,
        SYS_keyctl,
        SYS_add_key,
        SYS_request_key,
        SYS_mount,
        SYS_umount2,
        SYS_unshare,
        SYS_setns,
        SYS_kexec_load,
        SYS_kexec_file_load,
        SYS_init_module,
        SYS_finit_module,
        SYS_delete_module,
        SYS_pivot_root,
        SYS_chroot,
        SYS_open_by_handle_at,
        SYS_name_to_handle_at,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_tables_do_not_overlap_or_repeat() {
        let allowed = server_allowlist();
        let numbers: HashSet<i64> = allowed.iter().map(|s| s.number).collect();
        assert_eq!(numbers.len(), allowed.len(), "a syscall is listed twice");
        for (name, number) in never_allowed() {
            assert!(
                !numbers.contains(&number),
                "{name} is both allowed and never allowed"
            );
        }
        assert!(allowed.iter().all(|s| !s.reason.is_empty()));
        let runtime = plugin_runtime_allowlist();
        let numbers: HashSet<i64> = runtime.iter().map(|s| s.number).collect();
        assert_eq!(
            numbers.len(),
            runtime.len(),
            "a runtime syscall is listed twice"
        );
    }
}
