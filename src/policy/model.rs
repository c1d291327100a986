//! Stage two of policy loading: the validated [`Policy`] the rest of the server uses.
//!
//! Paths are expanded, globs compiled, CIDRs parsed, durations typed and limits range-checked
//! here, once. Every failure names the policy key it came from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use std::net::SocketAddr;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ipnet::IpNet;
use serde::Serialize;

use super::expand::expand;
use super::raw::{AuditField, AuditLevel, RawPolicy, SandboxMode, SeccompAction, Synchronous};
use crate::egress::hosts::HostPattern;
use crate::rpc::framing::DEFAULT_MAX_LINE_BYTES;

/// Where the audit log goes when a policy does not say (XDG state directory).
pub const DEFAULT_AUDIT_LOG: &str = "${XDG_STATE_HOME:-~/.local/state}/mcp-secure-server/audit.log";
/// Where the bug tracker keeps its database when a policy does not say (XDG state directory).
pub const DEFAULT_BUG_DATABASE: &str =
    "${XDG_STATE_HOME:-~/.local/state}/mcp-secure-server/bugs.db";
/// Default `tools.timeout`: the original's 30 seconds.
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest `tools.timeout` accepted: a day; anything longer is a typo, not a deadline.
pub const MAX_TOOL_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// Default number of tool calls running at once (a few times more may wait for a slot).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Default `tools/list` page size: every built-in tool fits on one page.
pub const DEFAULT_TOOLS_PAGE_SIZE: usize = 100;
/// Line-size bounds: below 1 KiB even `initialize` may not fit; above 256 MiB the limit
/// no longer protects memory.
pub const LINE_BYTES_RANGE: (usize, usize) = (1024, 256 * 1024 * 1024);

/// A validation failure in stage two: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted key path, e.g. `filesystem.allowed_paths[0]`.
    pub key: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The validated policy.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// Network egress rules.
    pub network: NetworkPolicy,
    /// Filesystem rules for `format: path` arguments.
    pub filesystem: FilesystemPolicy,
    /// Command rules for `format: command` arguments.
    pub commands: CommandPolicy,
    /// Per-tool limits.
    pub tools: ToolPolicy,
    /// Audit log settings.
    pub audit: AuditPolicy,
    /// Protocol resource bounds.
    pub limits: Limits,
    /// How the kernel sandbox is applied.
    pub sandbox: SandboxPolicy,
    /// Settings of the built-in plugins.
    pub plugins: PluginsPolicy,
    /// SHA-256 (hex) of the policy text, recorded in the audit log at start-up.
    pub source_sha256: String,
}

/// `sandbox:` after validation.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxPolicy {
    /// Enforce, best effort, or off.
    pub mode: SandboxMode,
    /// What a syscall outside the allowlist gets.
    pub seccomp_action: SeccompAction,
    /// Landlock ABI below which `enforce` refuses to start.
    pub min_landlock_abi: u8,
}

/// Newest Landlock ABI this build knows how to use (the `landlock` crate's newest).
pub const NEWEST_LANDLOCK_ABI: u8 = 10;

/// `network:` after validation.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkPolicy {
    /// Address ranges the connector may reach.
    pub allowed_ranges: Vec<IpNet>,
    /// Named hosts and their ports.
    pub allowed_endpoints: Vec<Endpoint>,
    /// Ports never connected to.
    pub blocked_ports: BTreeSet<u16>,
    /// Whether names may be resolved at all.
    pub allow_dns: bool,
    /// Names that may be resolved.
    pub dns_allowlist: Vec<HostPattern>,
    /// Name servers; empty means those of `/etc/resolv.conf`.
    pub dns_servers: Vec<SocketAddr>,
    /// Extra trusted CA certificate files (PEM).
    pub ca_certificates: Vec<PathBuf>,
    /// Redirects followed per request.
    pub max_redirects: u8,
}

/// One allowed endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    /// An exact name (or IP address), or `*.domain` for the names below it.
    pub host: HostPattern,
    /// Ports allowed for this host.
    pub ports: BTreeSet<u16>,
    /// Free text from the policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Plain http is allowed (otherwise https only).
    pub allow_http: bool,
}

