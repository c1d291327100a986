//! The command-line modes (`serve`, `check`, `call`) and the [`Launcher`] that runs them.
//!
//! `serve` follows the start-up order of DESIGN.md §3: everything that needs wide access
//! (policy, data directories, plugin set-up) happens while the process is single-threaded; only
//! then is the tokio runtime built. Errors are reported once, on stderr, with an exit code from
//! [`ExitStatus`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use thiserror::Error;

use crate::cli::{AuditCommand, BugsCommand, Cli, Command};
use crate::client::{ClientError, StdioClient};
use crate::egress::{Connector, EgressError};
use crate::guard::{AuditLog, Guards, PathRules};
use crate::mcp::Ending;
use crate::mcp::{SessionSettings, serve};
use crate::plugins::bugtracker::{self, BugTracker, DefaultProject};
use crate::plugins::external::ExternalError;
use crate::plugins::web_search::WebSearch;
use crate::plugins::{Plugin, Registry, RegistryError};
use crate::policy::{self, Policy, PolicyError, PolicySource};
use crate::rpc::code::INVALID_PARAMS;
use crate::sandbox::{self, SandboxError};

/// Process exit codes (documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Success; for `serve`, the client closed stdin or sent SIGTERM.
    Success = 0,
    /// `call`: the tool ran and reported an error (`isError: true`).
    ToolError = 1,
    /// Bad command line, invalid policy or plugin set: fix the input and retry.
    Usage = 2,
    /// Runtime failure: I/O, the server could not start, or a call failed at the protocol level.
    Failure = 3,
    /// The kernel cannot enforce the sandbox the policy requires (`sandbox.mode: enforce`).
    SandboxUnavailable = 4,
    /// `audit verify`: the chain is broken (a record was edited, deleted or reordered).
    AuditInvalid = 5,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status as u8)
    }
}

