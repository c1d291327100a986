//! `manifest.yaml` of an external plugin: the original project's format (`name`, `version`,
//! `type: external`, `executable`, `tools`), plus `mode` and a `sandbox` section.
//!
//! Loading checks everything that can be checked before the first call: the executable exists
//! and is executable, every grant exists and lies inside the policy's allowed paths, every
//! environment entry is well formed, every limit is in range. Errors name the manifest and key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::guard::PathRules;
use crate::plugins::{ToolAnnotations, ToolDefinition};

/// Largest manifest read.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// Default `sandbox.limits.open_files`.
const DEFAULT_OPEN_FILES: u64 = 256;
/// Default `sandbox.limits.file_size`: 16 MiB.
const DEFAULT_FILE_SIZE: u64 = 16 * 1024 * 1024;
/// Default `sandbox.limits.output_bytes`: 1 MiB.
const DEFAULT_OUTPUT_BYTES: u64 = 1024 * 1024;
/// Largest `sandbox.limits.output_bytes`: 64 MiB.
const MAX_OUTPUT_BYTES: u64 = 64 * 1024 * 1024;

/// Why a manifest cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[error("external plugin manifest {}: {key}: {message}", manifest.display())]
pub struct ManifestError {
    /// The manifest file.
    pub manifest: PathBuf,
    /// The key at fault (`.` for the whole file).
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// How the plugin process lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// One process per call (the original's contract).
    PerCall,
    /// One long-lived process, one JSON request and one JSON answer per line.
    Persistent,
}

/// One environment entry of the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvEntry {
    /// `NAME`: passed through from the server's environment when set there.
    Pass(String),
    /// `NAME=value`: set to this value.
    Set(String, String),
}

/// Resource limits after defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// CPU seconds per process; `None`: the deadline plus one second (per call) or no limit
    /// (persistent).
    pub cpu_seconds: Option<u64>,
    /// Open descriptors.
    pub open_files: u64,
    /// 0: the plugin may not start processes; otherwise RLIMIT_NPROC.
    pub processes: u64,
    /// Largest file the plugin may write.
    pub file_size: u64,
    /// Largest answer read from stdout.
    pub output_bytes: u64,
}

/// A checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file.
    pub path: PathBuf,
    /// Its directory (resolved): relative paths start here; the plugin may read beneath it.
    pub dir: PathBuf,
    /// The category name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// The executable, resolved.
    pub executable: PathBuf,
    /// Per call or persistent.
    pub mode: Mode,
    /// The tools, with closed argument schemas.
    pub tools: Vec<ToolDefinition>,
    /// Extra read grants (resolved, inside the policy's allowed paths).
    pub read: Vec<PathBuf>,
    /// Read-write grants (resolved, inside the policy's allowed paths).
    pub write: Vec<PathBuf>,
    /// The plugin's environment.
    pub env: Vec<EnvEntry>,
    /// The plugin's own deadline per call, when shorter than the policy's.
    pub timeout: Option<Duration>,
    /// Resource limits.
    pub limits: PluginLimits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    #[serde(rename = "type")]
    kind: String,
    executable: String,
    #[serde(default)]
    mode: Option<Mode>,
    tools: Vec<RawTool>,
    #[serde(default)]
    sandbox: RawSandbox,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    name: String,
    #[serde(default)]
    title: Option<String>,
    description: String,
    input_schema: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSandbox {
    read: Vec<String>,
    write: Vec<String>,
    env: Vec<String>,
    timeout: Option<f64>,
    limits: RawLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    cpu_seconds: Option<u64>,
    open_files: Option<u64>,
    processes: Option<u64>,
    file_size: Option<u64>,
    output_bytes: Option<u64>,
}

