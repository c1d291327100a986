//! A small, synchronous MCP client over a child process's stdio.
//!
//! Used by the `call` command, the integration tests and the benchmark. Reads happen on the
//! calling thread, with `poll(2)` for timeouts: no reader thread, so a round trip costs only
//! the two process wake-ups it must (a thread hop here would dominate the benchmark). Dropping
//! the client kills and reaps the child, so no test leaves a process behind.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

use serde_json::{Value, json};
use thiserror::Error;

/// Why a client operation failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Starting the server or talking to it failed.
    #[error("cannot talk to the server: {0}")]
    Io(#[from] std::io::Error),
    /// No answer within the time allowed.
    #[error("the server did not answer within {0:?}")]
    Timeout(Duration),
    /// The server closed its output (it exited).
    #[error("the server exited before answering (its stderr says why)")]
    Closed,
    /// The server wrote something that is not JSON.
    #[error("the server wrote a line that is not JSON: {0}")]
    NotJson(String),
    /// The server answered with a JSON-RPC error.
    #[error("the server answered with error {code}: {message}")]
    Rpc {
        /// The error code.
        code: i64,
        /// The error message.
        message: String,
    },
}

/// A running server and the pipes to it.
#[derive(Debug)]
pub struct StdioClient {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    /// Bytes read but not yet returned, from `consumed` on.
    pending: Vec<u8>,
    consumed: usize,
    eof: bool,
}

/// Bytes read from the server per `read(2)`.
const READ_CHUNK: usize = 64 * 1024;

impl StdioClient {
    /// Starts `command` with piped stdin/stdout (stderr is left as configured).
    ///
    /// # Errors
    /// The process could not be started.
    pub fn spawn(mut command: Command) -> Result<Self, ClientError> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("child stdout was not captured"))?;
        Ok(StdioClient {
            child,
            stdin,
            stdout,
            pending: Vec::new(),
            consumed: 0,
            eof: false,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes raw bytes to the server's stdin.
    ///
    /// # Errors
    /// The pipe is closed.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("stdin already closed"))?;
        stdin.write_all(bytes)?;
        stdin.flush()?;
        Ok(())
    }

    /// Writes one JSON message and a newline.
    ///
    /// # Errors
    /// The pipe is closed.
    pub fn send(&mut self, message: &Value) -> Result<(), ClientError> {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        self.send_raw(&line)
    }

    /// The next raw output line (with its newline).
    ///
    /// # Errors
    /// Timeout, or the server closed its output.
    pub fn recv_line(&mut self, timeout: Duration) -> Result<Vec<u8>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(newline) = memchr::memchr(b'\n', &self.pending[self.consumed..]) {
                let end = self.consumed + newline + 1;
                let line = self.pending[self.consumed..end].to_vec();
                self.consumed = end;
                if self.consumed == self.pending.len() {
                    self.pending.clear();
                    self.consumed = 0;
                }
                return Ok(line);
            }
            if self.eof {
                return Err(ClientError::Closed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.wait_readable(left)? {
                return Err(ClientError::Timeout(timeout));
            }
            let start = self.pending.len();
            self.pending.resize(start + READ_CHUNK, 0);
            let read = self.stdout.read(&mut self.pending[start..]);
            self.pending.truncate(start + *read.as_ref().unwrap_or(&0));
            match read {
                // After poll said readable, zero bytes means the server closed its stdout.
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Waits until the server's stdout has data or was closed; `false` on timeout.
    fn wait_readable(&self, timeout: Duration) -> Result<bool, ClientError> {
        let timeout = Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&self.stdout, PollFlags::IN)];
        loop {
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(ready) => return Ok(ready > 0),
                Err(rustix::io::Errno::INTR) => continue,
                Err(error) => return Err(std::io::Error::from(error).into()),
            }
        }
    }

    /// The next output line, parsed.
    ///
    /// # Errors
    /// Timeout, closed output, or a line that is not JSON.
    pub fn recv(&mut self, timeout: Duration) -> Result<Value, ClientError> {
        let line = self.recv_line(timeout)?;
        serde_json::from_slice(&line)
            .map_err(|_| ClientError::NotJson(String::from_utf8_lossy(&line).into_owned()))
    }

    /// Sends a request and waits for the response with the same id, skipping other messages.
    /// Returns the whole response message.
    ///
    /// # Errors
    /// Timeout, closed output, or a line that is not JSON.
    pub fn request(
        &mut self,
        id: Value,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self.recv(left)?;
            if message.get("id") == Some(&id) {
                return Ok(message);
            }
        }
    }

    /// Like [`StdioClient::request`], but returns the `result` member and turns an error
    /// response into [`ClientError::Rpc`].
    ///
    /// # Errors
    /// As `request`, plus JSON-RPC errors.
    pub fn call_method(
        &mut self,
        id: Value,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let response = self.request(id, method, params, timeout)?;
        if let Some(error) = response.get("error") {
            return Err(ClientError::Rpc {
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        Ok(response.get("result").cloned().unwrap_or(Value::Null))
    }

    /// Performs the `initialize` handshake and sends `notifications/initialized`.
    ///
    /// # Errors
    /// As `call_method`.
    pub fn initialize(&mut self, timeout: Duration) -> Result<Value, ClientError> {
        let result = self.call_method(
            json!(0),
            "initialize",
            json!({
                "protocolVersion": crate::mcp::protocol::LATEST_PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "mcp-secure-server-client", "version": crate::mcp::protocol::SERVER_VERSION}
            }),
            timeout,
        )?;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        Ok(result)
    }

    /// Closes the server's stdin (the MCP way to ask it to exit).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Closes stdin and waits for the exit status; kills the server after `timeout`.
    ///
    /// # Errors
    /// Waiting failed, or the server had to be killed ([`ClientError::Timeout`]).
    pub fn finish(mut self, timeout: Duration) -> Result<ExitStatus, ClientError> {
        self.close_stdin();
        self.wait_exit(timeout)
    }

    /// Waits for the server to exit on its own (stdin stays as it is).
    ///
    /// # Errors
    /// Waiting failed, or the server was still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout(timeout));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for StdioClient {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
