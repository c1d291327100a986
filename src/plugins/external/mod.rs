//! External plugins: tools in any language, one process per call (or one long-lived process
//! with `mode: persistent`), each in its own sandbox inside the server's.
//!
//! A call writes `{"tool": NAME, "arguments": {…}}` and a newline to the plugin's stdin and
//! reads one JSON answer from its stdout (the original project's contract). The arguments have
//! passed every guardrail before the process starts. The process runs through the plugin
//! helper ([`crate::sandbox::child`]); on its deadline, on cancellation, or when it prints too
//! much, its whole process group is killed.

pub mod launch;
pub mod manifest;
mod persistent;
pub mod process;
pub mod response;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;

use self::launch::{Launcher, Program};
use self::manifest::{Manifest, ManifestError, Mode};
use self::persistent::Persistent;
use self::process::{Pipes, PluginProcess};
use super::{CallContext, Plugin, ToolDefinition, ToolFuture, ToolResult};
use crate::guard::PathRules;
use crate::policy::Policy;
use crate::sandbox::{FsAccess, FsGrant};

/// How long before the server's own deadline a plugin is stopped, so that its answer (a clear
/// timeout error) is still sent and the process is reaped before the call ends.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);
/// Most directory entries examined to expand the globs of `plugins.external`.
const MAX_GLOB_ENTRIES: usize = 10_000;
/// Deepest directory level examined below a glob's literal prefix.
const MAX_GLOB_DEPTH: usize = 8;

/// Why the external plugins cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    /// A manifest is wrong.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A listed manifest does not exist.
    #[error(
        "plugins.external[{index}]: {path} does not exist\nhint: fix the path, or remove the entry"
    )]
    Missing {
        /// The entry.
        index: usize,
        /// The path.
        path: String,
    },
    /// Our own binary cannot be found (it runs the plugin helper).
    #[error("cannot find the server's own executable to run the plugin helper: {0}")]
    OwnExecutable(String),
}

/// One external plugin, ready to call.
pub struct ExternalPlugin {
    manifest: Manifest,
    program: Program,
    launcher: Launcher,
    persistent: Option<Persistent>,
}

impl std::fmt::Debug for ExternalPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalPlugin")
            .field("name", &self.manifest.name)
            .field("program", &self.program.program)
            .finish()
    }
}

/// The manifests of `policy`, loaded and checked, with their launchers; `env` is the server's
/// environment. Does not start any process.
///
/// # Errors
/// The first manifest that is missing or wrong.
pub fn load_all(
    policy: &Policy,
    rules: &PathRules,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<ExternalPlugin>, ExternalError> {
    if policy.plugins.external.is_empty() {
        return Ok(Vec::new());
    }
    let helper = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| ExternalError::OwnExecutable(e.to_string()))?;
    let path_var = env("PATH");
    let mut plugins = Vec::new();
    for path in manifest_paths(policy)? {
        let manifest = manifest::load(&path, rules)?;
        let program =
            launch::program(&manifest.executable, path_var.as_deref()).map_err(|message| {
                ManifestError {
                    manifest: path.clone(),
                    key: "executable".into(),
                    message,
                }
            })?;
        let longest_deadline = manifest
            .tools
            .iter()
            .map(|t| policy.tools.timeout_for(&t.name))
            .max()
            .unwrap_or(policy.tools.timeout);
        let deadline = manifest
            .timeout
            .map_or(longest_deadline, |own| own.min(longest_deadline));
        let launcher = Launcher::new(
            &manifest,
            &program,
            helper.clone(),
            launch::environment(&manifest.env, env),
            deadline.as_secs_f64().ceil() as u64,
            policy.sandbox.mode,
        )
        .map_err(|message| ManifestError {
            manifest: path.clone(),
            key: ".".into(),
            message,
        })?;
        let persistent = (manifest.mode == Mode::Persistent).then(Persistent::default);
        plugins.push(ExternalPlugin {
            manifest,
            program,
            launcher,
            persistent,
        });
    }
    Ok(plugins)
}

