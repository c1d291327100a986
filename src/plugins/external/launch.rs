//! How a plugin is started: which file is executed (the executable itself, or the interpreter
//! named by its `#!` line), which files must be executable for that (the ELF loader too), and
//! the helper command line that runs it in its own sandbox.
//!
//! A `#!/usr/bin/env node` line is resolved with the server's `PATH` at start-up and the
//! interpreter is executed directly: the plugin gets no `PATH` and no right to execute `env`.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::policy::SandboxMode;
use crate::sandbox::child::{ChildLimits, ChildSpec, HELPER_ARG};

use super::manifest::{EnvEntry, Manifest, Mode};

/// Read beneath these (when present) by every plugin: shared libraries and the loader cache.
/// Interpreters keep their standard libraries here too (`/usr/lib/python3.11`).
pub const RUNTIME_READ: [&str; 8] = [
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/etc/ld.so.cache",
    "/etc/localtime",
    // OpenSSL (linked into Node.js) refuses to start without its configuration.
    "/etc/ssl/openssl.cnf",
];

/// [`RUNTIME_READ`] as they exist on this machine, resolved (`/lib` is often a symlink to
/// `/usr/lib`, `/etc/localtime` one to a zone file), each once.
pub fn runtime_read() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = RUNTIME_READ
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// Longest `#!` line read.
const MAX_SHEBANG: usize = 256;

/// What exactly runs for a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The file executed.
    pub program: PathBuf,
    /// Its arguments (the interpreter's option and the script).
    pub args: Vec<String>,
    /// Files that need read+execute: the program and its ELF loader.
    pub execute: Vec<PathBuf>,
}

/// Resolves `executable` (already canonical): scripts run through their interpreter.
///
/// # Errors
/// The file cannot be read, names an interpreter that cannot be found, or is not an ELF file
/// this build understands.
pub fn program(executable: &Path, path_var: Option<&str>) -> Result<Program, String> {
    let head = read_head(executable)?;
    let (program, args) = match head.strip_prefix(b"#!") {
        Some(rest) => {
            let (interpreter, option) = interpreter(rest, path_var)
                .map_err(|m| format!("{}: the #! line {m}", executable.display()))?;
            let script = utf8(executable)?;
            (interpreter, option.into_iter().chain([script]).collect())
        }
        None => (executable.to_owned(), Vec::new()),
    };
    let mut execute = vec![program.clone()];
    if let Some(loader) = elf_loader(&program)? {
        execute.push(loader);
    }
    Ok(Program {
        program,
        args,
        execute,
    })
}

fn read_head(path: &Path) -> Result<Vec<u8>, String> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SHEBANG as u64).read_to_end(&mut head))
        .map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
    Ok(head)
}

fn utf8(path: &Path) -> Result<String, String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{} is not a UTF-8 path", path.display()))
}

/// The interpreter and its one optional argument from a `#!` line (after `#!`).
fn interpreter(line: &[u8], path_var: Option<&str>) -> Result<(PathBuf, Option<String>), String> {
    let end = line
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("is longer than 256 bytes or has no end")?;
    let text = std::str::from_utf8(&line[..end]).map_err(|_| "is not UTF-8".to_owned())?;
    let mut words = text.split_ascii_whitespace();
    let first = words.next().ok_or("names no interpreter")?;
    let rest: Vec<&str> = words.collect();
    let (named, option) = if Path::new(first).file_name() == Some("env".as_ref()) {
        match rest.as_slice() {
            [name] => (find_in_path(name, path_var)?, None),
            _ => return Err("must be \"#!/usr/bin/env NAME\" with exactly one name".into()),
        }
    } else {
        let option = match rest.as_slice() {
            [] => None,
            [one] => Some((*one).to_owned()),
            _ => return Err("passes more than one argument to the interpreter".into()),
        };
        (PathBuf::from(first), option)
    };
    let resolved = std::fs::canonicalize(&named)
        .map_err(|e| format!("names {}, which cannot be resolved: {e}", named.display()))?;
    Ok((resolved, option))
}

fn find_in_path(name: &str, path_var: Option<&str>) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    path_var
        .unwrap_or("/usr/local/bin:/usr/bin:/bin")
        .split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| format!("names {name:?}, which is not in the server's PATH"))
}

