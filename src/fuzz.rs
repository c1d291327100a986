//! Properties the fuzz targets check, one function per target (`fuzz/fuzz_targets/`).
//!
//! They live in the library so that the corpora replay as ordinary tests on stable
//! (`tests/integration/fuzz_corpus.rs`): a crash found once stays fixed. Each function takes
//! arbitrary bytes and panics when a property is broken, which is how a fuzzer learns of it.

// Panicking on a broken property is the whole point of these functions.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

mod seccomp_filter;

use crate::egress::addresses;
use crate::egress::hosts::{HostPattern, normalise_name};
use crate::rpc::framing::{Frame, LineFramer};
use crate::rpc::message::{Message, error_line};
use crate::rpc::parse::parse;

/// The JSON-RPC parser: a parsed message serialises to a line that parses back to the same
/// message, and every refusal has a JSON-RPC error code and produces a valid error line.
pub fn rpc_parse(data: &[u8]) {
    match parse(data) {
        Ok(message) => {
            let line = message.to_line();
            assert_eq!(line.last(), Some(&b'\n'), "a line ends with a newline");
            assert!(!line[..line.len() - 1].contains(&b'\n'), "one line only");
            let again = parse(&line[..line.len() - 1])
                .unwrap_or_else(|f| panic!("own output refused: {:?}", f.error));
            assert_eq!(again, message, "parse(serialize(m)) == m");
        }
        Err(failure) => {
            assert!(
                [-32700, -32600].contains(&failure.error.code),
                "unexpected code {}",
                failure.error.code
            );
            let line = error_line(failure.id.as_ref(), &failure.error);
            match parse(&line[..line.len() - 1]) {
                Ok(Message::Response(response)) => {
                    assert!(response.outcome.is_err(), "an error line carries an error")
                }
                Ok(other) => panic!("an error line parsed as {other:?}"),
                // An error without an id (`"id": null`) is not a message we accept as input.
                Err(_) => assert!(failure.id.is_none(), "an error line with an id must parse"),
            }
        }
    }
}

/// The line framer: any chunking gives the frames of a simple reference split, and no more
/// than the limit is ever buffered.
pub fn line_framing(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let max = usize::from(control % 64) + 1;
    let chunk = usize::from(control / 64) * 7 + 1;
    let mut framer = LineFramer::new(max);
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk) {
        framer.push(piece, &mut frames);
        assert!(framer.buffered() <= max, "buffered more than the limit");
    }
    framer.finish(&mut frames);

    let mut expected = Vec::new();
    for segment in stream.split(|b| *b == b'\n') {
        if segment.len() > max {
            expected.push(Frame::Oversized { len: segment.len() });
            continue;
        }
        let line = segment.strip_suffix(b"\r").unwrap_or(segment);
        if !line.iter().all(u8::is_ascii_whitespace) {
            expected.push(Frame::Line(line.to_vec()));
        }
    }
    assert_eq!(frames, expected);
}

/// The policy loader: no input panics; a valid policy gives a sandbox plan whose grants are
/// absolute paths, and serialises to JSON (as `check --json` does).
pub fn policy_load(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| match name {
        "HOME" => Some("/home/fuzz".to_owned()),
        "XDG_STATE_HOME" => Some("/home/fuzz/.state".to_owned()),
        _ => None,
    };
    let source = crate::policy::PolicySource::Embedded;
    let Ok(policy) = crate::policy::parse(text, &source, &env) else {
        return;
    };
    let plan = crate::sandbox::plan(&policy, &|_| crate::sandbox::PathKind::Directory);
    for grant in &plan.fs {
        assert!(grant.path.is_absolute(), "{grant:?}");
        assert_ne!(grant.path, Path::new("/"), "the root is never granted");
    }
    assert!(
        plan.tcp_connect
            .iter()
            .all(|port| !policy.network.blocked_ports.contains(port)),
        "a blocked port is granted"
    );
    serde_json::to_string(&policy).expect("a policy serialises");
}

/// The DuckDuckGo Lite page parser: no input panics, and results are clean: http(s) URLs that
/// are not DuckDuckGo's own redirects, and texts without stray whitespace.
pub fn search_page(data: &[u8]) {
    let html = String::from_utf8_lossy(data);
    if let Ok(crate::plugins::web_search::parse::Parsed::Results(results)) =
        crate::plugins::web_search::parse::parse(&html)
    {
        assert!(!results.is_empty(), "Results is never empty");
        for result in results {
            let url = url::Url::parse(&result.url).expect("result URLs parse");
            assert!(matches!(url.scheme(), "http" | "https"), "{url}");
            assert!(
                !(url.host_str() == Some("duckduckgo.com") && url.path().starts_with("/l/")),
                "a redirect link was not unwrapped: {url}"
            );
            for text in [&result.title, &result.snippet, &result.domain] {
                assert_eq!(text.trim(), text, "untrimmed text {text:?}");
                assert!(!text.contains("  "), "doubled space in {text:?}");
            }
        }
    }
}

