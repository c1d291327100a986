//! `mcp-bench`: measures an MCP stdio server through its pipes and prints the numbers.
//!
//! ```text
//! cargo run --release --bin mcp-bench                      # our server, next to this binary
//! cargo run --release --bin mcp-bench -- --json            # the same, as JSON
//! cargo run --release --bin mcp-bench -- -- node other-server.js   # any other stdio server
//! ```
//!
//! Measured: spawn-to-`initialize`-answer latency, `tools/call` round trips (sequential),
//! pipelined throughput, the server's peak RSS, (`--bugs`) the bug tracker: sequential
//! `add_bug` rate and latency, and filtered `list_bugs` on a large project, and (`--external`)
//! external plugin call overhead. Numbers, not
//! pass/fail: targets live in the README, not in tests.

// A reporting tool: its output is for people and scripts, and stdout is the place for it.
#![allow(clippy::print_stdout)]

mod external;

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use mcp_secure_server::client::StdioClient;
use serde_json::{Value, json};

/// Generous per-answer timeout: a stuck server ends the run instead of hanging it.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Benchmark an MCP stdio server.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Server start-ups to time.
    #[arg(long, default_value_t = 50)]
    spawns: usize,
    /// Sequential tool calls to time (after a warm-up of the same size / 10).
    #[arg(long, default_value_t = 5000)]
    calls: usize,
    /// Tool calls sent pipelined, in windows of `--window`.
    #[arg(long, default_value_t = 20000)]
    pipelined: usize,
    /// Requests in flight at once in the pipelined run.
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// Tool to call (no arguments).
    #[arg(long, default_value = "list_categories")]
    tool: String,
    /// Pin this process and the server to one CPU. On VMs a cross-CPU wake-up can cost more
    /// than the server's own work; pinning measures the server rather than the hypervisor.
    #[arg(long, value_name = "CPU")]
    cpu: Option<usize>,
    /// Also measure our server with `sandbox.mode: off`, interleaved with the default policy in
    /// the same run, and report the round-trip ratio (ignored with a custom server command).
    #[arg(long)]
    compare_sandbox: bool,
    /// Bug tracker run: time this many sequential `add_bug` calls, then fill the project to
    /// `--bug-project-size` bugs and time filtered `list_bugs` (0 skips it).
    #[arg(long, default_value_t = 2000)]
    bugs: usize,
    /// Bugs in the project that `list_bugs` is timed on.
    #[arg(long, default_value_t = 10_000)]
    bug_project_size: usize,
    /// External plugins: time this many calls per plugin and mode (Rust, Python and Node.js
    /// examples, per call and persistent; needs `cargo build --release --example
    /// calculate_hash`; 0 skips it).
    #[arg(long, default_value_t = 200)]
    external: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Server command line (default: mcp-secure-server next to this binary).
    #[arg(last = true)]
    server: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(report) => {
            if args.json {
                println!("{report:#}");
            } else {
                print_table(&report);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("mcp-bench: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn server_command(args: &Args) -> Result<Command, String> {
    let (program, rest) = match args.server.split_first() {
        Some((program, rest)) => (PathBuf::from(program), rest.to_vec()),
        None => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            (exe.with_file_name("mcp-secure-server"), Vec::new())
        }
    };
    let mut command = Command::new(program);
    command
        .args(rest)
        .stderr(Stdio::null())
        .env("RUST_LOG", "warn");
    Ok(command)
}

fn run(args: &Args) -> Result<Value, String> {
    if let Some(cpu) = args.cpu {
        // Inherited by every server this process starts.
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set)
            .map_err(|e| format!("pinning to CPU {cpu}: {e}"))?;
    }
    let spawn = spawn_latencies(args)?;
    let mut client = StdioClient::spawn(server_command(args)?).map_err(|e| e.to_string())?;
    client.initialize(TIMEOUT).map_err(|e| e.to_string())?;
    let pid = client.pid();
    // Idle: initialised, no call served yet.
    let idle_rss_kib = status_kib(pid, "VmRSS:");

    let round_trips = timed(args.calls, |id| call_tool(&mut client, &args.tool, id))?;

    let start = Instant::now();
    let mut sent = 0usize;
    while sent < args.pipelined {
        let batch = args.window.min(args.pipelined - sent);
        let mut bytes = Vec::new();
        for i in 0..batch {
            let request = json!({"jsonrpc": "2.0", "id": 10_000_000 + sent + i, "method": "tools/call",
                                 "params": {"name": args.tool, "arguments": {}}});
            bytes.extend(request.to_string().into_bytes());
            bytes.push(b'\n');
        }
        client.send_raw(&bytes).map_err(|e| e.to_string())?;
        for _ in 0..batch {
            client.recv(TIMEOUT).map_err(|e| e.to_string())?;
        }
        sent += batch;
    }
    let pipelined_secs = start.elapsed().as_secs_f64();
    let peak_rss_kib = status_kib(pid, "VmHWM:");
    client.finish(TIMEOUT).map_err(|e| e.to_string())?;

    let floor = pipe_floor(args.calls)?;
    let sandbox_cost = if args.compare_sandbox && args.server.is_empty() {
        Some(compare_sandbox(args)?)
    } else {
        None
    };
    let bugs = if args.bugs > 0 {
        Some(bug_tracker(args)?)
    } else {
        None
    };
    let external = if args.external > 0 && args.server.is_empty() {
        let server = PathBuf::from(server_command(args)?.get_program());
        Some(external::measure(args.external, &server)?)
    } else {
        None
    };
    Ok(json!({
        "sandbox_on_vs_off": sandbox_cost,
        "bugtracker": bugs,
        "external": external,
        "server": if args.server.is_empty() { "mcp-secure-server".to_owned() } else { args.server.join(" ") },
        "pinned_cpu": args.cpu,
        "spawn_to_initialize_ms": {
            "runs": spawn.len(),
            "p50": millis(percentile(&spawn, 50.0)),
            "p90": millis(percentile(&spawn, 90.0)),
        },
        "tools_call_round_trip_us": {
            "tool": args.tool,
            "calls": round_trips.len(),
            "p50": micros(percentile(&round_trips, 50.0)),
            "p99": micros(percentile(&round_trips, 99.0)),
        },
        "pipe_echo_round_trip_us": {
            "program": "cat",
            "p50": micros(percentile(&floor, 50.0)),
            "p99": micros(percentile(&floor, 99.0)),
        },
        "pipelined": {
            "calls": args.pipelined,
            "window": args.window,
            "calls_per_second": (args.pipelined as f64 / pipelined_secs).round(),
        },
        "idle_rss_mib": idle_rss_kib.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0),
        "peak_rss_mib": peak_rss_kib.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0),
    }))
}