/// The ELF program interpreter (`PT_INTERP`, the dynamic loader) of `path`, resolved; `None`
/// for a static executable.
///
/// # Errors
/// Not a 64-bit little-endian ELF file, or a malformed one.
pub fn elf_loader(path: &Path) -> Result<Option<PathBuf>, String> {
    use std::os::unix::fs::FileExt;
    const PT_INTERP: u32 = 3;
    // A program header table larger than this is not a real executable.
    const MAX_TABLE: usize = 64 * 1024;
    let bad = |what: &str| format!("{}: {what}", path.display());
    let file = std::fs::File::open(path).map_err(|e| bad(&format!("cannot be read: {e}")))?;
    // Reads only the headers: an interpreter such as node is 100 MB.
    let read_at = |offset: u64, len: usize| {
        let mut buffer = vec![0; len];
        file.read_exact_at(&mut buffer, offset)
            .ok()
            .map(|()| buffer)
    };
    let malformed = || bad("is a malformed ELF file");
    let mut header = Vec::with_capacity(64);
    (&file)
        .take(64)
        .read_to_end(&mut header)
        .map_err(|e| bad(&format!("cannot be read: {e}")))?;
    if header.get(..4) != Some(b"\x7fELF") {
        return Err(bad(
            "is neither an ELF executable nor a script starting with #!",
        ));
    }
    if header.get(4..6) != Some(&[2, 1]) {
        return Err(bad("is not a 64-bit little-endian ELF file"));
    }
    let u16_at = |b: &[u8], at: usize| b.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let u64_at = |b: &[u8], at: usize| {
        b.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if header.len() < 64 {
        return Err(malformed());
    }
    let table_offset = u64_at(&header, 0x20).ok_or_else(malformed)?;
    let entry_size = usize::from(u16_at(&header, 0x36).ok_or_else(malformed)?);
    let entries = usize::from(u16_at(&header, 0x38).ok_or_else(malformed)?);
    let table_size = entry_size
        .checked_mul(entries)
        .filter(|size| *size <= MAX_TABLE)
        .ok_or_else(malformed)?;
    let table = read_at(table_offset, table_size).ok_or_else(malformed)?;
    for entry in table.chunks_exact(entry_size.max(1)) {
        if u32_at(entry, 0).ok_or_else(malformed)? != PT_INTERP {
            continue;
        }
        let offset = u64_at(entry, 8).ok_or_else(malformed)?;
        let size = u64_at(entry, 32)
            .and_then(|size| usize::try_from(size).ok())
            .filter(|size| *size <= 4096)
            .ok_or_else(malformed)?;
        let text = read_at(offset, size).ok_or_else(malformed)?;
        let name = text.split(|b| *b == 0).next().unwrap_or_default();
        let name = std::str::from_utf8(name).map_err(|_| malformed())?;
        let loader = std::fs::canonicalize(name).map_err(|e| {
            bad(&format!(
                "needs the loader {name}, which cannot be resolved: {e}"
            ))
        })?;
        return Ok(Some(loader));
    }
    Ok(None)
}

/// The plugin's environment from the manifest and the server's environment.
pub fn environment(
    entries: &[EnvEntry],
    server_env: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    entries
        .iter()
        .filter_map(|entry| match entry {
            EnvEntry::Pass(name) => server_env(name).map(|value| (name.clone(), value)),
            EnvEntry::Set(name, value) => Some((name.clone(), value.clone())),
        })
        .collect()
}

/// Everything needed to start one plugin process.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// Our own binary, which runs the helper mode.
    pub helper: PathBuf,
    /// The helper's specification.
    pub spec: ChildSpec,
    /// `spec` as the helper's argument.
    spec_json: String,
    /// The plugin's environment.
    pub env: Vec<(String, String)>,
    /// Its working directory.
    pub cwd: PathBuf,
}

impl Launcher {
    /// The launcher of `manifest`'s plugin; `deadline_secs` bounds CPU time per call.
    ///
    /// # Errors
    /// A path is not UTF-8 (the specification travels as JSON).
    pub fn new(
        manifest: &Manifest,
        program: &Program,
        helper: PathBuf,
        env: Vec<(String, String)>,
        deadline_secs: u64,
        mode: SandboxMode,
    ) -> Result<Self, String> {
        let read = runtime_read()
            .into_iter()
            .chain([manifest.dir.clone(), manifest.executable.clone()])
            .chain(manifest.read.iter().cloned())
            .collect();
        let cpu_seconds = match (manifest.limits.cpu_seconds, manifest.mode) {
            (Some(seconds), _) => Some(seconds),
            (None, Mode::PerCall) => Some(deadline_secs.saturating_add(1)),
            (None, Mode::Persistent) => None,
        };
        let spec = ChildSpec {
            program: program.program.clone(),
            args: program.args.clone(),
            read,
            execute: program.execute.clone(),
            write: manifest.write.clone(),
            limits: ChildLimits {
                cpu_seconds,
                open_files: manifest.limits.open_files,
                file_size: manifest.limits.file_size,
                processes: manifest.limits.processes,
            },
            server_pid: std::process::id() as i32,
            mode,
        };
        let spec_json = serde_json::to_string(&spec).map_err(|e| {
            format!("a path of this plugin cannot be passed to its sandbox ({e}); use UTF-8 paths")
        })?;
        Ok(Launcher {
            helper,
            spec,
            spec_json,
            env,
            cwd: manifest.dir.clone(),
        })
    }

    /// The command that starts the plugin in its sandbox, with piped stdio, a cleared
    /// environment, and killed (and reaped) when dropped.
    pub fn command(&self) -> tokio::process::Command {
        use std::process::Stdio;
        let mut command = tokio::process::Command::new(&self.helper);
        command
            .arg(HELPER_ARG)
            .arg(&self.spec_json)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines() {
        let (path, option) = interpreter(b"/bin/sh -e\n", None).unwrap();
        assert!(path.is_absolute());
        assert_eq!(option.as_deref(), Some("-e"));
        let (found, none) = interpreter(b"/usr/bin/env sh\n", Some("/nonexistent:/bin")).unwrap();
        assert!(found.ends_with("sh") || found.ends_with("dash") || found.ends_with("bash"));
        assert_eq!(none, None);
        assert!(interpreter(b"/usr/bin/env -S a b\n", None).is_err());
        assert!(interpreter(b"/usr/bin/env nope-not-here\n", Some("/bin")).is_err());
        assert!(interpreter(b"/bin/sh", None).is_err(), "no end of line");
        assert!(interpreter(b"\n", None).is_err());
    }

    #[test]
    fn the_loader_of_a_dynamic_executable_is_found() {
        let exe = std::env::current_exe().unwrap();
        let loader = elf_loader(&exe)
            .unwrap()
            .expect("a dynamically linked test binary");
        assert!(loader.to_string_lossy().contains("ld-linux"), "{loader:?}");
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "echo").unwrap();
        assert!(elf_loader(&script).unwrap_err().contains("neither an ELF"));
        let truncated = dir.path().join("t");
        std::fs::write(&truncated, b"\x7fELF\x02\x01\x01").unwrap();
        assert!(elf_loader(&truncated).unwrap_err().contains("malformed"));
    }
}
