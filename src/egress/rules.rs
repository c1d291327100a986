//! The policy's network rules as one value that answers three questions: may this URL be
//! fetched, may this name be resolved, may this address be connected to. Every refusal is a
//! [`Denial`] that names the rule.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use url::{Host, Url};

use super::addresses;
use super::hosts::{HostPattern, normalise_name};
use crate::policy::model::{Endpoint, NetworkPolicy};

/// Why the connector refused; the text names the rule and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial(pub String);

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "denied by policy: {}", self.0)
    }
}

impl std::error::Error for Denial {}

/// The host part of a URL after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A DNS name (ASCII, lowercase).
    Name(String),
    /// An IP literal.
    Ip(IpAddr),
}

/// The validated network rules.
#[derive(Debug, Clone)]
pub struct EgressRules {
    endpoints: Vec<Endpoint>,
    dns_allowlist: Vec<HostPattern>,
    allow_dns: bool,
    allowed_ranges: Vec<IpNet>,
    blocked_ports: BTreeSet<u16>,
}

impl EgressRules {
    /// The rules of `network`.
    pub fn new(network: &NetworkPolicy) -> Self {
        EgressRules {
            endpoints: network.allowed_endpoints.clone(),
            dns_allowlist: network.dns_allowlist.clone(),
            allow_dns: network.allow_dns,
            allowed_ranges: network.allowed_ranges.clone(),
            blocked_ports: network.blocked_ports.clone(),
        }
    }

