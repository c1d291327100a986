//! One plugin process: started in its sandbox, fed, read with caps, and killed with its whole
//! process group when it overstays or when the call is dropped.
//!
//! The helper makes the plugin a session (and process group) leader, and the plugin's seccomp
//! filter refuses `setsid` and `setpgid`, so every descendant stays in that group: one
//! `kill(-pid, SIGKILL)` reaches them all.

use std::process::ExitStatus;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};

use crate::sandbox::child::HELPER_FAILED;

/// stderr kept per call (or per line in persistent mode) for the log and the error text.
pub const STDERR_KEPT: usize = 64 * 1024;
/// stderr bytes quoted in a tool error.
const STDERR_QUOTED: usize = 1024;

/// A started plugin process; dropping it kills the process group and reaps the process.
#[derive(Debug)]
pub struct PluginProcess {
    /// `None` once reaped (or handed to the reaper task).
    child: Option<Child>,
    pid: Option<Pid>,
}

/// The plugin's end of its standard streams.
#[derive(Debug)]
pub struct Pipes {
    /// Its stdin.
    pub stdin: ChildStdin,
    /// Its stdout.
    pub stdout: ChildStdout,
    /// Its stderr.
    pub stderr: ChildStderr,
}

impl PluginProcess {
    /// Starts `command` (from `Launcher::command`, with piped stdio).
    ///
    /// # Errors
    /// The helper could not be started.
    pub fn spawn(command: &mut tokio::process::Command) -> std::io::Result<(Self, Pipes)> {
        let mut child = command.spawn()?;
        let pid = child.id().and_then(|id| Pid::from_raw(id as i32));
        let missing = || std::io::Error::other("the plugin's pipes are missing");
        let pipes = Pipes {
            stdin: child.stdin.take().ok_or_else(missing)?,
            stdout: child.stdout.take().ok_or_else(missing)?,
            stderr: child.stderr.take().ok_or_else(missing)?,
        };
        Ok((
            PluginProcess {
                child: Some(child),
                pid,
            },
            pipes,
        ))
    }

    /// A handle that can kill the process while its I/O is borrowed elsewhere. Use it only
    /// before the process is reaped.
    pub fn killer(&self) -> Killer {
        Killer { pid: self.pid }
    }

    /// Kills and waits for the process, so no zombie or descendant is left behind.
    pub async fn kill_and_reap(&mut self) -> Option<ExitStatus> {
        self.killer().kill();
        self.wait().await.ok()
    }

    /// Waits until the process has exited, without reaping it: until it is reaped its pid stays
    /// taken, so its process group can still be killed safely.
    pub async fn exited(&self) -> std::io::Result<()> {
        let pid = self
            .pid
            .ok_or_else(|| std::io::Error::other("the plugin was already reaped"))?;
        use rustix::process::{WaitId, WaitIdOptions};
        // A blocking thread: waitid(WNOWAIT) has no asynchronous form. It returns when the
        // process exits, which a dropped call makes happen at once (the drop kills it).
        tokio::task::spawn_blocking(move || {
            rustix::process::waitid(
                WaitId::Pid(pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
            )
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(())
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the plugin was already reaped"))?;
        let status = child.wait().await;
        if status.is_ok() {
            // Reaped: the pid may be reused from now on, so never signal it again.
            self.pid = None;
            self.child = None;
        }
        status
    }
}

impl Drop for PluginProcess {
    /// A call dropped mid-way (deadline or cancellation in the dispatcher): kill the group now
    /// and reap the process in the background, so no zombie waits for tokio's next clean-up.
    fn drop(&mut self) {
        self.killer().kill();
        if let Some(mut child) = self.child.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = child.wait().await;
            });
        }
    }
}

/// Kills a plugin's process group (see [`PluginProcess::killer`]).
#[derive(Debug, Clone, Copy)]
pub struct Killer {
    pid: Option<Pid>,
}