/// Default `network.max_redirects`.
pub const DEFAULT_MAX_REDIRECTS: u8 = 5;
/// Default `limits.max_response_bytes`: a DuckDuckGo Lite page is about 30 KiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 2 * 1024 * 1024;
/// Where `web_search` sends its queries unless the policy says otherwise.
pub const DEFAULT_SEARCH_ENDPOINT: &str = "https://lite.duckduckgo.com/lite/";

/// One path glob as written and as expanded.
#[derive(Debug, Clone, Serialize)]
pub struct PathPattern {
    /// As written in the policy.
    pub written: String,
    /// After `${VAR}` and `~` expansion.
    pub expanded: String,
}

/// `filesystem:` after validation.
#[derive(Debug, Clone, Serialize)]
pub struct FilesystemPolicy {
    /// Allowed path globs.
    pub allowed_paths: Vec<PathPattern>,
    /// Denied path globs (checked first).
    pub denied_paths: Vec<PathPattern>,
    /// `allowed_paths` compiled (case-sensitive).
    #[serde(skip)]
    pub allowed_set: GlobSet,
    /// `denied_paths` compiled case-insensitively: `.SSH` is as secret as `.ssh`.
    #[serde(skip)]
    pub denied_set: GlobSet,
}

/// `commands:` after validation.
#[derive(Debug, Clone, Serialize)]
pub struct CommandPolicy {
    /// Program names never run (lowercase).
    pub blocked: BTreeSet<String>,
}

/// `tools:` after validation.
#[derive(Debug, Clone, Serialize)]
pub struct ToolPolicy {
    /// Calls per minute by tool name; `default` applies to the others.
    pub rate_limits: BTreeMap<String, u32>,
    /// Deadline of every tool call.
    #[serde(serialize_with = "seconds")]
    pub timeout: Duration,
    /// Per-tool deadlines that override `timeout`.
    #[serde(serialize_with = "seconds_map")]
    pub timeouts: BTreeMap<String, Duration>,
}

impl ToolPolicy {
    /// The deadline of `tool`.
    pub fn timeout_for(&self, tool: &str) -> Duration {
        self.timeouts.get(tool).copied().unwrap_or(self.timeout)
    }
}

/// `plugins:` after validation.
#[derive(Debug, Clone, Serialize)]
pub struct PluginsPolicy {
    /// The bug tracker, when enabled.
    pub bugtracker: Option<BugtrackerPolicy>,
    /// `web_search`, when enabled.
    pub web_search: Option<WebSearchPolicy>,
    /// External plugin manifests (absolute paths or globs), in policy order.
    pub external: Vec<PathPattern>,
}

/// `plugins.web_search` after validation.
#[derive(Debug, Clone, Serialize)]
pub struct WebSearchPolicy {
    /// The search page (http or https, no query string: `q` is added).
    pub endpoint: url::Url,
}

/// `plugins.bugtracker` after validation.
#[derive(Debug, Clone, Serialize)]
pub struct BugtrackerPolicy {
    /// Expanded, absolute path of the SQLite database.
    pub database: PathBuf,
    /// When a write is on disk.
    pub synchronous: Synchronous,
}

/// `audit:` after validation.
#[derive(Debug, Clone, Serialize)]
pub struct AuditPolicy {
    /// Expanded, absolute path of the JSON Lines file.
    pub log_file: PathBuf,
    /// Minimum level recorded.
    pub log_level: AuditLevel,
    /// Fields to record (empty: all).
    pub include: Vec<AuditField>,
    /// Rotate when the file would exceed this many MiB (0: never).
    pub max_size_mb: u64,
    /// Rotated files kept (`audit.log.1` … `audit.log.KEEP`).
    pub keep: u32,
}

/// `limits:` after validation.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// Longest accepted input line in bytes.
    pub max_line_bytes: usize,
    /// Tool calls running at once.
    pub max_in_flight: usize,
    /// Tools per `tools/list` page.
    pub tools_page_size: usize,
    /// Longest HTTP response body the egress connector reads.
    pub max_response_bytes: usize,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn seconds_map<S: serde::Serializer>(
    map: &BTreeMap<String, Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut out = s.serialize_map(Some(map.len()))?;
    for (tool, d) in map {
        out.serialize_entry(tool, &d.as_secs_f64())?;
    }
    out.end()
}

