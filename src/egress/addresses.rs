//! The address classifier: which IP addresses are not ordinary public unicast, and so are refused
//! unless the policy's `network.allowed_ranges` lists them.
//!
//! Every address the connector might connect to goes through [`check`]: each address of a DNS
//! answer and every IP-literal URL. IPv4 inside IPv6 (mapped, compatible, NAT64, 6to4, Teredo)
//! is refused as such, so an IPv6 spelling cannot smuggle a private IPv4 address past the rules.

use std::net::IpAddr;
use std::sync::LazyLock;

use ipnet::IpNet;

/// Special-purpose ranges, most specific first (the first match names the range).
const SPECIAL: &[(&str, &str)] = &[
    // IPv4
    ("0.0.0.0/8", "unspecified (\"this network\")"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments (reserved)"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast (reserved)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
    // IPv6
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped IPv6"),
    ("::ffff:0:0:0/96", "IPv4-translated IPv6"),
    ("::/96", "IPv4-compatible IPv6"),
    ("64:ff9b::/96", "NAT64"),
    ("64:ff9b:1::/48", "NAT64 (local use)"),
    ("100::/64", "discard-only"),
    ("2001::/32", "Teredo"),
    ("2001:2::/48", "benchmarking"),
    ("2001:db8::/32", "documentation"),
    ("2001::/23", "IETF protocol assignments (reserved)"),
    ("2002::/16", "6to4"),
    ("3fff::/20", "documentation"),
    ("fc00::/7", "unique local (ULA)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
];

static TABLE: LazyLock<Vec<(IpNet, &'static str)>> = LazyLock::new(|| {
    SPECIAL
        .iter()
        .filter_map(|(net, kind)| Some((net.parse().ok()?, *kind)))
        .collect()
});

/// Global unicast IPv6 (RFC 4291); everything outside it and the table is reserved.
static GLOBAL_UNICAST: LazyLock<Option<IpNet>> = LazyLock::new(|| "2000::/3".parse().ok());

/// The special range `ip` is in, as (range, kind); `None` for ordinary public unicast.
pub fn special_range(ip: IpAddr) -> Option<(IpNet, &'static str)> {
    if let Some(found) = TABLE.iter().find(|(net, _)| net.contains(&ip)).copied() {
        return Some(found);
    }
    match (ip, *GLOBAL_UNICAST) {
        (IpAddr::V6(_), Some(global)) if !global.contains(&ip) => {
            Some((IpNet::from(ip), "reserved (outside 2000::/3)"))
        }
        _ => None,
    }
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it: IPv4-mapped and
/// -compatible, NAT64 (well-known prefix), 6to4 and Teredo (the client address).
pub fn embedded_ipv4(ip: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let o = ip.octets();
    let seg = ip.segments();
    let tail = std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if seg[..6] == [0; 6] && seg[6..] != [0, 0] && seg[6..] != [0, 1] {
        return Some(tail);
    }
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0; 4] {
        return Some(tail);
    }
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1 {
        return Some(tail);
    }
    if seg[0] == 0x2002 {
        return Some(std::net::Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    if seg[0] == 0x2001 && seg[1] == 0 {
        return Some(std::net::Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15]));
    }
    None
}

/// Allows `ip` if it is public unicast or inside `allowed_ranges`.
///
/// # Errors
/// The message names the address, its range and the policy key, e.g.
/// `10.1.2.3 (private, 10.0.0.0/8), outside network.allowed_ranges`.
pub fn check(ip: IpAddr, allowed_ranges: &[IpNet]) -> Result<(), String> {
    if allowed_ranges.iter().any(|net| net.contains(&ip)) {
        // An allowed translation range (NAT64 on a DNS64 network, say) must not let in the
        // private IPv4 address it carries: that one is checked on its own.
        if let IpAddr::V6(v6) = ip
            && let Some(v4) = embedded_ipv4(v6)
        {
            return check(IpAddr::V4(v4), allowed_ranges)
                .map_err(|reason| format!("{ip} carries {reason}"));
        }
        return Ok(());
    }
    match special_range(ip) {
        None => Ok(()),
        Some((net, kind)) => Err(format!(
            "{ip} ({kind}, {net}), outside network.allowed_ranges"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_entry_parses() {
        assert_eq!(TABLE.len(), SPECIAL.len());
    }

    #[test]
    fn each_special_range_is_refused_by_default() {
        let cases = [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("10.1.2.3", "private"),
            ("100.64.0.1", "CGNAT"),
            ("100.127.255.254", "CGNAT"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.255", "loopback"),
            ("169.254.169.254", "link-local"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.8", "IETF"),
            ("192.0.2.1", "documentation"),
            ("192.88.99.1", "6to4 relay"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.251", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:10.0.0.1", "IPv4-mapped"),
            ("::ffff:8.8.8.8", "IPv4-mapped"),
            ("::10.0.0.1", "IPv4-compatible"),
            ("64:ff9b::a00:1", "NAT64"),
            ("64:ff9b:1::1", "NAT64"),
            ("100::1", "discard"),
            ("2001:0:4136:e378::1", "Teredo"),
            ("2001:2::1", "benchmarking"),
            ("2001:db8::1", "documentation"),
            ("2001:10::1", "IETF"),
            ("2002:a00:1::1", "6to4"),
            ("3fff::1", "documentation"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
        ];
        for (text, kind) in cases {
            let ip: IpAddr = text.parse().unwrap();
            let error = check(ip, &[]).expect_err(text);
            assert!(error.contains(kind), "{text}: {error}");
            assert!(error.contains("outside network.allowed_ranges"), "{error}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for text in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450::1",
            "2003::1",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(check(ip, &[]), Ok(()), "{text}");
        }
    }

    #[test]
    fn allowed_ranges_open_exactly_what_they_list() {
        let allowed: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
        assert_eq!(check("127.0.0.2".parse().unwrap(), &allowed), Ok(()));
        assert_eq!(check("fd00::5".parse().unwrap(), &allowed), Ok(()));
        assert!(check("10.0.0.1".parse().unwrap(), &allowed).is_err());
        // The mapped spelling of an allowed IPv4 address is still refused.
        assert!(check("::ffff:127.0.0.1".parse().unwrap(), &allowed).is_err());
        assert!(check("fc00::1".parse().unwrap(), &allowed).is_err());
    }

    #[test]
    fn an_allowed_translation_range_still_checks_the_ipv4_inside() {
        let nat64: Vec<IpNet> = vec!["64:ff9b::/96".parse().unwrap()];
        assert_eq!(
            check("64:ff9b::808:808".parse().unwrap(), &nat64),
            Ok(()),
            "8.8.8.8"
        );
        let metadata = check("64:ff9b::a9fe:a9fe".parse().unwrap(), &nat64).unwrap_err();
        assert!(metadata.contains("169.254.169.254"), "{metadata}");
        let six_to_four: Vec<IpNet> = vec!["2002::/16".parse().unwrap()];
        assert!(
            check("2002:a00:1::1".parse().unwrap(), &six_to_four).is_err(),
            "10.0.0.1"
        );
        let teredo: Vec<IpNet> = vec!["2001::/32".parse().unwrap()];
        // Teredo's client address is stored inverted: !7f000001 = 80ffff fe.
        assert!(
            check("2001:0:1:2::80ff:fffe".parse().unwrap(), &teredo).is_err(),
            "127.0.0.1"
        );
        assert_eq!(embedded_ipv4("2001:db8::1".parse().unwrap()), None);
    }

    #[test]
    fn ipv6_outside_global_unicast_is_reserved() {
        for text in ["4000::1", "::ffff:0:a00:1", "1::"] {
            assert!(check(text.parse().unwrap(), &[]).is_err(), "{text}");
        }
    }
}
