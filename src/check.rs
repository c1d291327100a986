//! `check`: what a policy says and what the server enforces of it, as a table or JSON.
//!
//! The report is honest about coverage: every policy key is listed with the layer that
//! enforces it, and keys whose enforcement is not built yet say so instead of implying
//! protection that does not exist.

use serde::Serialize;
use serde_json::{Value, json};

use crate::plugins::Registry;
use crate::policy::{Policy, PolicySource};
use crate::sandbox::SandboxPlan;

/// Who enforces a policy key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforcement {
    /// Checked by the server on every message or call.
    Server,
    /// Enforced by the kernel sandbox (Landlock, seccomp) for the whole process.
    Kernel,
    /// Accepted and validated, but nothing enforces it yet.
    NotYetEnforced,
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct KeyReport {
    /// Dotted policy key.
    pub key: &'static str,
    /// Its effective value, rendered.
    pub value: String,
    /// Who enforces it.
    pub enforcement: Enforcement,
    /// How, in a few words.
    pub how: &'static str,
}

/// Everything `check` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where the policy came from.
    pub source: String,
    /// One row per key.
    pub keys: Vec<KeyReport>,
    /// Tools that will be served, by category.
    pub tools: Vec<Value>,
    /// Things that look wrong but do not stop the server.
    pub warnings: Vec<String>,
    /// What the egress connector allows, one line per endpoint.
    pub egress: Vec<EgressRow>,
    /// What the kernel will be asked to enforce.
    pub sandbox: SandboxPlan,
}

/// One allowed endpoint as the egress connector applies it.
#[derive(Debug, Clone, Serialize)]
pub struct EgressRow {
    /// The host rule (`name`, `*.domain` or an IP address).
    pub host: String,
    /// Ports, minus `network.blocked_ports`.
    pub ports: Vec<u16>,
    /// `https`, or `https, http`.
    pub schemes: &'static str,
    /// Whether the resolver will look the name up (`-` for IP addresses and wildcards that no
    /// allowlist entry covers).
    pub dns: &'static str,
}