impl Policy {
    /// Validates a raw policy, expanding variables with `env`.
    ///
    /// # Errors
    /// The first key that fails validation.
    pub(crate) fn from_raw(
        raw: RawPolicy,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Invalid> {
        Ok(Policy {
            network: network(raw.network, env)?,
            filesystem: filesystem(raw.filesystem, env)?,
            commands: CommandPolicy {
                blocked: raw
                    .commands
                    .blocked
                    .iter()
                    .map(|c| c.trim().to_lowercase())
                    .collect(),
            },
            tools: tools(raw.tools)?,
            audit: audit(raw.audit, env)?,
            limits: limits(raw.limits)?,
            sandbox: sandbox(raw.sandbox)?,
            plugins: plugins(raw.plugins, env)?,
            source_sha256: String::new(),
        })
    }

    /// Directories the server writes to, created (mode 0700) at start-up.
    pub fn data_dirs(&self) -> Vec<PathBuf> {
        let files = std::iter::once(&self.audit.log_file)
            .chain(self.plugins.bugtracker.as_ref().map(|b| &b.database));
        let mut dirs: Vec<PathBuf> = files
            .filter_map(|file| file.parent().map(PathBuf::from))
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// The rate limit for `tool`, from its own entry or `default`.
    pub fn rate_limit(&self, tool: &str) -> Option<u32> {
        self.tools
            .rate_limits
            .get(tool)
            .or_else(|| self.tools.rate_limits.get("default"))
            .copied()
    }
}

fn network(
    raw: super::raw::RawNetwork,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<NetworkPolicy, Invalid> {
    let mut allowed_ranges = Vec::new();
    for (i, text) in raw.allowed_ranges.iter().enumerate() {
        allowed_ranges.push(
            parse_range(text)
                .map_err(|message| invalid(format!("network.allowed_ranges[{i}]"), message))?,
        );
    }
    let mut allowed_endpoints = Vec::new();
    for (i, endpoint) in raw.allowed_endpoints.into_iter().enumerate() {
        let host = HostPattern::parse(&endpoint.host)
            .map_err(|m| invalid(format!("network.allowed_endpoints[{i}].host"), m))?;
        if endpoint.ports.is_empty() {
            return Err(invalid(
                format!("network.allowed_endpoints[{i}].ports"),
                "no ports listed; add at least one, e.g. ports: [443]",
            ));
        }
        allowed_endpoints.push(Endpoint {
            host,
            ports: endpoint.ports.iter().map(|p| p.0).collect(),
            description: endpoint.description,
            allow_http: endpoint.allow_http,
        });
    }
    let mut dns_allowlist = Vec::new();
    for (i, name) in raw.dns_allowlist.iter().enumerate() {
        dns_allowlist.push(
            HostPattern::parse(name)
                .map_err(|m| invalid(format!("network.dns_allowlist[{i}]"), m))?,
        );
    }
    let mut dns_servers = Vec::new();
    for (i, text) in raw.dns_servers.iter().enumerate() {
        let text = text.trim();
        let server = text
            .parse::<SocketAddr>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
            .map_err(|_| {
                invalid(
                    format!("network.dns_servers[{i}]"),
                    format!(
                        "{text:?} is not a name server address; write an IP address, e.g. \"9.9.9.9\" or \"127.0.0.1:5353\""
                    ),
                )
            })?;
        if raw.blocked_ports.iter().any(|p| p.0 == server.port()) {
            return Err(invalid(
                format!("network.dns_servers[{i}]"),
                format!(
                    "port {} is in network.blocked_ports; unblock it or use another name server",
                    server.port()
                ),
            ));
        }
        dns_servers.push(server);
    }
    let mut ca_certificates = Vec::new();
    for (i, written) in raw.ca_certificates.iter().enumerate() {
        ca_certificates.push(data_file(
            &format!("network.ca_certificates[{i}]"),
            written,
            "/etc/mcp-secure-server/internal-ca.pem",
            env,
        )?);
    }
    Ok(NetworkPolicy {
        allowed_ranges,
        allowed_endpoints,
        blocked_ports: raw.blocked_ports.iter().map(|p| p.0).collect(),
        allow_dns: raw.allow_dns,
        dns_allowlist,
        dns_servers,
        ca_certificates,
        max_redirects: raw.max_redirects.unwrap_or(DEFAULT_MAX_REDIRECTS).min(20),
    })
}

/// A CIDR, or a bare address meaning just that host.
fn parse_range(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    if let Ok(addr) = text.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    Err(format!(
        "{text:?} is not a CIDR range; write e.g. \"10.0.0.0/8\" or \"fd00::/8\""
    ))
}

fn filesystem(
    raw: super::raw::RawFilesystem,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<FilesystemPolicy, Invalid> {
    let allowed_paths = patterns("filesystem.allowed_paths", &raw.allowed_paths, env)?;
    let denied_paths = patterns("filesystem.denied_paths", &raw.denied_paths, env)?;
    Ok(FilesystemPolicy {
        allowed_set: glob_set("filesystem.allowed_paths", &allowed_paths, false)?,
        denied_set: glob_set("filesystem.denied_paths", &denied_paths, true)?,
        allowed_paths,
        denied_paths,
    })
}

fn patterns(
    key: &str,
    written: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<PathPattern>, Invalid> {
    written
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let expanded =
                expand(w, env).map_err(|e| invalid(format!("{key}[{i}]"), e.to_string()))?;
            if expanded.contains('\0') {
                return Err(invalid(format!("{key}[{i}]"), "contains a NUL byte"));
            }
            Ok(PathPattern {
                written: w.clone(),
                expanded,
            })
        })
        .collect()
}

fn glob_set(
    key: &str,
    patterns: &[PathPattern],
    case_insensitive: bool,
) -> Result<GlobSet, Invalid> {
    let mut builder = GlobSetBuilder::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let glob = GlobBuilder::new(&pattern.expanded)
            .literal_separator(true)
            .case_insensitive(case_insensitive)
            .build()
            .map_err(|e| invalid(format!("{key}[{i}]"), format!("invalid glob: {}", e.kind())))?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|e| invalid(key, format!("invalid glob set: {e}")))
}

fn tools(raw: super::raw::RawTools) -> Result<ToolPolicy, Invalid> {
    for (name, limit) in &raw.rate_limits {
        if *limit == 0 {
            return Err(invalid(
                format!("tools.rate_limits.{name}"),
                "0 calls per minute would make the tool unusable; write at least 1",
            ));
        }
    }
    let timeout = match raw.timeout {
        None => DEFAULT_TOOL_TIMEOUT,
        Some(secs) => timeout_seconds("tools.timeout", secs)?,
    };
    let mut timeouts = BTreeMap::new();
    for (tool, secs) in raw.timeouts {
        let key = format!("tools.timeouts.{tool}");
        timeouts.insert(tool, timeout_seconds(&key, secs)?);
    }
    Ok(ToolPolicy {
        rate_limits: raw.rate_limits,
        timeout,
        timeouts,
    })
}

fn timeout_seconds(key: &str, secs: f64) -> Result<Duration, Invalid> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero() && *d <= MAX_TOOL_TIMEOUT)
        .ok_or_else(|| {
            invalid(
                key,
                format!("{secs} is not a timeout; write seconds between 0 and 86400, e.g. 30"),
            )
        })
}

