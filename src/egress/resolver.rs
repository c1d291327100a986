//! The allowlist resolver: DNS only for names the policy lists, and only answers whose every
//! address passes the address rules.
//!
//! A name outside `network.dns_allowlist` is refused before any packet is sent. An answer with
//! one refused address is refused whole (a rebinding answer mixes a public and a private
//! address), and the HTTP client connects only to the addresses returned from here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::dns::{LookupError, StubResolver};
use super::hosts::normalise_name;
use super::rules::{Denial, EgressRules};

/// A lookup that failed for a reason other than policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DNS lookup of {name} failed: {detail}")]
pub struct DnsFailure {
    /// The name.
    pub name: String,
    /// What went wrong.
    pub detail: String,
}

/// Why a name did not resolve to usable addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveFailure {
    /// The policy refused the name, a CNAME target, or an address of the answer.
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
        match std::fs::read_to_string("/etc/resolv.conf") {
            Ok(text) => NameServers(parse_resolv_conf(&text)),
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

/// The `nameserver` addresses of a resolv.conf (port 53). Scoped IPv6 addresses
/// (`fe80::1%eth0`) are skipped with a warning: give them in `network.dns_servers` instead.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|address| match address.parse::<IpAddr>() {
            Ok(ip) => Some(SocketAddr::new(ip, 53)),
            Err(_) => {
                tracing::warn!(
                    address,
                    "resolv.conf name server skipped; list it in network.dns_servers"
                );
                None
            }
        })
        .collect()
}

/// The resolver the HTTP client uses.
#[derive(Debug, Clone)]
pub struct AllowlistResolver {
    rules: Arc<EgressRules>,
    stub: StubResolver,
}

impl AllowlistResolver {
    /// A resolver asking `servers`; `/etc/hosts` is never read.
    pub fn new(rules: Arc<EgressRules>, servers: &NameServers) -> Self {
        AllowlistResolver {
            rules,
            stub: StubResolver::new(servers.addresses().to_vec()),
        }
    }

    /// The checked addresses of `name`.
    ///
    /// # Errors
    /// The name (or a CNAME target) is not allowlisted, so it is not queried; DNS failed; or
    /// an address of the answer is refused (the whole answer is then refused).
    pub async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, ResolveFailure> {
        let name = normalise_name(name).map_err(Denial)?;
        let rules = &self.rules;
        let allow = |candidate: &str| rules.check_dns_name(candidate).map_err(|d| d.0);
        let addresses = self.stub.lookup(&name, &allow).await.map_err(|e| match e {
            LookupError::Refused(why) => ResolveFailure::Denied(Denial(why)),
            LookupError::Failed(detail) => ResolveFailure::Dns(DnsFailure {
                name: name.clone(),
                detail,
            }),
        })?;
        for ip in &addresses {
            if let Err(reason) = super::addresses::check(*ip, self.rules.allowed_ranges()) {
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
}

impl reqwest::dns::Resolve for AllowlistResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_name_servers_are_read_in_order() {
        let text = "# generated\nsearch corp.example\nnameserver 127.0.0.53\noptions edns0\n\
                    nameserver ::1\nnameserver fe80::1%eth0\nnameserver\n  nameserver 9.9.9.9\n";
        let servers: Vec<String> = parse_resolv_conf(text)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(servers, ["127.0.0.53:53", "[::1]:53", "9.9.9.9:53"]);
    }
}
