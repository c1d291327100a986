//! The allowlist resolver: DNS only for names the policy lists, and only answers whose every
//! address passes the address rules.
//!
//! A name outside `network.dns_allowlist` is refused before any packet is sent. An answer with
//! one refused address is refused whole (a rebinding answer mixes a public and a private
//! address), and the HTTP client connects only to the addresses returned from here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use super::hosts::normalise_name;
use super::rules::{Denial, EgressRules};

/// How long one name server has to answer one query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// A lookup that failed for a reason other than policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DNS lookup of {name} failed: {detail}")]
pub struct DnsFailure {
    /// The name.
    pub name: String,
    /// What the resolver said.
    pub detail: String,
}

/// Why a name did not resolve to usable addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveFailure {
    /// The policy refused the name or an address of its answer.
    #[error(transparent)]
    Denied(#[from] Denial),
    /// DNS itself failed.
    #[error(transparent)]
    Dns(#[from] DnsFailure),
}

/// Where the name servers come from.
#[derive(Debug, Clone)]
pub struct NameServers(Vec<SocketAddr>);

impl NameServers {
    /// `network.dns_servers` if given, else the `nameserver` lines of `/etc/resolv.conf` (read
    /// now, before the sandbox hides the file).
    pub fn from_policy(servers: &[SocketAddr]) -> Self {
        if !servers.is_empty() {
            return NameServers(servers.to_vec());
        }
        match hickory_resolver::system_conf::read_system_conf() {
            Ok((config, _)) => NameServers(
                config
                    .name_servers
                    .iter()
                    .map(|ns| SocketAddr::new(ns.ip, 53))
                    .collect(),
            ),
            Err(error) => {
                tracing::warn!(%error, "cannot read /etc/resolv.conf; set network.dns_servers");
                NameServers(Vec::new())
            }
        }
    }

    /// The addresses, in order.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.0
    }
}

/// The resolver the HTTP client uses.
pub struct AllowlistResolver {
    rules: Arc<EgressRules>,
    resolver: Option<TokioResolver>,
}

impl std::fmt::Debug for AllowlistResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AllowlistResolver").finish_non_exhaustive()
    }
}

impl AllowlistResolver {
    /// A resolver asking `servers` (UDP, then TCP for truncated answers), never `/etc/hosts`.
    ///
    /// # Errors
    /// The resolver cannot be built.
    pub fn new(rules: Arc<EgressRules>, servers: &NameServers) -> Result<Self, String> {
        if servers.addresses().is_empty() {
            return Ok(AllowlistResolver {
                rules,
                resolver: None,
            });
        }
        let name_servers = servers
            .addresses()
            .iter()
            .map(|addr| {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                server
            })
            .collect();
        let mut options = ResolverOpts::default();
        options.timeout = QUERY_TIMEOUT;
        options.attempts = 2;
        options.use_hosts_file = ResolveHosts::Never;
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.ndots = 0;
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(name_servers),
            TokioRuntimeProvider::default(),
        );
        *builder.options_mut() = options;
        let resolver = builder.build().map_err(|e| e.to_string())?;
        Ok(AllowlistResolver {
            rules,
            resolver: Some(resolver),
        })
    }

    /// The checked addresses of `name`.
    ///
    /// # Errors
    /// The name is not allowlisted (nothing sent), DNS failed, or an address of the answer is
    /// refused (the whole answer is then refused).
    pub async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, ResolveFailure> {
        let name = normalise_name(name).map_err(Denial)?;
        self.rules.check_dns_name(&name)?;
        let Some(resolver) = &self.resolver else {
            return Err(DnsFailure {
                name,
                detail: "no name servers are configured; set network.dns_servers in the policy"
                    .into(),
            }
            .into());
        };
        // The trailing dot makes the name absolute: no search domains are tried.
        let answer = resolver
            .lookup_ip(format!("{name}."))
            .await
            .map_err(|e| DnsFailure {
                name: name.clone(),
                detail: describe(&e),
            })?;
        let addresses: Vec<IpAddr> = answer.iter().collect();
        if addresses.is_empty() {
            return Err(DnsFailure {
                name,
                detail: "the answer has no addresses".into(),
            }
            .into());
        }
        for ip in &addresses {
            if let Err(reason) = super::addresses::check(*ip, self.rules_ranges()) {
                return Err(Denial(format!(
                    "{name} resolved to {reason}; the whole answer ({}) is refused",
                    addresses
                        .iter()
                        .map(IpAddr::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .into());
            }
        }
        Ok(addresses)
    }

    fn rules_ranges(&self) -> &[ipnet::IpNet] {
        self.rules.allowed_ranges()
    }
}

fn describe(error: &NetError) -> String {
    let text = error.to_string();
    if text.contains("no record") || text.contains("NXDomain") || text.contains("NoRecordsFound") {
        format!("the name does not exist or has no address ({text})")
    } else if text.to_lowercase().contains("timed out") || text.to_lowercase().contains("timeout") {
        format!("no answer from the name servers ({text})")
    } else {
        text
    }
}

impl reqwest::dns::Resolve for AllowlistResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = AllowlistResolver {
            rules: Arc::clone(&self.rules),
            resolver: self.resolver.clone(),
        };
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = this.resolve(&name).await.map_err(Box::new)?;
            // The port is set by the client from the URL.
            let addrs: reqwest::dns::Addrs = Box::new(
                addresses
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(addrs)
        })
    }
}