/// Round trips of a line through `cat`: two processes passing a line back and forth over
/// pipes with no work in between, the floor under any stdio server's round trip here (two
/// wake-ups). Same client, same pinning, a line the size of a request.
fn pipe_floor(calls: usize) -> Result<Vec<Duration>, String> {
    let mut cat = StdioClient::spawn(Command::new("cat")).map_err(|e| format!("cat: {e}"))?;
    let mut line = vec![b'x'; 120];
    line.push(b'\n');
    let times = timed(calls, |_| {
        cat.send_raw(&line).map_err(|e| e.to_string())?;
        cat.recv_line(TIMEOUT).map_err(|e| e.to_string())?;
        Ok(())
    })?;
    cat.finish(TIMEOUT).map_err(|e| e.to_string())?;
    Ok(times)
}

/// Times `calls` sequential round trips after a warm-up of a tenth as many; sorted. Each
/// gets its own id.
fn timed(
    calls: usize,
    mut round_trip: impl FnMut(u64) -> Result<(), String>,
) -> Result<Vec<Duration>, String> {
    let warm_up = (calls / 10).max(1);
    for id in 0..warm_up {
        round_trip(id as u64)?;
    }
    let mut times = Vec::with_capacity(calls);
    for id in warm_up..warm_up + calls {
        let start = Instant::now();
        round_trip(id as u64)?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times)
}

