//! `plan`: the policy turned into everything the kernel will be asked to enforce, as plain data.
//!
//! Pure apart from one injected question ("what is at this path?"), so `check` can print the
//! plan and tests can compare whole plans. Every policy entry the kernel cannot express becomes
//! a warning instead of silent best effort.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::syscalls::{AllowedSyscall, never_allowed, plugin_runtime_allowlist, server_allowlist};
use crate::policy::{Policy, SandboxMode, SeccompAction};

/// What a path grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsAccess {
    /// Read, write, create, remove, rename and truncate beneath the path; never execute.
    ReadWrite,
    /// Read and write an existing file (device nodes such as `/dev/null`).
    ReadWriteFile,
    /// Read beneath the path (external plugins' libraries and directories).
    Read,
    /// Read and execute one file (an external plugin, its interpreter or ELF loader).
    ReadExecute,
}

/// One Landlock path rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FsGrant {
    /// The path the rule is attached to.
    pub path: PathBuf,
    /// The rights granted beneath it.
    pub access: FsAccess,
    /// Why it is granted (the policy key or the server need).
    pub reason: String,
}

/// What exists at a path (the plan's only question about the machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// Nothing (or unreadable).
    Missing,
    /// A directory.
    Directory,
    /// Anything else (file, device).
    File,
}

/// Landlock scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScopeRule {
    /// No connecting to abstract unix sockets created outside the sandbox.
    AbstractUnixSocket,
    /// No signals to processes outside the sandbox.
    Signal,
}

/// Everything the kernel will be asked to enforce. No I/O happened to build it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxPlan {
    /// Enforce, best effort, or off.
    pub mode: SandboxMode,
    /// Oldest Landlock ABI `enforce` accepts.
    pub min_landlock_abi: u8,
    /// Landlock path rules; everything else is denied.
    pub fs: Vec<FsGrant>,
    /// TCP ports `connect` may reach (Landlock ABI >= 4).
    pub tcp_connect: BTreeSet<u16>,
    /// TCP ports `bind` may use: always none; the server never listens.
    pub tcp_bind: BTreeSet<u16>,
    /// Landlock scopes (ABI >= 6).
    pub scopes: Vec<ScopeRule>,
    /// What a syscall outside the allowlist gets.
    pub seccomp_action: SeccompAction,
    /// The seccomp allowlist.
    pub syscalls: Vec<AllowedSyscall>,
    /// Refused in every mode.
    pub never: Vec<&'static str>,
    /// External plugins are configured: the allowlist is [`plugin_runtime_allowlist`], and the
    /// filter answers the never-allowed calls with EPERM whatever `seccomp_action` is.
    pub plugin_runtime: bool,
    /// Policy entries the kernel cannot enforce, and grants that were skipped.
    pub warnings: Vec<String>,
}

/// Oldest Landlock ABI that external plugins run on: signal scoping arrived in ABI 6.
pub const PLUGIN_MIN_LANDLOCK_ABI: u8 = 6;