/// Reads and checks the manifest at `path`; grants must pass `rules` (the policy's paths).
///
/// # Errors
/// The first problem found, naming the key.
pub fn load(path: &Path, rules: &PathRules) -> Result<Manifest, ManifestError> {
    let fail = |key: &str, message: String| ManifestError {
        manifest: path.to_owned(),
        key: key.to_owned(),
        message,
    };
    let text = read_text(path).map_err(|message| fail(".", message))?;
    let mut failed_key = None;
    let raw: RawManifest = serde_saphyr::with_deserializer_from_str(&text, |deserializer| {
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            failed_key = Some(e.path().to_string());
            e.into_inner()
        })
    })
    .map_err(|e| {
        fail(
            failed_key.as_deref().unwrap_or("."),
            format!("{e}; see \"Writing an external plugin\" in the README"),
        )
    })?;
    let dir = path
        .parent()
        .and_then(|d| std::fs::canonicalize(d).ok())
        .ok_or_else(|| fail(".", "its directory cannot be resolved".into()))?;

    check_directory(&dir, rules, env_home().as_deref()).map_err(|m| fail(".", m))?;
    if raw.kind != "external" {
        return Err(fail(
            "type",
            format!("{:?} is not supported; write \"external\"", raw.kind),
        ));
    }
    if raw.version.trim().is_empty() {
        return Err(fail("version", "is empty; write e.g. \"1.0.0\"".into()));
    }
    let executable =
        resolve_executable(&dir, &raw.executable).map_err(|m| fail("executable", m))?;
    let mode = raw.mode.unwrap_or(Mode::PerCall);
    let read = grants(&dir, &raw.sandbox.read, rules, "sandbox.read", &fail)?;
    let write = grants(&dir, &raw.sandbox.write, rules, "sandbox.write", &fail)?;
    let env = raw
        .sandbox
        .env
        .iter()
        .enumerate()
        .map(|(i, entry)| env_entry(entry).map_err(|m| fail(&format!("sandbox.env[{i}]"), m)))
        .collect::<Result<Vec<_>, _>>()?;
    let timeout = raw
        .sandbox
        .timeout
        .map(|secs| {
            Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero() && d.as_secs() <= 86_400)
                .ok_or_else(|| {
                    fail(
                        "sandbox.timeout",
                        format!("{secs} is not a timeout; write seconds between 0 and 86400"),
                    )
                })
        })
        .transpose()?;
    let limits = limits(&raw.sandbox.limits).map_err(|(key, m)| fail(key, m))?;
    // Nothing to write: the tools cannot change anything (the kernel enforces it).
    let annotations = ToolAnnotations {
        read_only: write.is_empty(),
        destructive: !write.is_empty(),
        idempotent: false,
        open_world: false,
    };
    let tools = raw
        .tools
        .into_iter()
        .enumerate()
        .map(|(i, tool)| {
            Ok(ToolDefinition {
                name: tool.name,
                title: tool.title,
                description: tool.description,
                input_schema: closed_schema(tool.input_schema)
                    .map_err(|m| fail(&format!("tools[{i}].input_schema"), m))?,
                output_schema: None,
                annotations,
            })
        })
        .collect::<Result<Vec<_>, ManifestError>>()?;
    if tools.is_empty() {
        return Err(fail(
            "tools",
            "lists no tools; a plugin needs at least one".into(),
        ));
    }
    Ok(Manifest {
        path: path.to_owned(),
        dir,
        name: raw.name,
        version: raw.version,
        executable,
        mode,
        tools,
        read,
        write,
        env,
        timeout,
        limits,
    })
}

fn env_home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .and_then(|h| std::fs::canonicalize(h).ok())
}

/// The plugin may read its manifest's directory, so that directory must be the plugin's own:
/// not `/`, not the home directory or above it, and not inside `filesystem.denied_paths`.
fn check_directory(dir: &Path, rules: &PathRules, home: Option<&Path>) -> Result<(), String> {
    let shared = dir == Path::new("/") || home.is_some_and(|home| home.starts_with(dir));
    if shared {
        return Err(format!(
            "its directory {} would be readable by the plugin; put each plugin in a directory of \
             its own",
            dir.display()
        ));
    }
    match rules.check(&dir.to_string_lossy()) {
        Err(denial) if denial.rule.starts_with("filesystem.denied_paths") => Err(format!(
            "its directory {} is denied by {} ({}); a plugin may read its directory, so move it",
            dir.display(),
            denial.rule,
            denial.message
        )),
        _ => Ok(()),
    }
}

fn read_text(path: &Path) -> Result<String, String> {
    crate::policy::read_text_at_most(path, MAX_MANIFEST_BYTES)
        .map_err(|e| format!("cannot be read as UTF-8 text: {e}"))?
        .ok_or_else(|| {
            format!("is larger than {MAX_MANIFEST_BYTES} bytes; a manifest is a short YAML file")
        })
}

/// `written` relative to `dir` (or absolute), resolved, a regular file with an execute bit.
fn resolve_executable(dir: &Path, written: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let joined = dir.join(written);
    let resolved = std::fs::canonicalize(&joined)
        .map_err(|e| format!("{} cannot be resolved: {e}", joined.display()))?;
    let meta = std::fs::metadata(&resolved).map_err(|e| format!("{}: {e}", resolved.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "{} is not an executable file; build it, or run `chmod +x` on it",
            resolved.display()
        ));
    }
    Ok(resolved)
}

/// Resolves each grant (relative to `dir`) and checks it against the policy's path rules.
fn grants(
    dir: &Path,
    written: &[String],
    rules: &PathRules,
    key: &str,
    fail: &dyn Fn(&str, String) -> ManifestError,
) -> Result<Vec<PathBuf>, ManifestError> {
    let mut resolved = Vec::new();
    for (i, entry) in written.iter().enumerate() {
        let key = format!("{key}[{i}]");
        let expanded = if entry.starts_with('~') || entry.starts_with('/') {
            entry.clone()
        } else {
            dir.join(entry).to_string_lossy().into_owned()
        };
        let allowed = rules.check(&expanded).map_err(|denial| {
            fail(
                &key,
                format!(
                    "{entry:?} is outside what the policy allows ({}): {}; a plugin gets at \
                     most the server's own access, so add the path to filesystem.allowed_paths \
                     or remove the grant",
                    denial.rule, denial.message
                ),
            )
        })?;
        let path = PathBuf::from(allowed);
        if !path.exists() {
            return Err(fail(
                &key,
                format!("{} does not exist; create it", path.display()),
            ));
        }
        resolved.push(path);
    }
    Ok(resolved)
}

