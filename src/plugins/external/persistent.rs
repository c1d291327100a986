//! `mode: persistent`: one long-lived plugin process, one JSON request line in, one JSON answer
//! line out, one call at a time. Started on the first call; a process that dies, overstays or
//! answers badly is killed and replaced on the next call, so a stream that lost its place is
//! never reused.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::Mutex;

use super::process::{self, Pipes, PluginProcess};
use super::{ExternalPlugin, response};
use crate::plugins::{CallContext, ToolResult};

/// stderr of one long-lived process that reaches the server log.
const STDERR_LOGGED_PER_PROCESS: usize = 1024 * 1024;

/// The long-lived process, when one is running.
#[derive(Debug, Default)]
pub struct Persistent {
    live: Mutex<Option<Live>>,
}

#[derive(Debug)]
struct Live {
    process: PluginProcess,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// What reading one answer line found.
enum Line {
    Answer(Vec<u8>),
    End,
    TooLong,
}

impl Persistent {
    /// Runs one call on the live process (starting it if needed).
    pub async fn call(
        &self,
        plugin: &ExternalPlugin,
        request: Vec<u8>,
        ctx: CallContext,
    ) -> ToolResult {
        let (deadline, allowed) = plugin.deadline(&ctx);
        let cap = plugin.manifest.limits.output_bytes as usize;
        // Waiting for the previous call counts against this call's deadline.
        let exchange = async {
            let mut slot = self.live.lock().await;
            // Output nobody asked for (a second answer, a late one) means the stream lost its
            // place, and so does an end: start over rather than answer from it.
            let mut reusable = slot.take();
            if let Some(live) = reusable.as_mut()
                && unexpected_output(&mut live.stdout).await
            {
                tracing::warn!(
                    plugin = %plugin.manifest.name,
                    "the persistent plugin printed output between calls or ended; restarting it"
                );
                // Dropping it kills it.
                reusable = None;
            }
            let mut live = match reusable {
                Some(live) => live,
                None => match start(plugin) {
                    Ok(live) => live,
                    Err(error) => {
                        return plugin.failure(format_args!("could not be started: {error}"));
                    }
                },
            };
            if let Err(error) = live.stdin.write_all(&request).await {
                let status = live.process.kill_and_reap().await;
                let how = status.map_or_else(String::new, process::describe_exit);
                return plugin.failure(format_args!(
                    "stopped reading requests ({error}) {how}; it is restarted on the next call"
                ));
            }
            match read_line(&mut live.stdout, cap).await {
                Line::Answer(line) => match response::parse(&line) {
                    Ok(result) => {
                        *slot = Some(live);
                        result
                    }
                    Err(problem) => plugin.failure(format_args!(
                        "{problem}; it was restarted, as its output can no longer be trusted"
                    )),
                },
                Line::TooLong => plugin.failure(format_args!(
                    "printed an answer line longer than {cap} bytes \
                     (sandbox.limits.output_bytes), so it was stopped"
                )),
                Line::End => {
                    let status = live.process.wait().await;
                    let how = status.map_or_else(|e| e.to_string(), process::describe_exit);
                    plugin.failure(format_args!(
                        "{how} without answering; it is restarted on the next call"
                    ))
                }
            }
        };
        // A dropped exchange drops its `Live`, which kills the process group.
        tokio::select! {
            biased;
            result = exchange => result,
            () = ctx.cancelled() => plugin.failure("was cancelled"),
            () = tokio::time::sleep_until(deadline) => plugin.timed_out(allowed),
        }
    }
}

fn start(plugin: &ExternalPlugin) -> std::io::Result<Live> {
    let (process, pipes) = PluginProcess::spawn(&mut plugin.launcher.command())?;
    let Pipes {
        stdin,
        stdout,
        mut stderr,
    } = pipes;
    let name = plugin.manifest.name.clone();
    // Logged as it comes, one bounded chunk at a time, up to a budget per process (a plugin
    // must not fill the server's log); the rest is read and discarded.
    tokio::spawn(async move {
        let mut logged = 0;
        loop {
            let chunk = process::read_stderr_chunk(&mut stderr).await;
            if chunk.is_empty() {
                return;
            }
            if logged < STDERR_LOGGED_PER_PROCESS {
                logged += chunk.len();
                process::log_stderr(&name, &chunk);
                if logged >= STDERR_LOGGED_PER_PROCESS {
                    tracing::warn!(
                        plugin = %name,
                        "the persistent plugin wrote {STDERR_LOGGED_PER_PROCESS} bytes to stderr; \
                         the rest is discarded until it restarts"
                    );
                }
            }
        }
    });
    Ok(Live {
        process,
        stdin,
        stdout: BufReader::new(stdout),
    })
}

/// Whether the plugin printed something (or closed stdout) while no call was waiting.
async fn unexpected_output(stdout: &mut BufReader<ChildStdout>) -> bool {
    if !stdout.buffer().is_empty() {
        return true;
    }
    // Polled once: ready means bytes or the end of the stream; pending means quiet. (Not a
    // zero timeout: the timer's millisecond tick would delay every call.)
    let mut fill = std::pin::pin!(stdout.fill_buf());
    std::future::poll_fn(|cx| std::task::Poll::Ready(fill.as_mut().poll(cx).is_ready())).await
}

/// Reads up to a newline, keeping at most `cap` bytes; empty lines are skipped.
async fn read_line(reader: &mut BufReader<ChildStdout>, cap: usize) -> Line {
    let mut line = Vec::new();
    loop {
        let available = match reader.fill_buf().await {
            Ok([]) | Err(_) => return Line::End,
            Ok(available) => available,
        };
        let (take, complete) = match memchr::memchr(b'\n', available) {
            Some(end) => (end, true),
            None => (available.len(), false),
        };
        if line.len() + take > cap {
            return Line::TooLong;
        }
        line.extend_from_slice(&available[..take]);
        reader.consume(take + usize::from(complete));
        if complete {
            if line.trim_ascii().is_empty() {
                line.clear();
                continue;
            }
            return Line::Answer(line);
        }
    }
}