/// Builds the plan for `policy`; `probe` says what exists at a path.
pub fn plan(policy: &Policy, probe: &dyn Fn(&Path) -> PathKind) -> SandboxPlan {
    let mut fs = BTreeSet::new();
    let mut warnings = Vec::new();

    for dir in policy.data_dirs() {
        fs.insert(FsGrant {
            path: dir,
            access: FsAccess::ReadWrite,
            reason: "server data (audit.log_file, plugins.bugtracker.database)".into(),
        });
    }
    // Child processes get /dev/null as stdin; Landlock refuses it unless granted.
    if probe(Path::new("/dev/null")) == PathKind::File {
        fs.insert(FsGrant {
            path: PathBuf::from("/dev/null"),
            access: FsAccess::ReadWriteFile,
            reason: "null device".into(),
        });
    }
    for (i, pattern) in policy.filesystem.allowed_paths.iter().enumerate() {
        let key = format!("filesystem.allowed_paths[{i}]");
        match literal_prefix(&pattern.expanded) {
            None => warnings.push(format!(
                "{key}: {:?} has no absolute directory before its first wildcard; the kernel \
                 cannot confine it, so it grants nothing (write an absolute path such as \
                 \"/home/me/projects/**\")",
                pattern.written
            )),
            Some(prefix) => match probe(&prefix) {
                PathKind::Missing => warnings.push(format!(
                    "{key}: {} does not exist, so nothing is granted there; create it and restart",
                    prefix.display()
                )),
                PathKind::Directory | PathKind::File => {
                    let directory_part = pattern
                        .expanded
                        .strip_suffix("/**")
                        .unwrap_or(&pattern.expanded);
                    if Path::new(directory_part) != prefix {
                        warnings.push(format!(
                            "{key}: {:?} has a wildcard before its last directory, so the kernel \
                             grants all of {} (the server's path rules still apply the whole \
                             pattern)",
                            pattern.written,
                            prefix.display()
                        ));
                    }
                    fs.insert(FsGrant {
                        path: prefix,
                        access: FsAccess::ReadWrite,
                        reason: key,
                    });
                }
            },
        }
    }
    let granted_by_policy = fs.iter().any(|g| g.reason.starts_with("filesystem."));
    if granted_by_policy && !policy.filesystem.denied_paths.is_empty() {
        let patterns: Vec<&str> = policy
            .filesystem
            .denied_paths
            .iter()
            .map(|p| p.written.as_str())
            .collect();
        warnings.push(format!(
            "filesystem.denied_paths ({}) are enforced by the server's path rules only: Landlock \
             has no deny rules, so inside a granted directory the kernel allows them",
            patterns.join(", ")
        ));
    }

    let blocked = &policy.network.blocked_ports;
    // DNS over TCP (answers too long for UDP) goes to the name servers' ports.
    let dns_ports: Vec<u16> = if policy.network.allow_dns {
        if policy.network.dns_servers.is_empty() {
            vec![53]
        } else {
            policy
                .network
                .dns_servers
                .iter()
                .map(|s| s.port())
                .collect()
        }
    } else {
        Vec::new()
    };
    let tcp_connect: BTreeSet<u16> = policy
        .network
        .allowed_endpoints
        .iter()
        .flat_map(|e| e.ports.iter().copied())
        .chain(dns_ports)
        .filter(|port| !blocked.contains(port))
        .collect();
    if !policy.network.allowed_ranges.is_empty() {
        warnings.push(
            "network.allowed_ranges: Landlock TCP rules are per port, not per address; the \
             kernel allows connections to the ports of network.allowed_endpoints on any address, \
             and the egress connector checks the address"
                .into(),
        );
    }

    SandboxPlan {
        mode: policy.sandbox.mode,
        min_landlock_abi: policy.sandbox.min_landlock_abi,
        fs: fs.into_iter().collect(),
        tcp_connect,
        tcp_bind: BTreeSet::new(),
        scopes: vec![ScopeRule::AbstractUnixSocket, ScopeRule::Signal],
        seccomp_action: policy.sandbox.seccomp_action,
        syscalls: server_allowlist(),
        never: never_allowed().into_iter().map(|(name, _)| name).collect(),
        plugin_runtime: false,
        warnings,
    }
}

impl SandboxPlan {
    /// Raises the ceiling for external plugins, which inherit this sandbox: `grants` (read on
    /// libraries and plugin directories, read+execute on plugin programs and the plugin helper)
    /// and the plugin runtime's system calls. Without this, execve stays forbidden.
    pub fn allow_plugins(&mut self, grants: impl IntoIterator<Item = FsGrant>) {
        // One rule per path and access; the reasons of repeated grants are joined.
        let mut merged: std::collections::BTreeMap<(PathBuf, FsAccess), Vec<String>> =
            std::collections::BTreeMap::new();
        for grant in std::mem::take(&mut self.fs).into_iter().chain(grants) {
            let reasons = merged.entry((grant.path, grant.access)).or_default();
            if !reasons.contains(&grant.reason) {
                reasons.push(grant.reason);
            }
        }
        self.fs = merged
            .into_iter()
            .map(|((path, access), reasons)| FsGrant {
                path,
                access,
                reason: reasons.join("; "),
            })
            .collect();
        self.syscalls = plugin_runtime_allowlist();
        self.plugin_runtime = true;
        // Below ABI 6 nothing stops a plugin (same user, no capabilities needed) from
        // signalling the server; `enforce` then refuses to start.
        self.min_landlock_abi = self.min_landlock_abi.max(PLUGIN_MIN_LANDLOCK_ABI);
    }
}