fn audit(
    raw: super::raw::RawAudit,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AuditPolicy, Invalid> {
    let written = raw.log_file.as_deref().unwrap_or(DEFAULT_AUDIT_LOG);
    let log_file = data_file(
        "audit.log_file",
        written,
        "~/.local/state/mcp-secure-server/audit.log",
        env,
    )?;
    Ok(AuditPolicy {
        log_file,
        log_level: raw.log_level.unwrap_or(AuditLevel::Info),
        include: raw.include.unwrap_or_default(),
        max_size_mb: raw.max_size_mb.unwrap_or(10),
        keep: raw.keep.unwrap_or(5).min(1000),
    })
}

/// An absolute file path from `key`, expanded; `example` shows a valid value in the error.
fn data_file(
    key: &str,
    written: &str,
    example: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, Invalid> {
    let expanded = expand(written, env).map_err(|e| invalid(key, e.to_string()))?;
    let path = PathBuf::from(&expanded);
    if !path.is_absolute() || path.file_name().is_none() || expanded.ends_with('/') {
        return Err(invalid(
            key,
            format!("{expanded:?} is not an absolute file path; write e.g. {example:?}"),
        ));
    }
    Ok(path)
}

fn plugins(
    raw: super::raw::RawPlugins,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PluginsPolicy, Invalid> {
    let bugtracker = if raw.bugtracker.enabled.unwrap_or(true) {
        let written = raw
            .bugtracker
            .database
            .as_deref()
            .unwrap_or(DEFAULT_BUG_DATABASE);
        Some(BugtrackerPolicy {
            database: data_file(
                "plugins.bugtracker.database",
                written,
                "~/.local/state/mcp-secure-server/bugs.db",
                env,
            )?,
            synchronous: raw.bugtracker.synchronous.unwrap_or(Synchronous::Full),
        })
    } else {
        None
    };
    let web_search = if raw.web_search.enabled.unwrap_or(true) {
        let written = raw
            .web_search
            .endpoint
            .as_deref()
            .unwrap_or(DEFAULT_SEARCH_ENDPOINT);
        Some(WebSearchPolicy {
            endpoint: search_endpoint(written)
                .map_err(|m| invalid("plugins.web_search.endpoint", m))?,
        })
    } else {
        None
    };
    let external = patterns("plugins.external", &raw.external, env)?;
    for (i, pattern) in external.iter().enumerate() {
        if !pattern.expanded.starts_with('/') {
            return Err(invalid(
                format!("plugins.external[{i}]"),
                format!(
                    "{:?} is not an absolute path; write e.g. \"~/mcp-plugins/*/manifest.yaml\"",
                    pattern.written
                ),
            ));
        }
    }
    Ok(PluginsPolicy {
        bugtracker,
        web_search,
        external,
    })
}

fn search_endpoint(written: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(written.trim()).map_err(|e| {
        format!("{written:?} is not a URL ({e}); write e.g. \"https://lite.duckduckgo.com/lite/\"")
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(format!(
            "{written:?} is not an http(s) URL; write e.g. \"https://lite.duckduckgo.com/lite/\""
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "{written:?} has a query, fragment or user name; give the page only (the query is added as ?q=)"
        ));
    }
    Ok(url)
}

fn limits(raw: super::raw::RawLimits) -> Result<Limits, Invalid> {
    let max_line_bytes = in_range(
        "limits.max_line_bytes",
        raw.max_line_bytes.unwrap_or(DEFAULT_MAX_LINE_BYTES),
        LINE_BYTES_RANGE,
    )?;
    let max_in_flight = in_range(
        "limits.max_in_flight",
        raw.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT),
        (1, 4096),
    )?;
    let tools_page_size = in_range(
        "limits.tools_page_size",
        raw.tools_page_size.unwrap_or(DEFAULT_TOOLS_PAGE_SIZE),
        (1, 10_000),
    )?;
    let max_response_bytes = in_range(
        "limits.max_response_bytes",
        raw.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
        (1024, 256 * 1024 * 1024),
    )?;
    Ok(Limits {
        max_line_bytes,
        max_in_flight,
        tools_page_size,
        max_response_bytes,
    })
}

fn in_range(key: &str, value: usize, (low, high): (usize, usize)) -> Result<usize, Invalid> {
    if (low..=high).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            key,
            format!("{value} is out of range; write a number from {low} to {high}"),
        ))
    }
}

fn sandbox(raw: super::raw::RawSandbox) -> Result<SandboxPolicy, Invalid> {
    let min_landlock_abi = raw.min_landlock_abi.unwrap_or(1);
    if !(1..=NEWEST_LANDLOCK_ABI).contains(&min_landlock_abi) {
        return Err(invalid(
            "sandbox.min_landlock_abi",
            format!(
                "{min_landlock_abi} is not a Landlock ABI this server knows; write 1 to \
                 {NEWEST_LANDLOCK_ABI} (or sandbox.mode: off to run without a sandbox)"
            ),
        ));
    }
    Ok(SandboxPolicy {
        mode: raw.mode.unwrap_or(SandboxMode::Enforce),
        seccomp_action: raw.seccomp_action.unwrap_or(SeccompAction::Errno),
        min_landlock_abi,
    })
}