/// Everything that stops a command.
#[derive(Debug, Error)]
pub enum LaunchError {
    /// The policy could not be loaded.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The plugin set is invalid.
    #[error("invalid plugin set: {0}")]
    Registry(#[from] RegistryError),
    /// A data directory could not be created.
    #[error(
        "cannot create data directory {path}: {source}\nhint: check permissions, or point audit.log_file elsewhere in the policy"
    )]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime could not be built.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// Reading stdin failed.
    #[error("reading stdin failed: {0}")]
    Stdin(#[source] std::io::Error),
    /// `call` arguments are not a JSON object.
    #[error("JSON_ARGS must be a JSON object, e.g. '{{\"query\": \"bug\"}}': {0}")]
    CallArguments(String),
    /// `call` could not talk to the server.
    #[error("call failed: {0}")]
    Call(#[from] ClientError),
    /// Printing the report failed.
    #[error("cannot print: {0}")]
    Output(#[source] std::io::Error),
    /// The sandbox could not be applied.
    #[error("cannot apply the sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// The audit log could not be opened.
    #[error(
        "cannot open the audit log {path}: {source}\nhint: check permissions, or set audit.log_file in the policy"
    )]
    Audit {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The `connect` bridge failed.
    #[error(transparent)]
    Bridge(#[from] crate::bridge::BridgeError),
    /// The bug database could not be opened.
    #[error(transparent)]
    BugDatabase(#[from] bugtracker::store::StoreError),
    /// The egress connector could not be set up.
    #[error("cannot set up the network connector: {0}")]
    Egress(#[source] EgressError),
    /// `bugs import` failed.
    #[error("import failed, nothing was imported: {0}")]
    Import(String),
    /// An external plugin cannot be loaded.
    #[error(transparent)]
    External(#[from] ExternalError),
    /// `audit verify` found a broken chain.
    #[error("audit log verification failed: {0}")]
    AuditInvalid(String),
}

impl LaunchError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            LaunchError::Policy(_)
            | LaunchError::Registry(_)
            | LaunchError::External(_)
            | LaunchError::Egress(_)
            | LaunchError::CallArguments(_)
            // An unknown tool or malformed call: the command line was wrong.
            | LaunchError::Call(ClientError::Rpc {
                code: INVALID_PARAMS,
                ..
            }) => ExitStatus::Usage,
            LaunchError::DataDir { .. }
            | LaunchError::Runtime(_)
            | LaunchError::Stdin(_)
            | LaunchError::Call(_)
            | LaunchError::Output(_) => ExitStatus::Failure,
            LaunchError::Sandbox(_) => ExitStatus::SandboxUnavailable,
            LaunchError::Audit { .. }
            | LaunchError::Bridge(_)
            | LaunchError::BugDatabase(_)
            | LaunchError::Import(_) => ExitStatus::Failure,
            LaunchError::AuditInvalid(_) => ExitStatus::AuditInvalid,
        }
    }
}

/// Runs the server's command line with a set of plugins.
///
/// ```no_run
/// // A server binary with one extra plugin (see examples/custom_plugin.rs):
/// # struct MyPlugin;
/// # impl mcp_secure_server::plugins::Plugin for MyPlugin {
/// #   fn name(&self) -> &str { "mine" } fn version(&self) -> &str { "1.0.0" }
/// #   fn tools(&self) -> Vec<mcp_secure_server::plugins::ToolDefinition> { vec![] }
/// #   fn call<'a>(&'a self, _: &'a str, _: serde_json::Map<String, serde_json::Value>,
/// #     _: mcp_secure_server::plugins::CallContext) -> mcp_secure_server::plugins::ToolFuture<'a> {
/// #     Box::pin(async { mcp_secure_server::plugins::ToolResult::text("") }) } }
/// fn main() -> std::process::ExitCode {
///     mcp_secure_server::Launcher::new().plugin(MyPlugin).run()
/// }
/// ```
pub struct Launcher {
    plugins: Vec<Arc<dyn Plugin>>,
    started: std::time::Instant,
}

impl Default for Launcher {
    fn default() -> Self {
        Launcher {
            plugins: Vec::new(),
            started: std::time::Instant::now(),
        }
    }
}

impl Launcher {
    /// A launcher with the built-in plugins only.
    pub fn new() -> Self {
        Launcher::default()
    }

    /// Adds an in-process plugin; its tools are served after the built-in ones.
    pub fn plugin(mut self, plugin: impl Plugin) -> Self {
        self.plugins.push(Arc::new(plugin));
        self
    }

    /// Parses the process arguments and runs the chosen command.
    pub fn run(self) -> ExitCode {
        // The plugin helper mode never returns: it locks itself down and executes a plugin.
        crate::sandbox::child::run_if_requested(std::env::args_os().skip(1));
        let cli = Cli::parse();
        crate::logging::init();
        match self.run_cli(cli) {
            Ok(status) => status.into(),
            Err(error) => {
                eprintln!("mcp-secure-server: error: {error}");
                error.exit_status().into()
            }
        }
    }

    /// Runs an already parsed command line.
    ///
    /// # Errors
    /// See [`LaunchError`].
    pub fn run_cli(self, cli: Cli) -> Result<ExitStatus, LaunchError> {
        let (policy, source) = policy::load(cli.policy.as_deref())?;
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => self.serve(policy, &source),
            Command::Check { json } => self.check(&policy, &source, json),
            Command::Doctor { json } => doctor(&policy, json),
            Command::Connect { socket } => {
                crate::bridge::run(&socket)?;
                Ok(ExitStatus::Success)
            }
            Command::Completions { shell } => print(&completions(shell)),
            Command::Man => print(&man_page()?),
            Command::Audit {
                action: AuditCommand::Verify { file },
            } => audit_verify(file.as_deref().unwrap_or(&policy.audit.log_file)),
            Command::Bugs {
                action: BugsCommand::Import { database, project },
            } => import_bugs(&policy, &database, project.as_deref()),
            Command::Call {
                tool,
                arguments,
                raw,
            } => call(
                cli.policy.as_deref(),
                &policy,
                &tool,
                arguments.as_deref(),
                raw,
            ),
        }
    }

    fn serve(self, policy: Policy, source: &PolicySource) -> Result<ExitStatus, LaunchError> {
        // 1. Everything that needs wide access, while single-threaded.
        create_data_dirs(&policy)?;
        let (home, cwd) = home_and_cwd();
        let rules = PathRules::new(&policy.filesystem, home.clone(), cwd.clone());
        let rules_for_plugins = rules.clone();
        let mut plugins: Vec<Arc<dyn Plugin>> = Vec::new();
        if let Some(search) = &policy.plugins.web_search {
            // Reads CA files and /etc/resolv.conf now: the sandbox hides them later.
            let connector = Arc::new(Connector::new(&policy).map_err(LaunchError::Egress)?);
            plugins.push(Arc::new(WebSearch::new(connector, search.endpoint.clone())));
        }
        if let Some(settings) = &policy.plugins.bugtracker {
            plugins.push(Arc::new(bugtracker::open(settings, rules, &cwd)?));
            tracing::debug!(
                database = %settings.database.display(),
                elapsed_us = self.started.elapsed().as_micros() as u64,
                "bug database open"
            );
        }
        plugins.extend(self.plugins);
        let external = load_external(&policy, &rules_for_plugins, &mut plugins)?;
        let registry = Arc::new(Registry::build(plugins)?);
        tracing::debug!(
            elapsed_us = self.started.elapsed().as_micros() as u64,
            "tools registered"
        );
        let audit = AuditLog::open(&policy.audit).map_err(|source| LaunchError::Audit {
            path: policy.audit.log_file.clone(),
            source,
        })?;
        let guards = Arc::new(Guards::new(&policy, home, cwd, Some(audit)));
        let settings = SessionSettings {
            max_line_bytes: policy.limits.max_line_bytes,
            max_in_flight: policy.limits.max_in_flight,
            tools_page_size: policy.limits.tools_page_size,
            guards: Arc::clone(&guards),
        };
        // Computed now: later, /proc and cgroup files may be out of reach.
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        // 2. Lock the process down, still single-threaded (Landlock covers only the calling
        //    thread and the threads it creates afterwards).
        let mut plan = sandbox::plan(&policy, &sandbox::probe_path);
        if !external.is_empty() {
            plan.allow_plugins(external);
        }
        for warning in &plan.warnings {
            tracing::warn!("{warning}");
        }
        let enforcement = sandbox::apply(&plan)?;
        report_enforcement(&enforcement, self.started);
        if let Some(audit) = &guards.audit {
            audit.startup(
                &source.to_string(),
                &policy.source_sha256,
                serde_json::to_value(&enforcement).unwrap_or(Value::Null),
            );
        }
        // 3. Only now start threads.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .max_blocking_threads(16)
            .enable_io()
            .enable_time()
            .build()
            .map_err(LaunchError::Runtime)?;
        tracing::info!(
            policy = %source,
            tools = registry.tools().len(),
            "serving MCP on stdio"
        );
        let ending = runtime.block_on(async {
            let input = crate::mcp::stdio::input()?;
            let output = crate::mcp::stdio::output()?;
            // On a worker, not on this thread: the worker that sees stdin become readable
            // runs the reader itself, and the calls it spawns start on the same thread.
            let session = tokio::spawn(serve(
                registry,
                settings,
                input,
                output,
                termination_signal(),
            ));
            match session.await {
                Ok(ending) => ending,
                // A bug, not an input error: fail the way it would have on this thread.
                Err(failure) if failure.is_panic() => {
                    std::panic::resume_unwind(failure.into_panic())
                }
                Err(failure) => Err(std::io::Error::other(failure)),
            }
        });
        // The blocking stdin reader may still sit in read(2); do not wait for it.
        runtime.shutdown_background();
        crate::mcp::stdio::restore_flags();
        if let Some(audit) = &guards.audit {
            let reason = match &ending {
                Ok(Ending::EndOfInput) => "end of input",
                Ok(Ending::Shutdown) => "signal",
                Ok(Ending::OutputClosed) => "output closed",
                Err(_) => "input error",
            };
            audit.shutdown(reason);
        }
        let ending = ending.map_err(LaunchError::Stdin)?;
        tracing::info!(?ending, "session ended");
        Ok(ExitStatus::Success)
    }

    fn check(
        self,
        policy: &Policy,
        source: &PolicySource,
        json: bool,
    ) -> Result<ExitStatus, LaunchError> {
        use std::io::Write;
        let (home, cwd) = home_and_cwd();
        let mut plugins: Vec<Arc<dyn Plugin>> = Vec::new();
        if let Some(search) = &policy.plugins.web_search {
            plugins.push(Arc::new(WebSearch::unconnected(search.endpoint.clone())));
        }
        let rules = PathRules::new(&policy.filesystem, home, cwd.clone());
        if policy.plugins.bugtracker.is_some() {
            plugins.push(Arc::new(BugTracker::unopened(
                rules.clone(),
                DefaultProject::from_env(&cwd),
            )));
        }
        plugins.extend(self.plugins);
        let external = load_external(policy, &rules, &mut plugins)?;
        let registry = Registry::build(plugins)?;
        let mut plan = sandbox::plan(policy, &sandbox::probe_path);
        if !external.is_empty() {
            plan.allow_plugins(external);
        }
        let report = crate::check::report(policy, source, &registry, &plan);
        let text = if json {
            let mut value = serde_json::to_value(&report).unwrap_or(Value::Null);
            value["policy"] = serde_json::to_value(policy).unwrap_or(Value::Null);
            format!("{value:#}\n")
        } else {
            report.to_table()
        };
        std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(LaunchError::Output)?;
        Ok(ExitStatus::Success)
    }
}

/// Loads the external plugins into `plugins` and returns what the server's sandbox must
/// grant them (nothing when there are none).
fn load_external(
    policy: &Policy,
    rules: &PathRules,
    plugins: &mut Vec<Arc<dyn Plugin>>,
) -> Result<Vec<sandbox::FsGrant>, LaunchError> {
    let env = |name: &str| std::env::var(name).ok();
    let external = crate::plugins::external::load_all(policy, rules, &env)?;
    let grants = crate::plugins::external::sandbox_grants(&external)?;
    plugins.extend(
        external
            .into_iter()
            .map(|plugin| Arc::new(plugin) as Arc<dyn Plugin>),
    );
    Ok(grants)
}

/// `$HOME` (if set) and the working directory, which anchor `~` and relative paths.
fn home_and_cwd() -> (Option<PathBuf>, PathBuf) {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    (home, cwd)
}

/// `bugs import`: copies an original tracker database into ours (no sandbox: an admin command
/// that reads a file anywhere).
fn import_bugs(
    policy: &Policy,
    old_database: &Path,
    project: Option<&Path>,
) -> Result<ExitStatus, LaunchError> {
    use std::io::Write;
    let settings = policy.plugins.bugtracker.as_ref().ok_or_else(|| {
        LaunchError::Import(
            "the bug tracker is disabled (plugins.bugtracker.enabled: false)".into(),
        )
    })?;
    let old_database = &std::fs::canonicalize(old_database)
        .ok()
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            LaunchError::Import(format!(
                "{} is not a file; give the original's PROJECT/.bugtracker/bugs.db",
                old_database.display()
            ))
        })?;
    let project = match project {
        Some(project) => project.to_path_buf(),
        None => bugtracker::import::default_project(old_database).ok_or_else(|| {
            LaunchError::Import(format!(
                "{} is not inside a .bugtracker directory; say which project it belongs to with --project DIR",
                old_database.display()
            ))
        })?,
    };
    let project = std::fs::canonicalize(&project)
        .ok()
        .filter(|p| p.is_dir())
        .ok_or_else(|| {
            LaunchError::Import(format!(
                "project {} is not an existing directory; pass --project DIR",
                project.display()
            ))
        })?;
    let project = project.to_str().ok_or_else(|| {
        LaunchError::Import(format!("project path {} is not UTF-8", project.display()))
    })?;
    create_data_dirs(policy)?;
    let store = bugtracker::store::Store::open(&settings.database, settings.synchronous)?;
    let stop = bugtracker::store::StopFlag::default();
    let imported = store
        .run(&stop, |c| {
            bugtracker::import::import(c, old_database, project)
        })
        .map_err(|e| LaunchError::Import(e.to_string()))?;
    let mut text = format!(
        "imported {} bug(s) into {} ({} already imported, skipped)\n",
        imported.bugs.len(),
        imported.project,
        imported.skipped.len()
    );
    for (old, new) in &imported.bugs {
        text.push_str(&format!("  {old} -> {new}\n"));
    }
    for relation in &imported.dangling_relations {
        text.push_str(&format!("  warning: relation {relation} not imported\n"));
    }
    let (home, cwd) = home_and_cwd();
    if PathRules::new(&policy.filesystem, home, cwd)
        .check(project)
        .is_err()
    {
        text.push_str(&format!(
            "  note: {project} is outside filesystem.allowed_paths; add it there to use these bugs through the tools\n"
        ));
    }
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(LaunchError::Output)?;
    Ok(ExitStatus::Success)
}