/// Round trips with the sandbox on (default policy) and off, in alternating blocks so that
/// machine noise hits both alike.
fn compare_sandbox(args: &Args) -> Result<Value, String> {
    let off_policy =
        std::env::temp_dir().join(format!("mcp-bench-off-{}.yaml", std::process::id()));
    let yaml = mcp_secure_server::policy::DEFAULT_POLICY_YAML.replace("mode: enforce", "mode: off");
    std::fs::write(&off_policy, yaml).map_err(|e| e.to_string())?;
    let start = |policy: Option<&std::path::Path>| -> Result<StdioClient, String> {
        let mut command = server_command(args)?;
        if let Some(path) = policy {
            command.arg("--policy").arg(path);
        }
        let mut client = StdioClient::spawn(command).map_err(|e| e.to_string())?;
        client.initialize(TIMEOUT).map_err(|e| e.to_string())?;
        Ok(client)
    };
    // Start-up, alternating.
    let (mut on_spawns, mut off_spawns) = (Vec::new(), Vec::new());
    for spawn in 0..args.spawns.max(1) {
        let mut pair = [(None, &mut on_spawns), (Some(&off_policy), &mut off_spawns)];
        if spawn % 2 == 1 {
            pair.reverse();
        }
        for (policy, times) in pair {
            let begin = Instant::now();
            let client = start(policy.map(|p| p.as_path()))?;
            times.push(begin.elapsed());
            client.finish(TIMEOUT).map_err(|e| e.to_string())?;
        }
    }
    let mut on = start(None)?;
    let mut off = start(Some(&off_policy))?;
    let _ = std::fs::remove_file(&off_policy);
    let (mut on_times, mut off_times) = (Vec::new(), Vec::new());
    let block = 250;
    let mut id = 0u64;
    for round in 0..(args.calls / block).max(2) {
        let mut pair = [(&mut on, &mut on_times), (&mut off, &mut off_times)];
        // Each goes first in every other round: whichever follows the other's block pays for
        // waking up its idle threads, and that must not count against one side only.
        if round % 2 == 1 {
            pair.reverse();
        }
        for (client, times) in pair {
            for _ in 0..block {
                id += 1;
                let start = Instant::now();
                call_tool(client, &args.tool, id)?;
                // The first round of each is warm-up.
                if round > 0 {
                    times.push(start.elapsed());
                }
            }
        }
    }
    on.finish(TIMEOUT).map_err(|e| e.to_string())?;
    off.finish(TIMEOUT).map_err(|e| e.to_string())?;
    let add_bug = if args.bugs > 0 {
        Some(compare_add_bug(args)?)
    } else {
        None
    };
    Ok(json!({
        "spawn_to_initialize": ratio(&mut on_spawns, &mut off_spawns, millis, "ms"),
        "round_trip": ratio(&mut on_times, &mut off_times, micros, "us"),
        "add_bug": add_bug,
    }))
}

/// p50 of two samples and their ratio.
fn ratio(
    on: &mut [Duration],
    off: &mut [Duration],
    unit: fn(Duration) -> f64,
    unit_name: &str,
) -> Value {
    on.sort();
    off.sort();
    let (on_p50, off_p50) = (percentile(on, 50.0), percentile(off, 50.0));
    json!({
        "samples_each": on.len(),
        format!("on_p50_{unit_name}"): unit(on_p50),
        format!("off_p50_{unit_name}"): unit(off_p50),
        "ratio_p50": (on_p50.as_secs_f64() / off_p50.as_secs_f64().max(1e-9) * 1000.0).round() / 1000.0,
    })
}