    /// Checks scheme, host and port of `url` (and its address, for an IP literal).
    ///
    /// # Errors
    /// The first rule the URL breaks.
    pub fn check_url(&self, url: &Url) -> Result<Target, Denial> {
        let scheme = url.scheme();
        if !matches!(scheme, "https" | "http") {
            return Err(Denial(format!(
                "scheme {scheme}: is not allowed; only https (and http where an endpoint sets allow_http)"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Denial(
                "URLs with credentials (user:password@) are not fetched".into(),
            ));
        }
        let target = match url.host() {
            Some(Host::Domain(name)) => Target::Name(normalise_name(name).map_err(Denial)?),
            Some(Host::Ipv4(ip)) => Target::Ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Target::Ip(IpAddr::V6(ip)),
            None => return Err(Denial(format!("{url} has no host"))),
        };
        let host_text = match &target {
            Target::Name(name) => name.clone(),
            Target::Ip(ip) => ip.to_string(),
        };
        let Some(port) = url.port_or_known_default() else {
            return Err(Denial(format!("{url} has no port")));
        };
        if self.blocked_ports.contains(&port) {
            return Err(Denial(format!(
                "port {port} is blocked (network.blocked_ports)"
            )));
        }
        let for_host: Vec<&Endpoint> = self
            .endpoints
            .iter()
            .filter(|e| e.host.matches(&host_text))
            .collect();
        if for_host.is_empty() {
            return Err(Denial(format!(
                "host {host_text} is not in network.allowed_endpoints"
            )));
        }
        let Some(endpoint) = for_host.iter().find(|e| e.ports.contains(&port)) else {
            let ports: BTreeSet<u16> = for_host.iter().flat_map(|e| e.ports.clone()).collect();
            return Err(Denial(format!(
                "port {port} is not allowed for {host_text} (network.allowed_endpoints lists {ports:?})"
            )));
        };
        if scheme == "http" && !endpoint.allow_http {
            return Err(Denial(format!(
                "http://{host_text} is not allowed: the endpoint {} is https only (set allow_http: true on it to allow plain http)",
                endpoint.host
            )));
        }
        if let Target::Ip(ip) = target {
            self.check_address(ip)?;
        }
        Ok(target)
    }

    /// Whether `name` (normalised) may be sent to a name server.
    ///
    /// # Errors
    /// DNS is off, or the name is not in `network.dns_allowlist`.
    pub fn check_dns_name(&self, name: &str) -> Result<(), Denial> {
        if !self.allow_dns {
            return Err(Denial(format!(
                "cannot resolve {name}: DNS is off (network.allow_dns: false)"
            )));
        }
        if self.dns_allowlist.iter().any(|p| p.matches(name)) {
            Ok(())
        } else {
            Err(Denial(format!(
                "{name} is not in network.dns_allowlist, so it was not looked up"
            )))
        }
    }

    /// `network.allowed_ranges`.
    pub fn allowed_ranges(&self) -> &[IpNet] {
        &self.allowed_ranges
    }

    /// Whether `ip` may be connected to.
    ///
    /// # Errors
    /// A special-purpose address outside `network.allowed_ranges`.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), Denial> {
        addresses::check(ip, &self.allowed_ranges)
            .map_err(|reason| Denial(format!("address {reason}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> EgressRules {
        let policy = crate::policy::parse(yaml, &crate::policy::PolicySource::Embedded, &|_| {
            Some("/home/t".into())
        })
        .unwrap();
        EgressRules::new(&policy.network)
    }

    fn denied(rules: &EgressRules, url: &str) -> String {
        rules
            .check_url(&Url::parse(url).unwrap())
            .expect_err(url)
            .to_string()
    }

    const POLICY: &str = "network:
  allowed_ranges: [\"127.0.0.0/8\"]
  allowed_endpoints:
    - {host: api.example.com, ports: [443, 8443]}
    - {host: \"*.cdn.example.com\", ports: [443]}
    - {host: plain.example.com, ports: [80], allow_http: true}
    - {host: 127.0.0.1, ports: [8080]}
    - {host: 10.0.0.5, ports: [443]}
  blocked_ports: [22, 8443]
  allow_dns: true
  dns_allowlist: [api.example.com, \"*.cdn.example.com\"]
";

    #[test]
    fn urls_are_checked_for_scheme_host_and_port() {
        let r = rules(POLICY);
        let ok = |url: &str| r.check_url(&Url::parse(url).unwrap()).expect(url);
        assert_eq!(
            ok("https://API.example.com./x"),
            Target::Name("api.example.com".into())
        );
        ok("https://img.cdn.example.com/a.png");
        ok("http://plain.example.com/");
        ok("https://127.0.0.1:8080/");
        assert!(
            denied(&r, "https://evil.com/")
                .contains("host evil.com is not in network.allowed_endpoints")
        );
        assert!(
            denied(&r, "https://cdn.example.com/").contains("not in network.allowed_endpoints")
        );
        assert!(denied(&r, "https://api.example.com.evil.net/").contains("not in"));
        assert!(denied(&r, "https://api.example.com:444/").contains("port 444 is not allowed"));
        assert!(denied(&r, "https://api.example.com:8443/").contains("port 8443 is blocked"));
        assert!(denied(&r, "https://api.example.com:22/").contains("port 22 is blocked"));
        assert!(denied(&r, "http://api.example.com:443/").contains("https only"));
        assert!(denied(&r, "ftp://api.example.com/").contains("scheme ftp"));
        assert!(denied(&r, "https://u:p@api.example.com/").contains("credentials"));
        // An IP literal must be an endpoint and pass the address rules.
        assert!(denied(&r, "https://127.0.0.2:8080/").contains("not in network.allowed_endpoints"));
        let private = denied(&r, "https://10.0.0.5/");
        assert!(private.contains("10.0.0.5 (private"), "{private}");
    }

    #[test]
    fn only_allowlisted_names_are_resolved() {
        let r = rules(POLICY);
        assert_eq!(r.check_dns_name("api.example.com"), Ok(()));
        assert_eq!(r.check_dns_name("a.cdn.example.com"), Ok(()));
        assert!(r.check_dns_name("plain.example.com").is_err());
        assert!(r.check_dns_name("example.com").is_err());
        let off = rules("network:\n  allow_dns: false\n  dns_allowlist: [a.com]\n");
        assert!(
            off.check_dns_name("a.com")
                .unwrap_err()
                .0
                .contains("allow_dns: false")
        );
    }

    #[test]
    fn an_empty_policy_denies_everything() {
        let r = rules("");
        assert!(denied(&r, "https://lite.duckduckgo.com/lite/").contains("not in"));
        assert!(r.check_dns_name("lite.duckduckgo.com").is_err());
        assert!(r.check_address("127.0.0.1".parse().unwrap()).is_err());
    }
}