/// Logs what the sandbox enforces; anything degraded is a warning, so it is never missed.
fn report_enforcement(enforcement: &sandbox::Enforcement, started: std::time::Instant) {
    tracing::info!(
        mode = ?enforcement.mode,
        landlock_abi = enforcement.landlock_abi,
        landlock = enforcement.landlock,
        seccomp = enforcement.seccomp,
        capabilities_dropped = enforcement.capabilities_dropped,
        elapsed_us = started.elapsed().as_micros() as u64,
        "sandbox applied"
    );
    for gap in &enforcement.degraded {
        tracing::warn!("sandbox not fully enforced: {gap}");
    }
}

fn print(text: &[u8]) -> Result<ExitStatus, LaunchError> {
    use std::io::Write;
    std::io::stdout()
        .write_all(text)
        .map_err(LaunchError::Output)?;
    Ok(ExitStatus::Success)
}

/// Shell completions, generated from the clap definitions.
fn completions(shell: crate::cli::CompletionShell) -> Vec<u8> {
    use clap::CommandFactory;
    let generator = match shell {
        crate::cli::CompletionShell::Bash => clap_complete::Shell::Bash,
        crate::cli::CompletionShell::Zsh => clap_complete::Shell::Zsh,
        crate::cli::CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(
        generator,
        &mut Cli::command(),
        "mcp-secure-server",
        &mut out,
    );
    out
}

/// The man page (roff), generated from the clap definitions.
fn man_page() -> Result<Vec<u8>, LaunchError> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(LaunchError::Output)?;
    Ok(out)
}

