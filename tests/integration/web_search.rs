//! `web_search` and the egress connector through the real binary (sandbox on, seccomp kill
//! mode), against a DNS server and an HTTPS server of the test's own on 127.0.0.1. No test
//! sends a packet outside 127.0.0.0/8: names that resolve elsewhere are refused before any
//! connection, which the logs of both servers show.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Server, server_bin};
use crate::netfixtures::{DnsServer, Pki, Reply, TlsServer};

/// DNS names the tests use, and what the test DNS server answers for them.
const RECORDS: &[(&str, &[&str])] = &[
    ("search.test", &["127.0.0.1"]),
    ("unlisted.test", &["127.0.0.1"]),
    ("evil.test", &["127.0.0.1"]),
    ("private.test", &["10.1.2.3"]),
    ("mixed.test", &["127.0.0.1", "10.1.2.3"]),
    // An alias to a name outside the allowlist (DNS exfiltration), and one to an allowed name.
    ("leaky.test", &["cname:exfil-secret.outside.example"]),
    ("exfil-secret.outside.example", &["127.0.0.1"]),
    ("alias.test", &["cname:search.test"]),
];

const FIXTURE: &str = include_str!("../fixtures/ddg-lite-results.html");

/// The DNS server, the HTTPS server and the CA they share.
struct Net {
    dns: DnsServer,
    https: TlsServer,
    pki: Pki,
}

fn routes() -> HashMap<String, Reply> {
    let mut routes = HashMap::new();
    routes.insert("/lite/".to_owned(), Reply::ok(FIXTURE));
    routes.insert(
        "/none/".to_owned(),
        Reply::ok(
            "<html><body><form action=\"/lite/\"><input name=\"q\"></form>\
             <table><tr><td>No results.</td></tr></table></body></html>",
        ),
    );
    routes.insert(
        "/nginx/".to_owned(),
        Reply::ok("<html><body><h1>Welcome to nginx!</h1></body></html>"),
    );
    routes.insert("/busy/".to_owned(), Reply::status(429));
    routes.insert("/broken/".to_owned(), Reply::status(500));
    routes.insert("/big/".to_owned(), Reply::ok(vec![b'x'; 200 * 1024]));
    // Redirects that each break one rule, and one that is fine.
    routes.insert("/ok/".to_owned(), Reply::redirect("/lite/"));
    routes.insert("/loop/".to_owned(), Reply::redirect("/loop/"));
    routes.insert(
        "/to-host/".to_owned(),
        Reply::redirect("https://evil.test:{port}/lite/"),
    );
    routes.insert(
        "/to-port/".to_owned(),
        Reply::redirect("https://search.test:22/lite/"),
    );
    routes.insert(
        "/to-ip/".to_owned(),
        Reply::redirect("https://127.0.0.1:{port}/lite/"),
    );
    routes.insert(
        "/to-http/".to_owned(),
        Reply::redirect("http://search.test:{port}/lite/"),
    );
    routes.insert(
        "/slow/".to_owned(),
        Reply {
            delay: Duration::from_secs(4),
            ..Reply::ok(FIXTURE)
        },
    );
    routes
}

impl Net {
    fn start() -> Self {
        let dns = DnsServer::start(RECORDS);
        let pki = Pki::new(&[
            "search.test",
            "unlisted.test",
            "evil.test",
            "mixed.test",
            "alias.test",
        ]);
        let https = TlsServer::start(&pki, routes());
        Net { dns, https, pki }
    }