impl Killer {
    /// Kills the group and the process.
    pub fn kill(self) {
        if let Some(pid) = self.pid {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
    }

    /// Kills the rest of the group once the leader has exited (call it before reaping the
    /// leader, see [`PluginProcess::exited`]).
    pub fn kill_group(self) {
        if let Some(pid) = self.pid {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
    }
}

/// Reads `reader` to its end, keeping at most `cap` bytes; `Err(kept)` when there was more.
pub async fn read_capped(
    reader: &mut (impl AsyncRead + Unpin),
    cap: usize,
) -> Result<Vec<u8>, Vec<u8>> {
    let mut kept = Vec::new();
    let mut limited = reader.take(cap as u64 + 1);
    if limited.read_to_end(&mut kept).await.is_err() {
        return Ok(kept);
    }
    if kept.len() > cap {
        kept.truncate(cap);
        return Err(kept);
    }
    Ok(kept)
}

/// Reads `reader` to its end, keeping the first [`STDERR_KEPT`] bytes and discarding the rest
/// (a plugin that fills stderr must not block on it).
pub async fn read_stderr(reader: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..n.min(room)]);
            }
        }
    }
}

/// One read of a long-lived plugin's stderr (at most 8 KiB); empty at its end.
pub async fn read_stderr_chunk(reader: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut chunk = vec![0u8; 8192];
    match reader.read(&mut chunk).await {
        Ok(n) => {
            chunk.truncate(n);
            chunk
        }
        Err(_) => Vec::new(),
    }
}

/// Logs a plugin's stderr (it goes to the server log only, never to the client unasked).
pub fn log_stderr(plugin: &str, stderr: &[u8]) {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim_end();
    if !text.is_empty() {
        tracing::info!(plugin, stderr = %text, "plugin stderr");
    }
}

/// What an exit status means, for a tool error ("exited with status 3", "was killed by
/// signal 9 (SIGKILL)"), with a hint where one helps.
pub fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        if code == HELPER_FAILED {
            return format!(
                "could not be started in its sandbox (exit status {code}); the server log \
                 has the reason"
            );
        }
        return format!("exited with status {code}");
    }
    let signal = status.signal().unwrap_or(0);
    let name = match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        libc::SIGBUS => "SIGBUS",
        libc::SIGTERM => "SIGTERM",
        _ => "",
    };
    let hint = match signal {
        libc::SIGXCPU => ": it used up sandbox.limits.cpu_seconds",
        libc::SIGXFSZ => ": it wrote a file larger than sandbox.limits.file_size",
        libc::SIGSYS => {
            ": it made a system call that the seccomp policy kills (sandbox.seccomp_action: kill)"
        }
        _ => "",
    };
    if name.is_empty() {
        format!("was killed by signal {signal}{hint}")
    } else {
        format!("was killed by signal {signal} ({name}){hint}")
    }
}

/// The end of a plugin's stderr, for a tool error; empty when there is none.
pub fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let start = text
        .char_indices()
        .map(|(i, _)| i)
        .find(|i| text.len() - i <= STDERR_QUOTED)
        .unwrap_or(0);
    format!("\nstderr: {}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exit_statuses_are_named() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert!(describe_exit(ExitStatus::from_raw(libc::SIGSEGV)).contains("(SIGSEGV)"));
        assert!(describe_exit(ExitStatus::from_raw(libc::SIGXCPU)).contains("cpu_seconds"));
        assert!(describe_exit(ExitStatus::from_raw(HELPER_FAILED << 8)).contains("sandbox"));
    }

    #[tokio::test]
    async fn reads_are_capped() {
        let mut small: &[u8] = b"12345";
        assert_eq!(read_capped(&mut small, 5).await, Ok(b"12345".to_vec()));
        let mut big: &[u8] = b"123456";
        assert_eq!(read_capped(&mut big, 5).await, Err(b"12345".to_vec()));
        let flood = vec![b'x'; STDERR_KEPT * 2];
        assert_eq!(read_stderr(&mut flood.as_slice()).await.len(), STDERR_KEPT);
    }

    #[test]
    fn stderr_tails_keep_the_end() {
        assert_eq!(stderr_tail(b"  \n"), "");
        let long = "é".repeat(2000);
        let tail = stderr_tail(long.as_bytes());
        assert!(tail.len() <= STDERR_QUOTED + 10 && tail.ends_with('é'));
    }
}