/// `audit verify`: checks the hash chain of the log and its rotated files.
fn audit_verify(path: &Path) -> Result<ExitStatus, LaunchError> {
    use std::io::Write;
    let verified = crate::guard::audit::verify(path).map_err(LaunchError::AuditInvalid)?;
    let mut text = format!(
        "ok: {} records in {} file(s), chain intact ({})\n",
        verified.records,
        verified.files.len(),
        path.display()
    );
    if verified.first_seq > 1 {
        text.push_str(&format!(
            "note: the chain starts at record {} (older files were rotated away)\n",
            verified.first_seq
        ));
    }
    if let Some((seq, hash)) = &verified.last {
        text.push_str(&format!(
            "last record: seq {seq}, hash {hash} (keep these elsewhere to detect a cut tail)\n"
        ));
    }
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(LaunchError::Output)?;
    Ok(ExitStatus::Success)
}

/// `doctor`: kernel facts and what this policy would get.
fn doctor(policy: &Policy, json: bool) -> Result<ExitStatus, LaunchError> {
    use std::io::Write;
    create_data_dirs(policy)?;
    let plan = sandbox::plan(policy, &sandbox::probe_path);
    let report = sandbox::doctor::examine(&plan);
    let text = if json {
        format!("{report:#}\n")
    } else {
        sandbox::doctor::to_text(&report)
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(LaunchError::Output)?;
    Ok(ExitStatus::Success)
}

/// Creates the policy's data directories with mode 0700 (the leaf is tightened if it exists).
///
/// # Errors
/// A directory cannot be created or its mode set.
pub fn create_data_dirs(policy: &Policy) -> Result<(), LaunchError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    for dir in policy.data_dirs() {
        let fail = |source| LaunchError::DataDir {
            path: dir.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(fail)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    Ok(())
}

/// Completes on SIGTERM or SIGINT. If the handlers cannot be installed, never completes (stdin
/// EOF still ends the session).
async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stop the server by closing stdin");
            std::future::pending::<()>().await;
        }
    }
}