/// Sequential `add_bug` with the sandbox on and off, in alternating blocks.
fn compare_add_bug(args: &Args) -> Result<Value, String> {
    let dir = std::env::temp_dir().join(format!("mcp-bench-cmp-{}", std::process::id()));
    let result = (|| {
        let mut on = bug_server(args, &dir.join("on"), "enforce")?;
        let mut off = bug_server(args, &dir.join("off"), "off")?;
        let (mut on_times, mut off_times) = (Vec::new(), Vec::new());
        let block = 100;
        for round in 0..(args.bugs / block).max(2) {
            for ((client, project), times) in [(&mut on, &mut on_times), (&mut off, &mut off_times)]
            {
                for i in 0..block {
                    let begin = Instant::now();
                    client.call(
                        "add_bug",
                        json!({"title": format!("bug {round}-{i}"), "project_path": project}),
                    )?;
                    if round > 0 {
                        times.push(begin.elapsed());
                    }
                }
            }
        }
        on.0.finish()?;
        off.0.finish()?;
        Ok(ratio(&mut on_times, &mut off_times, micros, "us"))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A client of a server with the bug tracker on a fresh database in `dir`, its project
/// initialised; returns it with the project path.
fn bug_server(args: &Args, dir: &std::path::Path, mode: &str) -> Result<(Caller, String), String> {
    let project = dir.join("project");
    std::fs::create_dir_all(&project).map_err(|e| e.to_string())?;
    let mut command = server_command(args)?;
    command
        .env("HOME", dir)
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("MCP_PROJECT_PATH", &project)
        .current_dir(&project);
    if args.server.is_empty() {
        let policy = dir.join("policy.yaml");
        let yaml = format!(
            "filesystem:\n  allowed_paths: [\"{}/**\"]\ntools:\n  rate_limits: {{default: 100000000}}\nsandbox:\n  mode: {mode}\n",
            project.display()
        );
        std::fs::write(&policy, yaml).map_err(|e| e.to_string())?;
        command.arg("--policy").arg(&policy);
    }
    let mut client = StdioClient::spawn(command).map_err(|e| e.to_string())?;
    client.initialize(TIMEOUT).map_err(|e| e.to_string())?;
    let project_path = project.to_string_lossy().into_owned();
    let mut caller = Caller { client, id: 0 };
    caller.call("init_bugtracker", json!({"project_path": project_path}))?;
    Ok((caller, project_path))
}

/// A client that numbers its calls and fails on any error answer.
struct Caller {
    client: StdioClient,
    id: u64,
}

impl Caller {
    fn call(&mut self, tool: &str, arguments: Value) -> Result<(), String> {
        self.id += 1;
        let answer = self
            .client
            .request(
                json!(self.id),
                "tools/call",
                json!({"name": tool, "arguments": arguments}),
                TIMEOUT,
            )
            .map_err(|e| e.to_string())?;
        if answer["result"]["isError"] != false {
            return Err(format!("{tool} failed: {answer}"));
        }
        Ok(())
    }

    fn finish(self) -> Result<(), String> {
        self.client
            .finish(TIMEOUT)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The bug tracker on a fresh database in a temp directory: sequential `add_bug`, then
/// filtered `list_bugs` on a project of `--bug-project-size` bugs. Our server gets a policy
/// that allows the directory and lifts the rate limit; another server gets `MCP_PROJECT_PATH`.
fn bug_tracker(args: &Args) -> Result<Value, String> {
    let dir = std::env::temp_dir().join(format!("mcp-bench-bugs-{}", std::process::id()));
    let result = bug_tracker_in(args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn bug_tracker_in(args: &Args, dir: &std::path::Path) -> Result<Value, String> {
    let (mut caller, project_path) = bug_server(args, dir, "enforce")?;
    let new_bug = |i: usize| {
        let priority = ["low", "medium", "high", "critical"][i % 4];
        let tags = [["ui", "auth", "db", "perf"][i % 4], ["x", "y"][i % 2]];
        json!({
            "title": format!("Benchmark bug {i}"),
            "description": format!("Generated by mcp-bench, number {i}"),
            "priority": priority,
            "tags": tags,
            "project_path": project_path,
        })
    };
    let mut adds = Vec::with_capacity(args.bugs);
    let start = Instant::now();
    for i in 0..args.bugs {
        let begin = Instant::now();
        caller.call("add_bug", new_bug(i))?;
        adds.push(begin.elapsed());
    }
    let add_rate = args.bugs as f64 / start.elapsed().as_secs_f64();
    adds.sort();

    // Fill the project, pipelined, then time the filtered lists.
    let mut created = args.bugs;
    while created < args.bug_project_size {
        let batch = args.window.min(args.bug_project_size - created);
        let mut bytes = Vec::new();
        for i in 0..batch {
            let request = json!({"jsonrpc": "2.0", "id": format!("fill-{}", created + i),
                "method": "tools/call", "params": {"name": "add_bug", "arguments": new_bug(created + i)}});
            bytes.extend(request.to_string().into_bytes());
            bytes.push(b'\n');
        }
        caller.client.send_raw(&bytes).map_err(|e| e.to_string())?;
        for _ in 0..batch {
            caller.client.recv(TIMEOUT).map_err(|e| e.to_string())?;
        }
        created += batch;
    }
    let filters = [
        (
            "status+priority",
            json!({"status": "open", "priority": "high"}),
        ),
        ("tags", json!({"tags": ["auth", "y"]})),
        (
            "priority, 500 rows",
            json!({"priority": "critical", "limit": 500}),
        ),
        ("full text", json!({"query": "number 4242"})),
    ];
    let mut lists = serde_json::Map::new();
    for (name, mut filter) in filters {
        filter["project_path"] = json!(project_path);
        let mut times = Vec::new();
        for _ in 0..30 {
            let begin = Instant::now();
            caller.call("list_bugs", filter.clone())?;
            times.push(begin.elapsed());
        }
        times.sort();
        lists.insert(name.to_owned(), json!(millis(percentile(&times, 50.0))));
    }
    caller.finish()?;
    Ok(json!({
        "add_bug": {
            "calls": args.bugs,
            "calls_per_second": add_rate.round(),
            "p50_ms": millis(percentile(&adds, 50.0)),
            "p99_ms": millis(percentile(&adds, 99.0)),
        },
        "list_bugs_p50_ms": {
            "project_bugs": created,
            "filters": lists,
        },
    }))
}

/// One `tools/call` round trip; an error answer fails the benchmark.
fn call_tool(client: &mut StdioClient, tool: &str, id: u64) -> Result<(), String> {
    let answer = client
        .request(
            json!(id),
            "tools/call",
            json!({"name": tool, "arguments": {}}),
            TIMEOUT,
        )
        .map_err(|e| e.to_string())?;
    if answer.get("result").is_none() {
        return Err(format!("tools/call failed: {answer}"));
    }
    Ok(())
}

fn spawn_latencies(args: &Args) -> Result<Vec<Duration>, String> {
    let mut latencies = Vec::with_capacity(args.spawns);
    for _ in 0..args.spawns {
        let start = Instant::now();
        let mut client = StdioClient::spawn(server_command(args)?).map_err(|e| e.to_string())?;
        client.initialize(TIMEOUT).map_err(|e| e.to_string())?;
        latencies.push(start.elapsed());
        client.finish(TIMEOUT).map_err(|e| e.to_string())?;
    }
    latencies.sort();
    Ok(latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0
}

fn micros(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0 * 10.0).round() / 10.0
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:` now, `VmHWM:` the peak).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn print_table(report: &Value) {
    let s = &report["spawn_to_initialize_ms"];
    let c = &report["tools_call_round_trip_us"];
    let p = &report["pipelined"];
    println!("server: {}", report["server"].as_str().unwrap_or_default());
    if let Some(cpu) = report["pinned_cpu"].as_u64() {
        println!("pinned to CPU {cpu}");
    }
    println!("{:<36} {:>12}", "metric", "value");
    println!("{:<36} {:>12}", "spawn -> initialize p50 (ms)", s["p50"]);
    println!("{:<36} {:>12}", "spawn -> initialize p90 (ms)", s["p90"]);
    println!(
        "{:<36} {:>12}",
        format!(
            "{} round trip p50 (us)",
            c["tool"].as_str().unwrap_or_default()
        ),
        c["p50"]
    );
    println!(
        "{:<36} {:>12}",
        format!(
            "{} round trip p99 (us)",
            c["tool"].as_str().unwrap_or_default()
        ),
        c["p99"]
    );
    let floor = &report["pipe_echo_round_trip_us"];
    println!(
        "{:<36} {:>12}",
        "pipe echo (cat) round trip p50 (us)", floor["p50"]
    );
    println!(
        "{:<36} {:>12}",
        "pipelined calls per second", p["calls_per_second"]
    );
    println!("{:<36} {:>12}", "idle RSS (MiB)", report["idle_rss_mib"]);
    println!("{:<36} {:>12}", "peak RSS (MiB)", report["peak_rss_mib"]);
    let cost = &report["sandbox_on_vs_off"];
    for (name, unit) in [
        ("spawn_to_initialize", "ms"),
        ("round_trip", "us"),
        ("add_bug", "us"),
    ] {
        let row = &cost[name];
        if row.is_null() {
            continue;
        }
        println!(
            "{:<36} {:>12}",
            format!("{name} p50 sandbox on ({unit})"),
            row[format!("on_p50_{unit}")]
        );
        println!(
            "{:<36} {:>12}",
            format!("{name} p50 sandbox off ({unit})"),
            row[format!("off_p50_{unit}")]
        );
        println!(
            "{:<36} {:>12}",
            format!("{name} sandbox on / off"),
            row["ratio_p50"]
        );
    }
    external::print(&report["external"]);
    let bugs = &report["bugtracker"];
    if !bugs.is_null() {
        let add = &bugs["add_bug"];
        println!(
            "{:<36} {:>12}",
            "add_bug sequential calls per second", add["calls_per_second"]
        );
        println!("{:<36} {:>12}", "add_bug p50 (ms)", add["p50_ms"]);
        println!("{:<36} {:>12}", "add_bug p99 (ms)", add["p99_ms"]);
        let lists = &bugs["list_bugs_p50_ms"];
        if let Some(filters) = lists["filters"].as_object() {
            for (name, ms) in filters {
                println!(
                    "{:<36} {:>12}",
                    format!("list_bugs {name}, {} bugs (ms)", lists["project_bugs"]),
                    ms
                );
            }
        }
    }
}
