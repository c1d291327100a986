//! Stage one of policy loading: the YAML shape, exactly as written.
//!
//! Every struct rejects unknown keys, so a typo is an error instead of a silently ignored rule.
//! Only shape and scalar ranges are checked here; expansion, globs and CIDRs are stage two
//! (`policy::model`). The original Python project's policy files deserialize unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// The whole `policy.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPolicy {
    pub version: Option<PolicyVersion>,
    pub network: RawNetwork,
    pub filesystem: RawFilesystem,
    pub commands: RawCommands,
    pub tools: RawTools,
    pub audit: RawAudit,
    pub limits: RawLimits,
    pub sandbox: RawSandbox,
    pub plugins: RawPlugins,
}

/// `version:` — the original writes `"1.0"`; an unquoted `1.0` or `1` is accepted too.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyVersion(pub String);

impl<'de> Deserialize<'de> for PolicyVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Text(String),
            Integer(u64),
            Float(f64),
        }
        let text = match Written::deserialize(deserializer)? {
            Written::Text(text) => text,
            Written::Integer(n) => format!("{n}.0"),
            Written::Float(f) => format!("{f:.1}"),
        };
        if text == "1" || text == "1.0" {
            Ok(PolicyVersion("1.0".to_owned()))
        } else {
            Err(serde::de::Error::custom(format!(
                "unsupported policy version {text:?}; this server reads version \"1.0\""
            )))
        }
    }
}

/// `network:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNetwork {
    pub allowed_ranges: Vec<String>,
    pub allowed_endpoints: Vec<RawEndpoint>,
    pub blocked_ports: Vec<Port>,
    pub allow_dns: bool,
    pub dns_allowlist: Vec<String>,
    /// Name servers (`IP` or `IP:port`); empty: `/etc/resolv.conf`, read before lock-down.
    pub dns_servers: Vec<String>,
    /// PEM files with extra trusted CA certificates (beside the compiled-in web PKI roots).
    pub ca_certificates: Vec<String>,
    /// Redirects followed per request (each hop is checked again).
    pub max_redirects: Option<u8>,
}

/// One entry of `network.allowed_endpoints`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub host: String,
    pub ports: Vec<Port>,
    #[serde(default)]
    pub description: Option<String>,
    /// Plain `http://` is allowed for this endpoint (default: https only).
    #[serde(default)]
    pub allow_http: bool,
}

/// A TCP port, 1–65535 (0 is not a port anyone can connect to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(deserializer)?;
        match u16::try_from(n) {
            Ok(port) if port != 0 => Ok(Port(port)),
            _ => Err(serde::de::Error::custom(format!(
                "{n} is not a TCP port (expected 1-65535)"
            ))),
        }
    }
}

/// `filesystem:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFilesystem {
    pub allowed_paths: Vec<String>,
    pub denied_paths: Vec<String>,
}

/// `commands:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCommands {
    pub blocked: Vec<String>,
}

/// `tools:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTools {
    /// Calls per minute, per tool name, with `default` for the rest.
    pub rate_limits: BTreeMap<String, u32>,
    /// Seconds a call may run (integer or fraction).
    pub timeout: Option<f64>,
    /// Per-tool overrides of `timeout`.
    pub timeouts: BTreeMap<String, f64>,
}

/// `audit:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAudit {
    pub log_file: Option<String>,
    pub log_level: Option<AuditLevel>,
    pub include: Option<Vec<AuditField>>,
    pub max_size_mb: Option<u64>,
    pub keep: Option<u32>,
}

/// `audit.log_level`: the original's names, any case (`INFO`, `warn`, `WARNING`…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AuditLevel {
    /// Every call, with arguments (redacted).
    Debug,
    /// Every call.
    Info,
    /// Denials and failures only.
    Warn,
    /// Failures only.
    Error,
}

impl<'de> Deserialize<'de> for AuditLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.to_ascii_uppercase().as_str() {
            "DEBUG" => Ok(AuditLevel::Debug),
            "INFO" => Ok(AuditLevel::Info),
            "WARN" | "WARNING" => Ok(AuditLevel::Warn),
            "ERROR" => Ok(AuditLevel::Error),
            _ => Err(serde::de::Error::custom(format!(
                "unknown audit level {text:?}; expected one of DEBUG, INFO, WARN, ERROR"
            ))),
        }
    }
}

/// `audit.include`: the record fields the original documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum AuditField {
    Timestamp,
    RequestId,
    ToolName,
    Arguments,
    ResultStatus,
    ExecutionTime,
    SecurityEvents,
}

/// `limits:` — our own section: bounds on what a client can make the server hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    pub max_line_bytes: Option<usize>,
    pub max_in_flight: Option<usize>,
    pub tools_page_size: Option<usize>,
    pub max_response_bytes: Option<usize>,
}

/// `sandbox:` — our own section: how the kernel sandbox is applied.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSandbox {
    pub mode: Option<SandboxMode>,
    pub seccomp_action: Option<SeccompAction>,
    pub min_landlock_abi: Option<u8>,
}

/// `sandbox.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// Everything the policy needs is enforced, or the server refuses to start.
    Enforce,
    /// Start with whatever the kernel supports, and say loudly what is missing.
    BestEffort,
    /// No kernel sandbox: for diagnosis and benchmarks only.
    Off,
}

/// `sandbox.seccomp_action`: what a syscall outside the allowlist gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeccompAction {
    /// The call fails with EPERM and the server carries on.
    Errno,
    /// The whole process is killed (SIGSYS): the strictest, used by the tests.
    Kill,
    /// The call is allowed and logged by the kernel audit: for building allowlists.
    Log,
}

/// `plugins:` — our own section: settings of the built-in plugins.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPlugins {
    pub bugtracker: RawBugtracker,
    pub web_search: RawWebSearch,
    /// External plugin manifests: absolute paths or globs.
    pub external: Vec<String>,
}

/// `plugins.web_search`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWebSearch {
    /// Serve `web_search` (default true).
    pub enabled: Option<bool>,
    /// The DuckDuckGo Lite page (or a compatible one).
    pub endpoint: Option<String>,
}

/// `plugins.bugtracker`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBugtracker {
    /// Serve the bug tracker tools (default true).
    pub enabled: Option<bool>,
    /// The SQLite database file.
    pub database: Option<String>,
    /// When a write is on disk.
    pub synchronous: Option<Synchronous>,
}

/// `plugins.bugtracker.synchronous`: SQLite's `PRAGMA synchronous`, in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Every answered write survives a power cut (one fsync per write).
    Full,
    /// Answered writes survive a crash of the server, but the last ones may be lost in a power
    /// cut; the file is never corrupted. About twice the write rate.
    Normal,
}
