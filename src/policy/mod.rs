//! The security policy: loading `policy.yaml` (or the embedded default) into a validated
//! [`Policy`].
//!
//! Loading is two stages: `raw` mirrors the YAML and rejects unknown keys; [`model`] expands
//! `${VAR}`/`~`, compiles globs, parses CIDRs and checks ranges. Every error names the key (and,
//! for YAML errors, the line and column) and says what to write instead. Enforcement lives
//! elsewhere; this module only decides what the policy says.

pub mod expand;
pub mod model;
mod raw;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use model::{Invalid, Policy};
use raw::RawPolicy;
pub use raw::{AuditField, AuditLevel, SandboxMode, SeccompAction, Synchronous};

/// The policy `serve` uses when no `--policy` is given.
pub const DEFAULT_POLICY_YAML: &str = include_str!("../../policy/default.yaml");

/// Policy files larger than this are refused before parsing: a policy is a page of YAML, and
/// the limit keeps a mistaken `--policy /dev/zero` or a huge file from costing memory.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

/// Where a policy came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// `policy/default.yaml`, compiled into the binary.
    Embedded,
    /// A file given with `--policy`.
    File(PathBuf),
}

impl std::fmt::Display for PolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicySource::Embedded => f.write_str("<embedded default policy>"),
            PolicySource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Why a policy could not be loaded.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// The file could not be opened or read.
    #[error(
        "{path}: cannot read policy file: {source}\nhint: check the --policy path, or omit --policy to use the embedded default"
    )]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_POLICY_BYTES`].
    #[error("{path}: policy file is {size} bytes; the limit is {MAX_POLICY_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
    },
    /// YAML syntax, an unknown key, or a value of the wrong type or range.
    #[error("{source_name}: {key}: {detail}")]
    Syntax {
        /// The policy's origin.
        source_name: PolicySource,
        /// Dotted key path (`.` for the document root).
        key: String,
        /// Parser message with line, column and a snippet.
        detail: String,
    },
    /// A value that parsed but does not make sense (bad glob, CIDR, unset variable…).
    #[error("{source_name}: {}: {}", .invalid.key, .invalid.message)]
    Invalid {
        /// The policy's origin.
        source_name: PolicySource,
        /// The key and message.
        invalid: Invalid,
    },
}

impl PolicyError {
    /// The dotted key the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            PolicyError::Syntax { key, .. } => Some(key),
            PolicyError::Invalid { invalid, .. } => Some(&invalid.key),
            PolicyError::Read { .. } | PolicyError::TooLarge { .. } => None,
        }
    }
}

/// Loads the policy from `path`, or the embedded default when `path` is `None`, expanding
/// variables from the process environment.
///
/// # Errors
/// See [`PolicyError`].
pub fn load(path: Option<&Path>) -> Result<(Policy, PolicySource), PolicyError> {
    let env = |name: &str| std::env::var(name).ok();
    match path {
        None => {
            let policy = parse(DEFAULT_POLICY_YAML, &PolicySource::Embedded, &env)?;
            Ok((policy, PolicySource::Embedded))
        }
        Some(path) => {
            let text = read_bounded(path)?;
            let source = PolicySource::File(path.to_path_buf());
            Ok((parse(&text, &source, &env)?, source))
        }
    }
}

fn read_bounded(path: &Path) -> Result<String, PolicyError> {
    let read_error = |source| PolicyError::Read {
        path: path.display().to_string(),
        source,
    };
    read_text_at_most(path, MAX_POLICY_BYTES)
        .map_err(read_error)?
        .ok_or_else(|| PolicyError::TooLarge {
            path: path.display().to_string(),
            size: std::fs::metadata(path)
                .map(|m| m.len())
                .unwrap_or(MAX_POLICY_BYTES + 1),
        })
}

/// A UTF-8 text file of at most `limit` bytes; `Ok(None)` when it is larger. Reads one byte
/// past the limit, so an oversize file is detected without reading all of it.
pub(crate) fn read_text_at_most(path: &Path, limit: u64) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut text = String::new();
    let read = std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_string(&mut text)?;
    Ok((read as u64 <= limit).then_some(text))
}

/// Parses and validates policy text. Pure apart from the `env` lookup.
///
/// # Errors
/// [`PolicyError::Syntax`] or [`PolicyError::Invalid`].
pub fn parse(
    text: &str,
    source: &PolicySource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Policy, PolicyError> {
    let mut failed_key = None;
    let raw: RawPolicy = serde_saphyr::with_deserializer_from_str(text, |deserializer| {
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            failed_key = Some(e.path().to_string());
            e.into_inner()
        })
    })
    .map_err(|e| PolicyError::Syntax {
        source_name: source.clone(),
        key: failed_key.unwrap_or_else(|| ".".to_owned()),
        detail: e.to_string().replace("<input>", &source.to_string()),
    })?;
    let mut policy = Policy::from_raw(raw, env).map_err(|invalid| PolicyError::Invalid {
        source_name: source.clone(),
        invalid,
    })?;
    policy.source_sha256 = sha256_hex(text.as_bytes());
    Ok(policy)
}

/// SHA-256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "HOME").then(|| "/home/ann".to_owned())
    }

    fn parse_str(text: &str) -> Result<Policy, PolicyError> {
        parse(text, &PolicySource::File("p.yaml".into()), &env)
    }

    #[test]
    fn embedded_default_loads() {
        let policy = parse(DEFAULT_POLICY_YAML, &PolicySource::Embedded, &env).unwrap();
        assert_eq!(
            policy.audit.log_file,
            PathBuf::from("/home/ann/.local/state/mcp-secure-server/audit.log")
        );
        assert_eq!(policy.limits.max_line_bytes, 4 * 1024 * 1024);
    }

    #[test]
    fn the_network_and_web_search_settings_are_validated() {
        let policy = parse_str(
            "network:
  allowed_endpoints:
    - {host: \"API.Example.com.\", ports: [443], allow_http: true}
    - {host: \"*.cdn.example.com\", ports: [443]}
  dns_allowlist: [\"Bücher.example\"]
  dns_servers: [\"9.9.9.9\", \"127.0.0.1:5353\", \"[::1]:53\"]
  ca_certificates: [\"~/ca.pem\"]
  max_redirects: 3
limits:
  max_response_bytes: 65536
plugins:
  web_search:
    endpoint: \"https://search.example.com:8443/lite/\"
",
        )
        .unwrap();
        let network = &policy.network;
        assert_eq!(
            network.allowed_endpoints[0].host.to_string(),
            "api.example.com"
        );
        assert!(network.allowed_endpoints[0].allow_http);
        assert!(!network.allowed_endpoints[1].allow_http);
        assert_eq!(
            network.dns_allowlist[0].to_string(),
            "xn--bcher-kva.example"
        );
        let servers: Vec<String> = network.dns_servers.iter().map(|s| s.to_string()).collect();
        assert_eq!(servers, ["9.9.9.9:53", "127.0.0.1:5353", "[::1]:53"]);
        assert_eq!(network.ca_certificates, [PathBuf::from("/home/ann/ca.pem")]);
        assert_eq!(network.max_redirects, 3);
        assert_eq!(policy.limits.max_response_bytes, 65536);
        assert_eq!(
            policy.plugins.web_search.unwrap().endpoint.as_str(),
            "https://search.example.com:8443/lite/"
        );
        let defaults = parse_str("").unwrap();
        assert_eq!(
            defaults.plugins.web_search.unwrap().endpoint.as_str(),
            "https://lite.duckduckgo.com/lite/"
        );
        assert_eq!(defaults.network.max_redirects, model::DEFAULT_MAX_REDIRECTS);
        let off = parse_str("plugins:\n  web_search:\n    enabled: false\n").unwrap();
        assert!(off.plugins.web_search.is_none());

        for (yaml, key, words) in [
            (
                "network:\n  allowed_endpoints: [{host: \"*\", ports: [443]}]\n",
                "allowed_endpoints[0].host",
                "every host",
            ),
            (
                "network:\n  allowed_endpoints: [{host: \"*.com\", ports: [443]}]\n",
                "allowed_endpoints[0].host",
                "top-level",
            ),
            (
                "network:\n  dns_allowlist: [\"ex*ample.com\"]\n",
                "dns_allowlist[0]",
                "wildcard",
            ),
            (
                "network:\n  allowed_ranges: [\"10.0.0.0/33\"]\n",
                "allowed_ranges[0]",
                "CIDR",
            ),
            (
                "network:\n  dns_servers: [\"dns.google\"]\n",
                "dns_servers[0]",
                "IP address",
            ),
            (
                "network:\n  ca_certificates: [\"ca.pem\"]\n",
                "ca_certificates[0]",
                "absolute",
            ),
            (
                "limits:\n  max_response_bytes: 10\n",
                "limits.max_response_bytes",
                "1024",
            ),
            (
                "plugins:\n  web_search:\n    endpoint: \"ftp://x.example/\"\n",
                "plugins.web_search.endpoint",
                "http(s)",
            ),
            (
                "plugins:\n  web_search:\n    endpoint: \"https://x.example/lite/?q=a\"\n",
                "plugins.web_search.endpoint",
                "query",
            ),
        ] {
            let error = parse_str(yaml).unwrap_err().to_string();
            assert!(
                error.contains(key) && error.contains(words),
                "{yaml}: {error}"
            );
        }
    }

    #[test]
    fn the_bug_tracker_settings_are_validated() {
        let policy = parse_str("").unwrap();
        let tracker = policy.plugins.bugtracker.unwrap();
        assert_eq!(
            tracker.database,
            PathBuf::from("/home/ann/.local/state/mcp-secure-server/bugs.db")
        );
        assert_eq!(tracker.synchronous, Synchronous::Full);
        let policy = parse_str(
            "plugins:\n  bugtracker:\n    database: ~/bugs/b.db\n    synchronous: normal\n",
        )
        .unwrap();
        let tracker = policy.plugins.bugtracker.clone().unwrap();
        assert_eq!(tracker.database, PathBuf::from("/home/ann/bugs/b.db"));
        assert_eq!(tracker.synchronous, Synchronous::Normal);
        assert_eq!(
            policy.data_dirs(),
            [
                PathBuf::from("/home/ann/.local/state/mcp-secure-server"),
                PathBuf::from("/home/ann/bugs")
            ]
        );
        let off = parse_str("plugins:\n  bugtracker:\n    enabled: false\n").unwrap();
        assert!(off.plugins.bugtracker.is_none());
        let relative = parse_str("plugins:\n  bugtracker:\n    database: bugs.db\n")
            .unwrap_err()
            .to_string();
        assert!(
            relative.contains("plugins.bugtracker.database") && relative.contains("absolute"),
            "{relative}"
        );
        let typo = parse_str("plugins:\n  bugtracker:\n    synchronous: off\n")
            .unwrap_err()
            .to_string();
        assert!(typo.contains("synchronous"), "{typo}");
    }

    #[test]
    fn empty_document_is_the_all_defaults_policy() {
        let policy = parse_str("").unwrap();
        assert!(policy.filesystem.allowed_paths.is_empty());
        assert_eq!(policy.tools.timeout, model::DEFAULT_TOOL_TIMEOUT);
    }

    #[test]
    fn errors_name_the_key_and_the_line() {
        let cases = [
            (
                "network:\n  allowed_endpoints:\n    - host: a.com\n      ports: [443, 70000]\n",
                "network.allowed_endpoints[0].ports[1]",
                "70000 is not a TCP port",
            ),
            (
                "network:\n  bogus: 1\n",
                "network.bogus",
                "unknown field `bogus`",
            ),
            ("tools:\n  timeout: -3\n", "tools.timeout", "not a timeout"),
            (
                "network:\n  allowed_ranges: [\"10.0.0.0/33\"]\n",
                "network.allowed_ranges[0]",
                "not a CIDR",
            ),
            (
                "filesystem:\n  allowed_paths: [\"${NOPE}/x\"]\n",
                "filesystem.allowed_paths[0]",
                "NOPE is not set",
            ),
            (
                "filesystem:\n  denied_paths: [\"a[\"]\n",
                "filesystem.denied_paths[0]",
                "invalid glob",
            ),
            (
                "audit:\n  log_level: LOUD\n",
                "audit.log_level",
                "unknown audit level",
            ),
            (
                "version: \"2.0\"\n",
                "version",
                "unsupported policy version",
            ),
            (
                "limits:\n  max_line_bytes: 10\n",
                "limits.max_line_bytes",
                "out of range",
            ),
            (
                "tools:\n  rate_limits:\n    web_search: 0\n",
                "tools.rate_limits.web_search",
                "at least 1",
            ),
        ];
        for (yaml, key, fragment) in cases {
            let error = parse_str(yaml).expect_err(yaml);
            assert_eq!(error.key(), Some(key), "{yaml}: {error}");
            let text = error.to_string();
            assert!(text.contains(fragment), "{yaml}: {text}");
            assert!(text.starts_with("p.yaml: "), "{text}");
        }
        let text = parse_str("network:\n  bogus: 1\n").unwrap_err().to_string();
        assert!(text.contains("line 2 column 3"), "{text}");
    }

    #[test]
    fn yaml_bombs_are_refused_by_the_budget() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse_str(&bomb).is_err());
        let deep = format!("network: {}", "[".repeat(100_000));
        assert!(parse_str(&deep).is_err());
    }
}