/// Builds the report for `policy` served with `registry`.
pub fn report(
    policy: &Policy,
    source: &PolicySource,
    registry: &Registry,
    plan: &SandboxPlan,
) -> Report {
    use Enforcement::{Kernel, Server};
    let n = &policy.network;
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "(none)".to_owned()
        } else {
            items.join(", ")
        }
    };
    let endpoints = n
        .allowed_endpoints
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e.host,
                e.ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join("/")
            )
        })
        .collect();
    let row = |key, value, enforcement, how| KeyReport {
        key,
        value,
        enforcement,
        how,
    };
    let keys = vec![
        row(
            "network.allowed_ranges",
            list(n.allowed_ranges.iter().map(ToString::to_string).collect()),
            Server,
            "egress connector: loopback, private, link-local, CGNAT, ULA, NAT64… addresses are refused unless listed (every DNS answer and IP literal)",
        ),
        row(
            "network.allowed_endpoints",
            list(endpoints),
            Server,
            "egress connector: host, port and scheme of every request and redirect hop; kernel: Landlock TCP connect only to these ports",
        ),
        row(
            "network.blocked_ports",
            list(n.blocked_ports.iter().map(u16::to_string).collect()),
            Server,
            "egress connector refuses them; kernel: left out of the Landlock TCP ports",
        ),
        row(
            "network.allow_dns",
            n.allow_dns.to_string(),
            Server,
            "resolver: no lookups at all when false",
        ),
        row(
            "network.dns_allowlist",
            list(n.dns_allowlist.iter().map(ToString::to_string).collect()),
            Server,
            "resolver: any other name is refused before a packet is sent",
        ),
        row(
            "network.dns_servers",
            if n.dns_servers.is_empty() {
                "(from /etc/resolv.conf)".to_owned()
            } else {
                list(n.dns_servers.iter().map(ToString::to_string).collect())
            },
            Server,
            "resolver: the only name servers asked",
        ),
        row(
            "network.ca_certificates",
            list(
                n.ca_certificates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            ),
            Server,
            "TLS: trusted beside the compiled-in web PKI roots",
        ),
        row(
            "network.max_redirects",
            n.max_redirects.to_string(),
            Server,
            "HTTP client: redirects followed, each hop checked again",
        ),
        row(
            "filesystem.allowed_paths",
            list(
                policy
                    .filesystem
                    .allowed_paths
                    .iter()
                    .map(|p| p.expanded.clone())
                    .collect(),
            ),
            Server,
            "path rules on format: path arguments; kernel: Landlock read/write beneath each pattern's directory",
        ),
        row(
            "filesystem.denied_paths",
            list(
                policy
                    .filesystem
                    .denied_paths
                    .iter()
                    .map(|p| p.expanded.clone())
                    .collect(),
            ),
            Server,
            "checked first, any case, on format: path arguments (Landlock has no deny rules)",
        ),
        row(
            "commands.blocked",
            list(policy.commands.blocked.iter().cloned().collect()),
            Server,
            "program name of format: command arguments, plus a shell-syntax ban",
        ),
        row(
            "tools.rate_limits",
            list(
                policy
                    .tools
                    .rate_limits
                    .iter()
                    .map(|(k, v)| format!("{k}={v}/min"))
                    .collect(),
            ),
            Server,
            "calls per sliding minute, per tool",
        ),
        row(
            "tools.timeout",
            format!("{} s", policy.tools.timeout.as_secs_f64()),
            Server,
            "every tools/call is stopped at this deadline",
        ),
        row(
            "audit.log_file",
            policy.audit.log_file.display().to_string(),
            Server,
            "hash-chained JSON Lines, 0600, one record per call",
        ),
        row(
            "audit.log_level",
            format!("{:?}", policy.audit.log_level).to_uppercase(),
            Server,
            "which call outcomes are recorded",
        ),
        row(
            "limits.max_line_bytes",
            policy.limits.max_line_bytes.to_string(),
            Server,
            "longer input lines are discarded with one error",
        ),
        row(
            "limits.max_in_flight",
            policy.limits.max_in_flight.to_string(),
            Server,
            "tool calls running at once; 4x admitted in all, then \"busy\"",
        ),
        row(
            "limits.tools_page_size",
            policy.limits.tools_page_size.to_string(),
            Server,
            "tools/list page size",
        ),
        row(
            "sandbox.mode",
            format!("{:?}", policy.sandbox.mode).to_lowercase(),
            Kernel,
            "enforce: refuse to start unless Landlock and seccomp are applied",
        ),
        row(
            "sandbox.seccomp_action",
            format!("{:?}", policy.sandbox.seccomp_action).to_lowercase(),
            Kernel,
            "what a system call outside the allowlist gets",
        ),
        row(
            "sandbox.min_landlock_abi",
            policy.sandbox.min_landlock_abi.to_string(),
            Kernel,
            "oldest Landlock ABI accepted in enforce mode",
        ),
        row(
            "limits.max_response_bytes",
            policy.limits.max_response_bytes.to_string(),
            Server,
            "HTTP client: longer response bodies are cut off with an error",
        ),
        match &policy.plugins.web_search {
            Some(search) => row(
                "plugins.web_search",
                search.endpoint.to_string(),
                Server,
                "web_search queries this page through the egress connector",
            ),
            None => row(
                "plugins.web_search",
                "disabled".into(),
                Server,
                "no web_search tool",
            ),
        },
        row(
            "plugins.external",
            list(
                policy
                    .plugins
                    .external
                    .iter()
                    .map(|p| p.written.clone())
                    .collect(),
            ),
            Kernel,
            if plan.plugin_runtime {
                "each call runs in its own sandbox (no network, Landlock on its grants, seccomp, \
                 rlimits); the server may execute only these plugins"
            } else {
                "no external plugins: execve stays forbidden"
            },
        ),
        match &policy.plugins.bugtracker {
            Some(tracker) => row(
                "plugins.bugtracker",
                format!(
                    "{} (synchronous {})",
                    tracker.database.display(),
                    match tracker.synchronous {
                        crate::policy::Synchronous::Full => "full",
                        crate::policy::Synchronous::Normal => "normal",
                    }
                ),
                Server,
                "SQLite database, 0600, WAL, one transaction per write; kernel: its directory is writable",
            ),
            None => row(
                "plugins.bugtracker",
                "disabled".into(),
                Server,
                "no bug tracker tools",
            ),
        },
    ];
    let tools = registry
        .catalog()
        .categories
        .iter()
        .map(|c| json!({"category": c.name, "version": c.version, "tools": c.tools.iter().map(|t| &t.name).collect::<Vec<_>>()}))
        .collect();
    let mut warnings: Vec<String> = policy
        .tools
        .rate_limits
        .keys()
        .filter(|name| *name != "default" && registry.get(name).is_none())
        .map(|name| {
            format!(
                "tools.rate_limits.{name}: no tool of that name is served; the entry has no effect"
            )
        })
        .collect();
    warnings.extend(plan.warnings.iter().cloned());
    let gaps = crate::sandbox::abi_gaps(crate::sandbox::landlock_abi());
    match policy.sandbox.mode {
        crate::policy::SandboxMode::Enforce => {}
        crate::policy::SandboxMode::BestEffort => {
            warnings.extend(gaps.iter().map(|gap| {
                format!("sandbox.mode is best-effort; not enforced on this kernel: {gap}")
            }))
        }
        crate::policy::SandboxMode::Off => warnings.push(
            "sandbox.mode is off: no capabilities dropped, no Landlock, no seccomp".to_owned(),
        ),
    }
    if let Some(search) = &policy.plugins.web_search {
        let rules = crate::egress::EgressRules::new(&policy.network);
        if let Err(denial) = rules.check_url(&search.endpoint) {
            warnings.push(format!(
                "plugins.web_search.endpoint {}: every search will be refused ({})",
                search.endpoint, denial.0
            ));
        } else if let Some(host) = search.endpoint.domain() {
            let host = crate::egress::hosts::normalise_name(host).unwrap_or_default();
            if rules.check_dns_name(&host).is_err() {
                warnings.push(format!(
                    "plugins.web_search.endpoint: {host} is not in network.dns_allowlist, so it cannot be resolved"
                ));
            }
        }
    }
    Report {
        source: source.to_string(),
        keys,
        tools,
        warnings,
        egress: egress_rows(policy),
        sandbox: plan.clone(),
    }
}