/// How long `call` waits for the handshake.
const CALL_START_TIMEOUT: Duration = Duration::from_secs(30);

/// `call`: runs this same binary as a child server, calls one tool and prints the result.
fn call(
    policy_path: Option<&Path>,
    policy: &Policy,
    tool: &str,
    arguments: Option<&str>,
    raw: bool,
) -> Result<ExitStatus, LaunchError> {
    use std::io::Write;
    let arguments: Value = match arguments {
        None => json!({}),
        Some(text) => {
            serde_json::from_str(text).map_err(|e| LaunchError::CallArguments(e.to_string()))?
        }
    };
    if !arguments.is_object() {
        return Err(LaunchError::CallArguments(
            "got a JSON value that is not an object".into(),
        ));
    }
    let exe = std::env::current_exe().map_err(|e| LaunchError::Call(e.into()))?;
    let mut command = std::process::Command::new(exe);
    if let Some(path) = policy_path {
        command.arg("--policy").arg(path);
    }
    command.arg("serve");
    if std::env::var_os("RUST_LOG").is_none() {
        // The child's start-up chatter is noise here; its warnings and errors still show.
        command.env("RUST_LOG", "warn");
    }
    let mut client = StdioClient::spawn(command)?;
    client.initialize(CALL_START_TIMEOUT)?;
    let wait = policy.tools.timeout + CALL_START_TIMEOUT;
    let result = client.call_method(
        json!(1),
        "tools/call",
        json!({"name": tool, "arguments": arguments}),
        wait,
    )?;
    client.finish(CALL_START_TIMEOUT)?;

    let is_error = result
        .get("isError")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let text = if raw {
        format!("{result:#}\n")
    } else if let Some(structured) = result.get("structuredContent") {
        format!("{structured:#}\n")
    } else {
        let blocks = result
            .get("content")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut text: String = blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n");
        text.push('\n');
        text
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(LaunchError::Output)?;
    Ok(if is_error {
        ExitStatus::ToolError
    } else {
        ExitStatus::Success
    })
}