/// What the server's own sandbox must allow so that `plugins` can run inside it: read on the
/// libraries and plugin directories, read+execute on the helper and every plugin program.
///
/// # Errors
/// The helper's ELF loader cannot be found.
pub fn sandbox_grants(plugins: &[ExternalPlugin]) -> Result<Vec<FsGrant>, ExternalError> {
    let Some(first) = plugins.first() else {
        return Ok(Vec::new());
    };
    let helper = &first.launcher.helper;
    let helper_loader = launch::elf_loader(helper).map_err(ExternalError::OwnExecutable)?;
    let grant = |path: &Path, access: FsAccess, reason: &str| FsGrant {
        path: path.to_owned(),
        access,
        reason: reason.to_owned(),
    };
    let mut grants: Vec<FsGrant> = std::iter::once(helper)
        .chain(helper_loader.as_ref())
        .map(|path| grant(path, FsAccess::ReadExecute, "plugin helper (this server)"))
        .collect();
    let runtime = launch::runtime_read();
    grants.extend(
        runtime
            .iter()
            .map(|path| grant(path, FsAccess::Read, "plugin runtime libraries")),
    );
    for plugin in plugins {
        let reason = format!("plugins.external: {}", plugin.manifest.name);
        grants.extend(
            plugin
                .launcher
                .spec
                .execute
                .iter()
                .map(|path| grant(path, FsAccess::ReadExecute, &reason)),
        );
        grants.extend(
            plugin
                .launcher
                .spec
                .read
                .iter()
                .filter(|path| !runtime.contains(path))
                .map(|path| grant(path, FsAccess::Read, &reason)),
        );
    }
    Ok(grants)
}

