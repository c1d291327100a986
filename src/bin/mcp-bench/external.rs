//! External plugin call overhead: the same server with one plugin, per call and persistent,
//! for a compiled plugin (the `calculate_hash` example) and interpreted ones (the Python and
//! Node.js examples). Overhead is the plugin call's p50 minus `list_categories`' p50 in the
//! same server, so it is what starting (or reaching) the plugin in its sandbox costs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mcp_secure_server::client::StdioClient;
use serde_json::{Value, json};

use super::{TIMEOUT, millis, percentile};

/// One measured configuration.
struct Case {
    label: &'static str,
    executable: PathBuf,
    tool: &'static str,
    arguments: Value,
    persistent: bool,
    sandbox: &'static str,
}

/// Runs every case with `calls` timed calls each; the report's `external` section.
pub fn measure(calls: usize, server: &Path) -> Result<Value, String> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plugins");
    let hash = server.with_file_name("examples").join("calculate_hash");
    if !hash.exists() {
        return Err(format!(
            "{} is missing; build it with `cargo build --release --example calculate_hash`",
            hash.display()
        ));
    }
    let hash_arguments = json!({"algorithm": "sha256", "input": "hello world"});
    let rust = |persistent, sandbox| Case {
        label: "rust calculate_hash",
        executable: hash.clone(),
        tool: "calculate_hash",
        arguments: hash_arguments.clone(),
        persistent,
        sandbox,
    };
    let python = |persistent| Case {
        label: "python text_stats",
        executable: examples.join("python-text-stats/text_stats.py"),
        tool: "text_stats",
        arguments: json!({"text": "one two three"}),
        persistent,
        sandbox: "enforce",
    };
    let node = |persistent| Case {
        label: "node format_json",
        executable: examples.join("node-format-json/format_json.js"),
        tool: "format_json",
        arguments: json!({"input": "{\"a\":1}"}),
        persistent,
        sandbox: "enforce",
    };
    let cases = [
        rust(false, "enforce"),
        rust(false, "off"),
        rust(true, "enforce"),
        python(false),
        python(true),
        node(false),
        node(true),
    ];
    let dir = std::env::temp_dir().join(format!("mcp-bench-external-{}", std::process::id()));
    let result = cases
        .iter()
        .enumerate()
        .map(|(i, case)| run_case(case, calls, server, &dir.join(i.to_string())))
        .collect::<Result<Vec<_>, _>>();
    let _ = std::fs::remove_dir_all(&dir);
    let rows = result?;
    let p50 = |i: usize| rows[i]["p50_ms"].as_f64().unwrap_or(0.0);
    Ok(json!({
        "calls_each": calls,
        "cases": rows,
        "rust_per_call_sandbox_on_vs_off": (p50(0) / p50(1).max(1e-9) * 1000.0).round() / 1000.0,
    }))
}

fn run_case(case: &Case, calls: usize, server: &Path, dir: &Path) -> Result<Value, String> {
    // The plugin's directory must be its own, not the server's HOME.
    let plugin_dir = dir.join("plugin");
    std::fs::create_dir_all(&plugin_dir).map_err(|e| e.to_string())?;
    let manifest = plugin_dir.join("manifest.yaml");
    // Closed, as the server requires: one property per argument the case sends.
    let properties: serde_json::Map<String, Value> = case
        .arguments
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, _)| (name.clone(), json!({})))
        .collect();
    let schema = json!({"type": "object", "properties": properties});
    let yaml = format!(
        "name: bench\nversion: \"1\"\ntype: external\nexecutable: {}\nmode: {}\ntools:\n  - name: {}\n    description: benchmark\n    input_schema: {schema}\n",
        case.executable.display(),
        if case.persistent {
            "persistent"
        } else {
            "per-call"
        },
        case.tool,
    );
    std::fs::write(&manifest, yaml).map_err(|e| e.to_string())?;
    let policy = dir.join("policy.yaml");
    let yaml = format!(
        "tools:\n  rate_limits: {{default: 100000000}}\nplugins:\n  web_search: {{enabled: false}}\n  bugtracker: {{enabled: false}}\n  external: [\"{}\"]\nsandbox:\n  mode: {}\n",
        manifest.display(),
        case.sandbox
    );
    std::fs::write(&policy, yaml).map_err(|e| e.to_string())?;
    let mut command = Command::new(server);
    command
        .arg("--policy")
        .arg(&policy)
        .env("HOME", dir)
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::null());
    let mut client = StdioClient::spawn(command).map_err(|e| e.to_string())?;
    client.initialize(TIMEOUT).map_err(|e| e.to_string())?;
    let mut id = 0u64;
    let mut time = |client: &mut StdioClient, tool: &str, arguments: &Value, n: usize| {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            id += 1;
            let begin = Instant::now();
            call(client, id, tool, arguments)?;
            times.push(begin.elapsed());
        }
        times.sort();
        Ok::<Vec<Duration>, String>(times)
    };
    // Warm-up: page cache, the persistent process, the interpreter's bytecode cache.
    time(&mut client, case.tool, &case.arguments, (calls / 10).max(3))?;
    let baseline = time(&mut client, "list_categories", &json!({}), calls)?;
    let times = time(&mut client, case.tool, &case.arguments, calls)?;
    client.finish(TIMEOUT).map_err(|e| e.to_string())?;
    let p50 = percentile(&times, 50.0);
    Ok(json!({
        "plugin": case.label,
        "mode": if case.persistent { "persistent" } else { "per-call" },
        "sandbox": case.sandbox,
        "p50_ms": millis(p50),
        "p99_ms": millis(percentile(&times, 99.0)),
        "overhead_p50_ms": millis(p50.saturating_sub(percentile(&baseline, 50.0))),
    }))
}

fn call(client: &mut StdioClient, id: u64, tool: &str, arguments: &Value) -> Result<(), String> {
    let answer = client
        .request(
            json!(id),
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
            TIMEOUT,
        )
        .map_err(|e| e.to_string())?;
    if answer["result"]["isError"] != json!(false) {
        return Err(format!("{tool} failed: {answer}"));
    }
    Ok(())
}

/// The table rows of the `external` section.
pub fn print(report: &Value) {
    let Some(cases) = report["cases"].as_array() else {
        return;
    };
    for case in cases {
        let label = format!(
            "{} {} (sandbox {})",
            case["plugin"].as_str().unwrap_or_default(),
            case["mode"].as_str().unwrap_or_default(),
            case["sandbox"].as_str().unwrap_or_default()
        );
        println!("{:<60} {:>8}", format!("{label} p50 (ms)"), case["p50_ms"]);
        println!(
            "{:<60} {:>8}",
            format!("{label} overhead p50 (ms)"),
            case["overhead_p50_ms"]
        );
    }
    println!(
        "{:<60} {:>8}",
        "external rust per-call sandbox on / off", report["rust_per_call_sandbox_on_vs_off"]
    );
}