fn env_entry(entry: &str) -> Result<EnvEntry, String> {
    let (name, value) = match entry.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (entry, None),
    };
    let valid = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid || entry.contains('\0') {
        return Err(format!(
            "{entry:?} is not NAME or NAME=value (NAME is letters, digits and '_')"
        ));
    }
    Ok(match value {
        Some(value) => EnvEntry::Set(name.to_owned(), value.to_owned()),
        None => EnvEntry::Pass(name.to_owned()),
    })
}

fn limits(raw: &RawLimits) -> Result<PluginLimits, (&'static str, String)> {
    let positive = |key: &'static str, value: Option<u64>, default: u64, max: u64| {
        let value = value.unwrap_or(default);
        if value == 0 || value > max {
            return Err((key, format!("{value} is out of range; write 1 to {max}")));
        }
        Ok(value)
    };
    Ok(PluginLimits {
        cpu_seconds: raw
            .cpu_seconds
            .map(|v| positive("sandbox.limits.cpu_seconds", Some(v), 1, 86_400))
            .transpose()?,
        open_files: positive(
            "sandbox.limits.open_files",
            raw.open_files,
            DEFAULT_OPEN_FILES,
            65_536,
        )?,
        processes: match raw.processes {
            None | Some(0) => 0,
            Some(n) => positive("sandbox.limits.processes", Some(n), 1, 4096)?,
        },
        file_size: positive(
            "sandbox.limits.file_size",
            raw.file_size,
            DEFAULT_FILE_SIZE,
            1 << 40,
        )?,
        output_bytes: positive(
            "sandbox.limits.output_bytes",
            raw.output_bytes,
            DEFAULT_OUTPUT_BYTES,
            MAX_OUTPUT_BYTES,
        )?,
    })
}

/// The original's schemas leave `additionalProperties` out; we close them (an unknown argument
/// is refused before the process starts). A manifest that sets it to `true` is refused by the
/// registry, with its message.
fn closed_schema(mut schema: Value) -> Result<Value, String> {
    let Some(object) = schema.as_object_mut() else {
        return Err("must be a JSON Schema object with \"type\": \"object\"".into());
    };
    object
        .entry("additionalProperties")
        .or_insert(Value::Bool(false));
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_directory_must_be_its_own() {
        let policy = crate::policy::parse(
            "filesystem:\n  allowed_paths: [\"/srv/**\"]\n  denied_paths: [\"**/.ssh/**\"]\n",
            &crate::policy::PolicySource::Embedded,
            &|name| (name == "HOME").then(|| "/home/ann".to_owned()),
        )
        .unwrap();
        let rules = PathRules::new(&policy.filesystem, None, "/".into());
        let home = Some(Path::new("/home/ann"));
        let check = |dir: &str| check_directory(Path::new(dir), &rules, home);
        for shared in ["/", "/home", "/home/ann"] {
            assert!(check(shared).unwrap_err().contains("own"), "{shared}");
        }
        assert!(
            check("/home/ann/.ssh/plugin")
                .unwrap_err()
                .contains("denied_paths")
        );
        check("/opt/mcp-plugins/hash").unwrap();
        check("/home/ann/plugins/hash").unwrap();
    }

    #[test]
    fn environment_entries() {
        assert_eq!(env_entry("LANG").unwrap(), EnvEntry::Pass("LANG".into()));
        assert_eq!(
            env_entry("MODE=fast=1").unwrap(),
            EnvEntry::Set("MODE".into(), "fast=1".into())
        );
        for bad in ["", "1X", "A-B", "=x", "A B"] {
            assert!(env_entry(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn schemas_are_closed_unless_they_say_otherwise() {
        let closed = closed_schema(serde_json::json!({"type": "object"})).unwrap();
        assert_eq!(closed["additionalProperties"], false);
        let open =
            closed_schema(serde_json::json!({"type": "object", "additionalProperties": true}))
                .unwrap();
        assert_eq!(open["additionalProperties"], true);
        assert!(closed_schema(serde_json::json!(["x"])).is_err());
    }

    #[test]
    fn limits_have_defaults_and_ranges() {
        let defaults = limits(&RawLimits::default()).unwrap();
        assert_eq!(defaults.processes, 0);
        assert_eq!(defaults.output_bytes, DEFAULT_OUTPUT_BYTES);
        assert_eq!(defaults.cpu_seconds, None);
        let too_big = RawLimits {
            output_bytes: Some(MAX_OUTPUT_BYTES + 1),
            ..RawLimits::default()
        };
        assert_eq!(
            limits(&too_big).unwrap_err().0,
            "sandbox.limits.output_bytes"
        );
    }
}