    /// A policy whose web_search endpoint is `endpoint` (`{port}` is replaced); `extra` lines go
    /// into its `tools:` section.
    fn policy(&self, dir: &std::path::Path, endpoint: &str, extra: &str) -> String {
        let port = self.https.port;
        format!(
            "network:
  allowed_ranges: [\"127.0.0.0/8\"]
  allowed_endpoints:
    - {{host: search.test, ports: [{port}]}}
    - {{host: unlisted.test, ports: [{port}]}}
    - {{host: private.test, ports: [{port}]}}
    - {{host: mixed.test, ports: [{port}]}}
    - {{host: nxdomain.test, ports: [{port}]}}
    - {{host: leaky.test, ports: [{port}]}}
    - {{host: alias.test, ports: [{port}]}}
  blocked_ports: [22]
  allow_dns: true
  dns_allowlist: [search.test, evil.test, private.test, mixed.test, nxdomain.test, leaky.test, alias.test]
  dns_servers: [\"{dns}\"]
  ca_certificates: [\"{ca}\"]
limits:
  max_response_bytes: 65536
tools:
  rate_limits: {{default: 100000}}
{extra}plugins:
  web_search:
    endpoint: \"{endpoint}\"
",
            dns = self.dns.addr,
            ca = self.pki.write_ca(dir).display(),
            endpoint = endpoint.replace("{port}", &port.to_string()),
        )
    }

    /// Starts the server with `endpoint` and returns the web_search answer for `arguments`.
    fn search(&self, endpoint: &str, extra: &str, arguments: Value) -> Value {
        self.search_with_env(endpoint, extra, arguments, &[])
    }

    fn search_with_env(
        &self,
        endpoint: &str,
        extra: &str,
        arguments: Value,
        env: &[(&str, &str)],
    ) -> Value {
        let ca_dir = tempfile::tempdir().unwrap();
        let policy = self.policy(ca_dir.path(), endpoint, extra);
        let mut server = Server::start_with_env(&server_bin(), &policy, env);
        server.initialize();
        let answer = server.call_tool(json!(1), "web_search", arguments);
        server.assert_alive();
        assert!(server.finish().success());
        answer["result"].clone()
    }
}

fn error_text(result: &Value) -> String {
    assert_eq!(result["isError"], true, "{result}");
    result["content"][0]["text"].as_str().unwrap().to_owned()
}

#[test]
fn an_allowlisted_search_returns_parsed_results_and_ignores_proxy_variables() {
    let net = Net::start();
    // A proxy that does not exist: if the connector used it, the search would fail.
    let proxies = [
        ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ("https_proxy", "http://127.0.0.1:9"),
        ("ALL_PROXY", "http://127.0.0.1:9"),
        ("HTTP_PROXY", "http://127.0.0.1:9"),
    ];
    let result = net.search_with_env(
        "https://search.test:{port}/lite/",
        "",
        json!({"query": "async rust tutorial", "max_results": 3}),
        &proxies,
    );
    assert_eq!(result["isError"], false, "{result}");
    let structured = &result["structuredContent"];
    assert_eq!(structured["query"], "async rust tutorial");
    let results = structured["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "max_results");
    assert_eq!(
        results[0],
        json!({
            "title": "Tokio tutorial: async Rust, step by step",
            "url": "https://tokio.example/tutorial/?lang=en&page=1",
            "snippet": "Learn async Rust with Tokio: tasks, channels & I/O.",
            "domain": "tokio.example/tutorial/"
        })
    );
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "Search results for: async rust tutorial\n\n1. Tokio tutorial: async Rust, step by step\n   URL: https://tokio.example/tutorial/?lang=en&page=1\n   Learn async Rust"
        ),
        "{text}"
    );
    assert_eq!(
        net.https.requests(),
        ["/lite/?q=async+rust+tutorial&kl=us-en"]
    );
    assert!(net.dns.queries().iter().all(|q| q == "search.test"));
    assert!(!net.dns.queries().is_empty());
}

#[test]
fn a_name_outside_the_dns_allowlist_never_reaches_the_dns_server() {
    let net = Net::start();
    let result = net.search(
        "https://unlisted.test:{port}/lite/",
        "",
        json!({"query": "x"}),
    );
    let text = error_text(&result);
    assert!(
        text.contains("denied by policy")
            && text.contains("unlisted.test is not in network.dns_allowlist"),
        "{text}"
    );
    assert!(net.dns.queries().is_empty(), "{:?}", net.dns.queries());
    assert!(net.https.requests().is_empty());
}

#[test]
fn cname_targets_are_checked_before_they_are_queried() {
    let net = Net::start();
    let text =
        error_text(&net.search("https://leaky.test:{port}/lite/", "", json!({"query": "x"})));
    assert!(
        text.contains("leaky.test is an alias (CNAME) of exfil-secret.outside.example")
            && text.contains("not in network.dns_allowlist"),
        "{text}"
    );
    assert!(
        !net.dns.queries().iter().any(|q| q.contains("exfil")),
        "the alias target was never queried: {:?}",
        net.dns.queries()
    );
    // An alias to an allowlisted name is followed.
    let ok = net.search("https://alias.test:{port}/lite/", "", json!({"query": "x"}));
    assert_eq!(ok["isError"], false, "{ok}");
    assert!(net.dns.queries().iter().any(|q| q == "search.test"));
}

#[test]
fn private_and_mixed_answers_are_refused_before_any_connection() {
    let net = Net::start();
    for (name, expected) in [
        ("private.test", "private.test resolved to 10.1.2.3 (private"),
        ("mixed.test", "mixed.test resolved to 10.1.2.3 (private"),
    ] {
        let endpoint = format!("https://{name}:{{port}}/lite/");
        let text = error_text(&net.search(&endpoint, "", json!({"query": "x"})));
        assert!(text.contains(expected), "{text}");
        assert!(text.contains("outside network.allowed_ranges"), "{text}");
    }
    let text =
        error_text(&net.search("https://mixed.test:{port}/lite/", "", json!({"query": "x"})));
    assert!(
        text.contains("the whole answer (127.0.0.1, 10.1.2.3) is refused"),
        "{text}"
    );
    assert!(net.https.requests().is_empty(), "nothing was fetched");
}

#[test]
fn every_redirect_hop_is_checked_again() {
    let net = Net::start();
    let ok = net.search("https://search.test:{port}/ok/", "", json!({"query": "x"}));
    assert_eq!(
        ok["isError"], false,
        "an allowed redirect is followed: {ok}"
    );
    let cases = [
        (
            "/to-host/",
            "redirect refused: host evil.test is not in network.allowed_endpoints",
        ),
        ("/to-port/", "redirect refused: port 22 is blocked"),
        (
            "/to-ip/",
            "redirect refused: host 127.0.0.1 is not in network.allowed_endpoints",
        ),
        (
            "/to-http/",
            "redirect refused: http://search.test is not allowed",
        ),
    ];
    for (path, expected) in cases {
        let endpoint = format!("https://search.test:{{port}}{path}");
        let text = error_text(&net.search(&endpoint, "", json!({"query": "x"})));
        assert!(text.contains(expected), "{path}: {text}");
    }
    let text = error_text(&net.search(
        "https://search.test:{port}/loop/",
        "",
        json!({"query": "x"}),
    ));
    assert!(
        text.contains("more than 5 redirects (network.max_redirects)"),
        "{text}"
    );
    // The refused hops were never fetched, and evil.test was never looked up.
    let requests = net.https.requests();
    assert_eq!(
        requests.iter().filter(|r| r.starts_with("/lite/")).count(),
        1,
        "{requests:?}"
    );
    assert!(!net.dns.queries().iter().any(|q| q == "evil.test"));
}

#[test]
fn a_slow_server_is_cut_off_at_the_deadline() {
    let net = Net::start();
    let result = net.search(
        "https://search.test:{port}/slow/",
        "  timeouts: {web_search: 1.5}\n",
        json!({"query": "x"}),
    );
    let text = error_text(&result);
    assert!(
        text.contains("search failed: the request to search.test timed out"),
        "web_search's own timeout, before the call's deadline: {text}"
    );
}

#[test]
fn oversized_bodies_statuses_rate_limits_and_foreign_pages_are_distinct_errors() {
    let net = Net::start();
    let cases = [
        (
            "/big/",
            "larger than 65536 bytes (limits.max_response_bytes)",
        ),
        ("/broken/", "answered HTTP 500"),
        ("/busy/", "rate limiting this server (HTTP 429"),
        ("/nginx/", "not recognised as DuckDuckGo Lite results"),
        ("/missing/", "answered HTTP 404"),
    ];
    for (path, expected) in cases {
        let endpoint = format!("https://search.test:{{port}}{path}");
        let text = error_text(&net.search(&endpoint, "", json!({"query": "x"})));
        assert!(text.contains(expected), "{path}: {text}");
    }
    let none = net.search(
        "https://search.test:{port}/none/",
        "",
        json!({"query": "zzqx"}),
    );
    assert_eq!(none["isError"], false, "{none}");
    assert_eq!(none["content"][0]["text"], "No results found for: zzqx");
    assert_eq!(none["structuredContent"]["results"], json!([]));
    // An allowlisted name the DNS server does not know.
    let text = error_text(&net.search(
        "https://nxdomain.test:{port}/lite/",
        "",
        json!({"query": "x"}),
    ));
    assert!(
        text.contains("DNS lookup of nxdomain.test failed"),
        "{text}"
    );
}