/// The directory before a glob's first wildcard: `/home/a/projects/**` → `/home/a/projects`.
/// `None` when that is not an absolute path (`**/x`), since granting `/` would grant everything.
fn literal_prefix(pattern: &str) -> Option<PathBuf> {
    let mut prefix = PathBuf::new();
    for component in Path::new(pattern).components() {
        let text = component.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[', '{']) {
            break;
        }
        prefix.push(component);
    }
    (prefix.is_absolute() && prefix != Path::new("/")).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicySource, parse};

    fn policy(yaml: &str) -> Policy {
        let env = |name: &str| match name {
            "HOME" => Some("/home/ann".to_owned()),
            _ => None,
        };
        parse(yaml, &PolicySource::Embedded, &env).unwrap()
    }

    fn probe(path: &Path) -> PathKind {
        match path.to_str() {
            Some("/dev/null") => PathKind::File,
            Some("/home/ann/projects") | Some("/srv/data") | Some("/srv") => PathKind::Directory,
            _ => PathKind::Missing,
        }
    }

    #[test]
    fn tcp_ports_are_the_endpoints_and_the_name_servers() {
        let ports = |yaml: &str| plan(&policy(yaml), &probe).tcp_connect;
        let endpoints = "network:\n  allowed_endpoints:\n    - {host: a.com, ports: [443, 8443]}\n  blocked_ports: [8443]\n";
        assert_eq!(
            ports(endpoints),
            BTreeSet::from([443]),
            "no DNS: no port 53"
        );
        let with_dns = format!("{endpoints}  allow_dns: true\n");
        assert_eq!(
            ports(&with_dns),
            BTreeSet::from([53, 443]),
            "resolv.conf servers"
        );
        let own = format!("{with_dns}  dns_servers: [\"127.0.0.1:5353\"]\n");
        assert_eq!(ports(&own), BTreeSet::from([443, 5353]));
    }

    #[test]
    fn grants_follow_the_policy() {
        let plan = plan(
            &policy(concat!(
                "filesystem:\n  allowed_paths: [\"~/projects/**\", \"/srv/data/*.txt\", \"/nope/**\", \"**/x\", \"/srv/*/y/**\"]\n",
                "  denied_paths: [\"**/.ssh/**\"]\n",
                "network:\n  allowed_endpoints:\n    - {host: a.com, ports: [443, 22]}\n  blocked_ports: [22]\n",
            )),
            &probe,
        );
        let grants: Vec<(&str, FsAccess)> = plan
            .fs
            .iter()
            .map(|g| (g.path.to_str().unwrap(), g.access))
            .collect();
        assert_eq!(
            grants,
            [
                ("/dev/null", FsAccess::ReadWriteFile),
                (
                    "/home/ann/.local/state/mcp-secure-server",
                    FsAccess::ReadWrite
                ),
                ("/home/ann/projects", FsAccess::ReadWrite),
                ("/srv", FsAccess::ReadWrite),
                ("/srv/data", FsAccess::ReadWrite),
            ]
        );
        assert_eq!(
            plan.tcp_connect,
            BTreeSet::from([443]),
            "blocked ports are excluded"
        );
        assert!(plan.tcp_bind.is_empty());
        let warnings = plan.warnings.join("\n");
        assert!(
            warnings.contains("allowed_paths[2]: /nope does not exist"),
            "{warnings}"
        );
        assert!(
            warnings.contains("allowed_paths[3]") && warnings.contains("no absolute directory"),
            "{warnings}"
        );
        assert!(
            warnings.contains("denied_paths (**/.ssh/**)") && warnings.contains("no deny rules"),
            "{warnings}"
        );
    }

    #[test]
    fn the_never_list_is_in_the_plan_and_not_allowed() {
        let plan = plan(&policy(""), &probe);
        for name in [
            "io_uring_setup",
            "ptrace",
            "bpf",
            "unshare",
            "mount",
            "kexec_load",
            "init_module",
        ] {
            assert!(plan.never.contains(&name), "{name}");
            assert!(plan.syscalls.iter().all(|s| s.name != name), "{name}");
        }
        assert_eq!(plan.mode, SandboxMode::Enforce);
        assert_eq!(plan.seccomp_action, SeccompAction::Errno);
    }

    #[test]
    fn plugins_raise_the_ceiling_only_when_configured() {
        let mut plan = plan(&policy(""), &probe);
        let names =
            |plan: &SandboxPlan| -> Vec<&str> { plan.syscalls.iter().map(|s| s.name).collect() };
        assert!(!names(&plan).contains(&"execve"), "no plugins: no execve");
        assert!(!plan.plugin_runtime);
        let grant = |path: &str, access, reason: &str| FsGrant {
            path: PathBuf::from(path),
            access,
            reason: reason.into(),
        };
        plan.allow_plugins([
            grant("/usr/bin/node", FsAccess::ReadExecute, "a"),
            grant("/usr/bin/node", FsAccess::ReadExecute, "b"),
            grant("/usr/lib", FsAccess::Read, "runtime"),
        ]);
        assert!(plan.plugin_runtime);
        assert!(names(&plan).contains(&"execve"));
        assert_eq!(plan.min_landlock_abi, PLUGIN_MIN_LANDLOCK_ABI);
        let node: Vec<&FsGrant> = plan
            .fs
            .iter()
            .filter(|g| g.path == Path::new("/usr/bin/node"))
            .collect();
        assert_eq!(node.len(), 1, "one rule per path and access");
        assert_eq!(node[0].reason, "a; b");
        let table = crate::sandbox::seccomp::table(&plan);
        let execve = &table.syscalls[&(libc::SYS_execve as u32)];
        assert_eq!(execve.action, crate::sandbox::bpf::Action::Allow);
    }

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix("/a/b/**"), Some(PathBuf::from("/a/b")));
        assert_eq!(literal_prefix("/a/b"), Some(PathBuf::from("/a/b")));
        assert_eq!(literal_prefix("/a/*/c"), Some(PathBuf::from("/a")));
        assert_eq!(literal_prefix("/**"), None);
        assert_eq!(literal_prefix("**/.ssh"), None);
        assert_eq!(literal_prefix("rel/path"), None);
    }
}
