//! The command line: check, call, --version, exit codes, policy compatibility.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::harness::{Sandbox, Server, server_bin};

fn run(sandbox: &Sandbox, args: &[&str]) -> Output {
    sandbox
        .command(&server_bin())
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .expect("run binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_accepts_the_embedded_default() {
    let sandbox = Sandbox::new();
    let out = run(&sandbox, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("policy: <embedded default policy> (valid)"),
        "{stdout}"
    );
    assert!(stdout.contains("limits.max_line_bytes"), "{stdout}");
    assert!(
        stdout.contains(
            "egress (everything else is refused):\n  lite.duckduckgo.com  ports 443  https  dns: yes\n"
        ),
        "the egress table: {stdout}"
    );
    assert!(stdout.contains("tcp connect: 53, 443;"), "{stdout}");
    assert!(!stdout.contains("warning: plugins.web_search"), "{stdout}");
}

#[test]
fn check_warns_when_web_search_cannot_reach_its_endpoint() {
    let sandbox = Sandbox::new();
    let policy = sandbox.policy(
        "network:\n  allowed_endpoints:\n    - {host: \"*.example.com\", ports: [443], allow_http: true}\n    - {host: 10.0.0.1, ports: [8443]}\n  allow_dns: true\n  dns_allowlist: [a.example.com]\n",
    );
    let out = run(&sandbox, &["--policy", policy.to_str().unwrap(), "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("warning: plugins.web_search.endpoint https://lite.duckduckgo.com/lite/: every search will be refused (host lite.duckduckgo.com is not in network.allowed_endpoints)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  *.example.com  ports 443  https, http  dns: per name (dns_allowlist)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  10.0.0.1  ports 8443  https  dns: - (address REFUSED: outside network.allowed_ranges)\n"),
        "{stdout}"
    );
}

#[test]
fn check_json_is_machine_readable() {
    let sandbox = Sandbox::new();
    let out = run(&sandbox, &["check", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        report["policy"]["limits"]["max_line_bytes"],
        4 * 1024 * 1024
    );
    assert_eq!(report["policy"]["tools"]["timeout"], 30.0);
    let keys: Vec<&str> = report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"tools.timeout"));
    assert_eq!(report["tools"][0]["category"], "discovery");
}

#[test]
fn check_rejects_invalid_policies_naming_the_key() {
    let cases = [
        (
            "network:\n  allowed_endpoints:\n    - host: a.com\n      ports: [443, 70000]\n",
            "network.allowed_endpoints[0].ports[1]",
        ),
        (
            "filesystem:\n  allowed_paths: []\n  bogus: true\n",
            "filesystem.bogus",
        ),
        ("tools:\n  timeout: never\n", "tools.timeout"),
        (
            "network:\n  allowed_ranges: [\"300.0.0.0/8\"]\n",
            "network.allowed_ranges[0]",
        ),
        ("limits:\n  max_in_flight: 0\n", "limits.max_in_flight"),
        ("network: [\n", "network"),
        ("surprise: 1\n", "surprise"),
    ];
    for (yaml, key) in cases {
        let sandbox = Sandbox::new();
        let path = sandbox.policy(yaml);
        let out = run(&sandbox, &["check", "--policy", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{yaml}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&format!(": {key}: ")), "{yaml}\n{stderr}");
        assert!(stderr.contains("policy.yaml"), "names the file: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_missing_policy_file_is_a_usage_error_with_a_hint() {
    let sandbox = Sandbox::new();
    let out = run(&sandbox, &["--policy", "/nonexistent/policy.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/policy.yaml") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing but protocol on stdout, even on failure"
    );
}

#[test]
fn the_original_projects_policies_load_unchanged() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in [
        "original-readme-sections.yaml",
        "original-config-policy.yaml",
    ] {
        let sandbox = Sandbox::new();
        let path = fixtures.join(name);
        let out = run(
            &sandbox,
            &["check", "--json", "--policy", path.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let home = sandbox.path().to_str().unwrap();
        assert_eq!(
            report["policy"]["filesystem"]["allowed_paths"][0]["expanded"],
            format!("{home}/projects/**"),
            "{name}"
        );
    }
}

#[test]
fn call_prints_the_categories() {
    let sandbox = Sandbox::new();
    let out = run(&sandbox, &["call", "list_categories"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(printed["categories"][0]["category"], "discovery");
    assert_eq!(printed["categories"][0]["tools"][1], "list_categories");
}

#[test]
fn call_reports_tool_errors_and_bad_input_with_distinct_exit_codes() {
    let sandbox = Sandbox::new();
    let out = run(
        &sandbox,
        &["call", "search_tools", r#"{"detail_level": "bad"}"#],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("arguments.detail_level"),
        "{}",
        text(&out.stdout)
    );

    let out = run(&sandbox, &["call", "search_tools", "not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("JSON_ARGS must be a JSON object"));

    let out = run(&sandbox, &["call", "no_such_tool"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("Unknown tool: no_such_tool"),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        &sandbox,
        &[
            "call",
            "search_tools",
            r#"{"query": "categories"}"#,
            "--raw",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let raw: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(raw["isError"], false);
    assert_eq!(
        raw["structuredContent"]["tools"][0]["name"],
        "list_categories"
    );
}

#[test]
fn version_flag_prints_the_version() {
    let sandbox = Sandbox::new();
    let out = run(&sandbox, &["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("mcp-secure-server {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn serve_creates_the_data_directory_private() {
    let mut server = Server::start();
    server.initialize();
    let dir = server.sandbox.path().join("state/mcp-secure-server");
    let mode = std::fs::metadata(&dir)
        .expect("state dir created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
    assert!(server.finish().success());
}