/// The manifest files named by `plugins.external`, in policy order, each once.
fn manifest_paths(policy: &Policy) -> Result<Vec<PathBuf>, ExternalError> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for (index, pattern) in policy.plugins.external.iter().enumerate() {
        let expanded = &pattern.expanded;
        let found = if expanded.contains(['*', '?', '[', '{']) {
            let found = glob_files(expanded);
            if found.is_empty() {
                tracing::warn!(
                    "plugins.external[{index}]: {:?} matches no file",
                    pattern.written
                );
            }
            found
        } else if Path::new(expanded).is_file() {
            vec![PathBuf::from(expanded)]
        } else {
            return Err(ExternalError::Missing {
                index,
                path: expanded.clone(),
            });
        };
        for path in found {
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    Ok(paths)
}

/// Files matching `pattern` below its literal directory prefix, sorted; bounded in depth and
/// entries so that a pattern like `/**/manifest.yaml` cannot stall start-up.
fn glob_files(pattern: &str) -> Vec<PathBuf> {
    let Ok(glob) = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
    else {
        return Vec::new();
    };
    let matcher = glob.compile_matcher();
    let root: PathBuf = Path::new(pattern)
        .components()
        .take_while(|c| {
            !c.as_os_str()
                .to_string_lossy()
                .contains(['*', '?', '[', '{'])
        })
        .collect();
    let mut found = Vec::new();
    let mut pending = vec![(root, 0)];
    let mut examined = 0;
    while let Some((dir, depth)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            examined += 1;
            if examined > MAX_GLOB_ENTRIES {
                return found;
            }
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && depth < MAX_GLOB_DEPTH {
                pending.push((path.clone(), depth + 1));
            } else if kind.is_file() && matcher.is_match(&path) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

impl ExternalPlugin {
    /// When this call must be answered: the plugin's own timeout or, a little before, the
    /// server's deadline.
    fn deadline(&self, ctx: &CallContext) -> (tokio::time::Instant, Duration) {
        let server = ctx.remaining().saturating_sub(DEADLINE_MARGIN);
        let allowed = self.manifest.timeout.map_or(server, |own| own.min(server));
        (tokio::time::Instant::now() + allowed, allowed)
    }

    fn failure(&self, what: impl std::fmt::Display) -> ToolResult {
        ToolResult::error(format!("plugin {:?} {what}", self.manifest.name))
    }

    fn timed_out(&self, allowed: Duration) -> ToolResult {
        self.failure(format_args!(
            "did not answer within {:.1} s, so it was stopped (its whole process group \
             killed); raise sandbox.timeout in its manifest or tools.timeout in the policy if \
             it needs longer",
            allowed.as_secs_f64()
        ))
    }

    async fn call_once(&self, request: Vec<u8>, ctx: CallContext) -> ToolResult {
        let (deadline, allowed) = self.deadline(&ctx);
        let (mut process, pipes) = match PluginProcess::spawn(&mut self.launcher.command()) {
            Ok(started) => started,
            Err(error) => return self.failure(format_args!("could not be started: {error}")),
        };
        let cap = self.manifest.limits.output_bytes as usize;
        let Pipes {
            mut stdin,
            mut stdout,
            mut stderr,
        } = pipes;
        let killer = process.killer();
        let exchange = async {
            let write = async move {
                // A plugin may exit without reading; its answer still counts.
                let _ = stdin.write_all(&request).await;
            };
            let read = async move {
                let output = process::read_capped(&mut stdout, cap).await;
                if output.is_err() {
                    killer.kill();
                }
                output
            };
            let read_errors = async move { process::read_stderr(&mut stderr).await };
            // Children may hold the pipes open after the plugin exits: when it exits, they go
            // with it (its exited but unreaped pid keeps the group id from being reused), and
            // the pipes reach their end.
            let descendants = async {
                if self.manifest.limits.processes > 0 && process.exited().await.is_ok() {
                    killer.kill_group();
                }
            };
            let ((), output, errors, ()) = tokio::join!(write, read, read_errors, descendants);
            let status = process.wait().await;
            (output, errors, status)
        };
        let finished = tokio::select! {
            biased;
            finished = exchange => Some(finished),
            () = ctx.cancelled() => None,
            () = tokio::time::sleep_until(deadline) => None,
        };
        let Some((output, errors, status)) = finished else {
            process.kill_and_reap().await;
            return if ctx.is_cancelled() {
                self.failure("was cancelled")
            } else {
                self.timed_out(allowed)
            };
        };
        process::log_stderr(&self.manifest.name, &errors);
        let tail = process::stderr_tail(&errors);
        let output = match output {
            Err(_) => {
                return self.failure(format_args!(
                    "printed more than {cap} bytes (sandbox.limits.output_bytes), so it was \
                     stopped"
                ));
            }
            Ok(output) => output,
        };
        let status = match status {
            Ok(status) => status,
            Err(error) => return self.failure(format_args!("could not be waited for: {error}")),
        };
        let answer = response::parse(&output);
        if !status.success() {
            let said = match answer {
                Ok(result) => format!("\nit said: {}", text_of(&result)),
                Err(_) => String::new(),
            };
            return self.failure(format_args!(
                "{}{said}{tail}",
                process::describe_exit(status)
            ));
        }
        answer.unwrap_or_else(|problem| self.failure(format_args!("{problem}{tail}")))
    }
}

/// The text blocks of a result, joined.
fn text_of(result: &ToolResult) -> String {
    result
        .content
        .iter()
        .map(|block| match block {
            super::Content::Text { text } => text.as_str(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One request line: `{"tool": NAME, "arguments": {…}}` and a newline.
fn request_line(tool: &str, arguments: Map<String, Value>) -> Vec<u8> {
    let mut line = json!({"tool": tool, "arguments": arguments})
        .to_string()
        .into_bytes();
    line.push(b'\n');
    line
}

impl Plugin for ExternalPlugin {
    fn name(&self) -> &str {
        &self.manifest.name
    }

    fn version(&self) -> &str {
        &self.manifest.version
    }

    fn tools(&self) -> Vec<ToolDefinition> {
        self.manifest.tools.clone()
    }

    fn call<'a>(
        &'a self,
        tool: &'a str,
        arguments: Map<String, Value>,
        ctx: CallContext,
    ) -> ToolFuture<'a> {
        let request = request_line(tool, arguments);
        Box::pin(async move {
            match &self.persistent {
                Some(persistent) => persistent.call(self, request, ctx).await,
                None => self.call_once(request, ctx).await,
            }
        })
    }
}