/// Path rules: whatever the input, an allowed path lies inside an allowed root and outside
/// every denied pattern.
pub fn path_rules(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let yaml = "filesystem:\n  allowed_paths: [\"/srv/fuzz/allowed/**\"]\n  denied_paths: [\"**/.ssh/**\", \"**/*.pem\"]\n";
    let env = |_: &str| Some("/home/fuzz".to_owned());
    let policy = crate::policy::parse(yaml, &crate::policy::PolicySource::Embedded, &env).unwrap();
    let rules = crate::guard::PathRules::new(
        &policy.filesystem,
        Some("/home/fuzz".into()),
        "/srv/fuzz/allowed/work".into(),
    );
    if let Ok(resolved) = rules.check(raw) {
        let path = Path::new(&resolved);
        assert!(
            path.starts_with("/srv/fuzz/allowed"),
            "{raw:?} resolved to {resolved:?}, outside the allowed root"
        );
        let lower = resolved.to_lowercase();
        assert!(
            !lower.contains("/.ssh/") && !lower.ends_with("/.ssh"),
            "{resolved:?}"
        );
        assert!(!lower.ends_with(".pem"), "{resolved:?}");
        assert!(
            path.components()
                .all(|c| !matches!(c, std::path::Component::ParentDir)),
            "{resolved:?} still has .."
        );
    }
}

/// Host patterns and the address classifier: a match is always the exact name or a name below
/// the pattern's domain; normalising is idempotent; an address passes with no allowed ranges
/// only when it is in no special range, and IPv4-mapped addresses never pass.
pub fn host_rules(data: &[u8]) {
    if data.len() >= 16 {
        let mut v6 = [0u8; 16];
        v6.copy_from_slice(&data[..16]);
        let v6 = Ipv6Addr::from(v6);
        let v4 = Ipv4Addr::new(data[0], data[1], data[2], data[3]);
        for ip in [IpAddr::V6(v6), IpAddr::V4(v4)] {
            let passed = addresses::check(ip, &[]).is_ok();
            assert_eq!(passed, addresses::special_range(ip).is_none(), "{ip}");
        }
        if v6.to_ipv4_mapped().is_some() {
            assert!(addresses::check(IpAddr::V6(v6), &[]).is_err(), "{v6}");
        }
    }
    let text = String::from_utf8_lossy(data);
    let (pattern, name) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(normal) = normalise_name(name) {
        assert_eq!(
            normalise_name(&normal).as_deref(),
            Ok(normal.as_str()),
            "normalising is idempotent"
        );
        if let Ok(rule) = HostPattern::parse(pattern)
            && rule.matches(&normal)
        {
            match &rule {
                HostPattern::Exact(exact) => assert_eq!(exact, &normal),
                HostPattern::Below(domain) => {
                    assert!(normal.ends_with(&format!(".{domain}")), "{normal} {domain}");
                    assert!(normal.len() > domain.len() + 1);
                }
            }
        }
    }
    if let Ok(HostPattern::Below(domain)) = HostPattern::parse(pattern) {
        assert!(
            domain.contains('.'),
            "*.{domain} covers a whole top-level domain"
        );
        assert!(
            !HostPattern::Below(domain.clone()).matches(&domain),
            "the apex never matches"
        );
    }
}

/// The seccomp emitter: a table built from the input answers every call through its emitted
/// program exactly as the table read directly does, and the program stays compact.
pub fn seccomp_filter(data: &[u8]) {
    seccomp_filter::seccomp_filter(data);
}

/// A property check over arbitrary bytes.
pub type Check = fn(&[u8]);

/// An external plugin's answer (untrusted output): an accepted answer has at least one text
/// block, and its MCP form parses back to the same result; a refusal says what was wrong.
pub fn plugin_response(data: &[u8]) {
    use crate::plugins::external::response;
    match response::parse(data) {
        Ok(result) => {
            assert!(!result.content.is_empty(), "at least one block");
            let again = response::parse(result.to_mcp().to_string().as_bytes())
                .unwrap_or_else(|e| panic!("own form refused: {e}"));
            assert_eq!(again, result, "parse(to_mcp(r)) == r");
        }
        Err(problem) => assert!(!problem.is_empty(), "a refusal says why"),
    }
}

/// Every target, by the name of its `fuzz/fuzz_targets/*.rs` file and corpus directory.
pub const TARGETS: &[(&str, Check)] = &[
    ("rpc_parse", rpc_parse),
    ("line_framing", line_framing),
    ("policy_load", policy_load),
    ("search_page", search_page),
    ("path_rules", path_rules),
    ("host_rules", host_rules),
    ("plugin_response", plugin_response),
    ("seccomp_filter", seccomp_filter),
];