fn egress_rows(policy: &Policy) -> Vec<EgressRow> {
    let network = &policy.network;
    let rules = crate::egress::EgressRules::new(network);
    network
        .allowed_endpoints
        .iter()
        .map(|endpoint| {
            let host = endpoint.host.to_string();
            let dns = match &endpoint.host {
                crate::egress::hosts::HostPattern::Exact(name) => {
                    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
                        if rules.check_address(ip).is_ok() {
                            "- (address)"
                        } else {
                            "- (address REFUSED: outside network.allowed_ranges)"
                        }
                    } else if rules.check_dns_name(name).is_ok() {
                        "yes"
                    } else {
                        "NO (not in dns_allowlist)"
                    }
                }
                crate::egress::hosts::HostPattern::Below(_) => "per name (dns_allowlist)",
            };
            EgressRow {
                host,
                ports: endpoint
                    .ports
                    .iter()
                    .copied()
                    .filter(|p| !network.blocked_ports.contains(p))
                    .collect(),
                schemes: if endpoint.allow_http {
                    "https, http"
                } else {
                    "https"
                },
                dns,
            }
        })
        .collect()
}

impl Report {
    /// The egress connector's endpoints as text.
    fn egress_table(&self) -> String {
        let mut out = String::from("\negress (everything else is refused):\n");
        if self.egress.is_empty() {
            out.push_str("  no endpoints: the server makes no network requests\n");
        }
        for row in &self.egress {
            let ports: Vec<String> = row.ports.iter().map(u16::to_string).collect();
            out.push_str(&format!(
                "  {}  ports {}  {}  dns: {}\n",
                row.host,
                if ports.is_empty() {
                    "(all blocked)".to_owned()
                } else {
                    ports.join(", ")
                },
                row.schemes,
                row.dns
            ));
        }
        out
    }

    /// The sandbox plan as text.
    fn sandbox_table(&self) -> String {
        let plan = &self.sandbox;
        let mut out = format!(
            "\nsandbox (mode {:?}, seccomp action {:?}, Landlock ABI >= {}):\n",
            plan.mode, plan.seccomp_action, plan.min_landlock_abi
        );
        out.push_str("  filesystem (everything else denied):\n");
        for grant in &plan.fs {
            out.push_str(&format!(
                "    {:?} {}  ({})\n",
                grant.access,
                grant.path.display(),
                grant.reason
            ));
        }
        let ports: Vec<String> = plan.tcp_connect.iter().map(u16::to_string).collect();
        out.push_str(&format!(
            "  tcp connect: {}; tcp bind: none\n",
            if ports.is_empty() {
                "none".to_owned()
            } else {
                ports.join(", ")
            }
        ));
        out.push_str("  scopes: abstract unix sockets and signals confined to the sandbox\n");
        let names: Vec<&str> = plan.syscalls.iter().map(|s| s.name).collect();
        out.push_str(&format!(
            "  seccomp allowlist ({} calls; see --json for each reason): {}\n",
            names.len(),
            names.join(" ")
        ));
        out.push_str(&format!("  never allowed: {}\n", plan.never.join(" ")));
        out
    }

    /// The report as an aligned text table.
    pub fn to_table(&self) -> String {
        let key_width = self.keys.iter().map(|k| k.key.len()).max().unwrap_or(0);
        let value_width = self
            .keys
            .iter()
            .map(|k| k.value.chars().count().min(48))
            .max()
            .unwrap_or(0);
        let mut out = format!("policy: {} (valid)\n\n", self.source);
        out.push_str(&format!(
            "{:key_width$}  {:value_width$}  ENFORCED BY\n",
            "KEY", "VALUE"
        ));
        for k in &self.keys {
            let value: String = if k.value.chars().count() > 48 {
                format!("{}…", k.value.chars().take(47).collect::<String>())
            } else {
                k.value.clone()
            };
            let by = match k.enforcement {
                Enforcement::Server => format!("server: {}", k.how),
                Enforcement::Kernel => format!("kernel: {}", k.how),
                Enforcement::NotYetEnforced => format!("NOT YET ENFORCED: {}", k.how),
            };
            out.push_str(&format!(
                "{:key_width$}  {value:value_width$}  {by}\n",
                k.key
            ));
        }
        out.push_str(&self.egress_table());
        out.push_str(&self.sandbox_table());
        out.push_str("\ntools served:\n");
        for category in &self.tools {
            let names: Vec<&str> = category["tools"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            out.push_str(&format!(
                "  {} {}: {}\n",
                category["category"].as_str().unwrap_or_default(),
                category["version"].as_str().unwrap_or_default(),
                names.join(", ")
            ));
        }
        for warning in &self.warnings {
            out.push_str(&format!("\nwarning: {warning}"));
        }
        if !self.warnings.is_empty() {
            out.push('\n');
        }
        out
    }
}
