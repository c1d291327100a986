//! Host names as the egress rules compare them, and the patterns the policy writes.
//!
//! A name is normalised once (trimmed, lowercase, trailing dot removed, IDNA to ASCII) and then
//! compared exactly; `*.example.com` matches names *below* `example.com` only. Neither the apex,
//! nor lookalikes such as `evil-example.com` or `example.com.evil.net`, nor a bare `*` or
//! `*.com`, can match by accident: the last two are refused when the policy loads.

use std::fmt;
use std::net::IpAddr;

use serde::{Serialize, Serializer};

/// Longest DNS name in its text form.
const MAX_NAME: usize = 253;

/// A host name in canonical form: ASCII (punycode), lowercase, no trailing dot.
///
/// # Errors
/// Empty, too long, an empty or over-long label, or characters no DNS name can hold; the
/// message shows a valid example.
pub fn normalise_name(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let without_dot = trimmed.strip_suffix('.').unwrap_or(trimmed);
    let ascii = idna::domain_to_ascii(without_dot)
        .map_err(|_| format!("{raw:?} is not a valid host name (IDNA conversion failed)"))?;
    let valid = !ascii.is_empty()
        && ascii.len() <= MAX_NAME
        && ascii.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(ascii)
    } else {
        Err(format!(
            "{raw:?} is not a host name; write e.g. \"lite.duckduckgo.com\""
        ))
    }
}

/// A host rule of the policy: one exact name (or IP address), or every name below a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this name, or this IP address in its canonical text.
    Exact(String),
    /// `*.suffix`: any name ending in `.suffix`, never `suffix` itself.
    Below(String),
}

impl HostPattern {
    /// Parses a policy entry.
    ///
    /// # Errors
    /// Not a name, a wildcard anywhere but a leading `*.`, or a wildcard over a single label
    /// (`*`, `*.com`), which would allow far more than anyone means.
    pub fn parse(raw: &str) -> Result<HostPattern, String> {
        let text = raw.trim();
        if let Ok(ip) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(HostPattern::Exact(ip.to_string()));
        }
        // URLs spell IPv4 addresses in odd ways (`127.1`, `0x7f.0.0.1`, `2130706433`) and the
        // URL parser turns them into the plain address; a rule must be compared in that form.
        if !text.contains('*')
            && let Ok(url::Host::Ipv4(ip)) = url::Host::parse(text)
        {
            return Ok(HostPattern::Exact(ip.to_string()));
        }
        if let Some(suffix) = text.strip_prefix("*.") {
            let suffix = normalise_name(suffix).map_err(|_| {
                format!("{raw:?} is not a host pattern; write e.g. \"*.example.com\"")
            })?;
            let last_label = suffix.rsplit('.').next().unwrap_or_default();
            if last_label.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "{raw:?} looks like part of an IP address; a wildcard is for DNS names \
                     (list addresses one by one, or use network.allowed_ranges)"
                ));
            }
            if !suffix.contains('.') {
                return Err(format!(
                    "{raw:?} would allow every name under a top-level domain; name the domain, \
                     e.g. \"*.example.com\""
                ));
            }
            return Ok(HostPattern::Below(suffix));
        }
        if text.contains('*') {
            return Err(format!(
                "{raw:?}: a wildcard is only allowed as a leading \"*.\" (e.g. \"*.example.com\"); \
                 a bare \"*\" would allow every host"
            ));
        }
        normalise_name(text).map(HostPattern::Exact)
    }

    /// Whether the already normalised `name` (or canonical IP text) matches. A wildcard never
    /// matches an IP address.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            HostPattern::Exact(exact) => exact == name,
            HostPattern::Below(suffix) => {
                name.parse::<IpAddr>().is_err()
                    && name
                        .strip_suffix(suffix.as_str())
                        .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
            }
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Below(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

impl Serialize for HostPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised() {
        assert_eq!(normalise_name("Example.COM.").unwrap(), "example.com");
        assert_eq!(normalise_name(" bücher.de ").unwrap(), "xn--bcher-kva.de");
        for bad in ["", ".", "a..b", "a b.com", "exa$mple.com", &"a".repeat(64)] {
            assert!(normalise_name(bad).is_err(), "{bad:?}");
        }
        let long = vec!["abcdefghij"; 26].join(".");
        assert!(normalise_name(&long).is_err(), "over 253 characters");
    }

    #[test]
    fn exact_patterns_match_only_the_name() {
        let rule = HostPattern::parse("Example.com.").unwrap();
        assert!(rule.matches("example.com"));
        for other in [
            "www.example.com",
            "evil-example.com",
            "example.com.evil.net",
            "xexample.com",
            "example.co",
        ] {
            assert!(!rule.matches(other), "{other}");
        }
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let rule = HostPattern::parse("*.example.com").unwrap();
        assert!(rule.matches("api.example.com"));
        assert!(rule.matches("a.b.example.com"));
        for other in [
            "example.com",
            ".example.com",
            "evil-example.com",
            "evilexample.com",
            "example.com.evil.net",
            "api.example.com.evil.net",
        ] {
            assert!(!rule.matches(other), "{other}");
        }
        assert_eq!(rule.to_string(), "*.example.com");
    }

    #[test]
    fn over_broad_or_misplaced_wildcards_are_policy_errors() {
        for bad in [
            "*",
            "*.com",
            "*.",
            "ex*mple.com",
            "api.*.example.com",
            "**.example.com",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(
            HostPattern::parse("*.com")
                .unwrap_err()
                .contains("top-level")
        );
    }

    #[test]
    fn odd_ip_spellings_become_addresses_and_numeric_wildcards_are_refused() {
        for spelling in ["127.1", "0x7f.0.0.1", "2130706433", "127.0.0.1."] {
            assert_eq!(
                HostPattern::parse(spelling).unwrap(),
                HostPattern::Exact("127.0.0.1".into()),
                "{spelling}"
            );
        }
        assert!(
            HostPattern::parse("*.0.0.1")
                .unwrap_err()
                .contains("IP address")
        );
        let rule = HostPattern::Below("0.0.1".into());
        assert!(
            !rule.matches("127.0.0.1"),
            "a wildcard never matches an address"
        );
    }

    #[test]
    fn ip_literals_are_exact_patterns() {
        assert_eq!(
            HostPattern::parse("[::1]").unwrap(),
            HostPattern::Exact("::1".into())
        );
        assert!(
            HostPattern::parse("127.0.0.1")
                .unwrap()
                .matches("127.0.0.1")
        );
    }
}
