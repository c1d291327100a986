//! The stdio session loop: read and frame input, dispatch, run calls concurrently, write
//! answers through one writer, shut down cleanly.
//!
//! Reading, routing and lifecycle happen on one task in input order, so `initialize` is settled
//! before the next line is looked at. Each `tools/call` runs in its own task, at most
//! `max_in_flight` at once; a bounded number more wait for a slot, and beyond that a call is
//! answered "busy" at once. The reader never waits for a tool, so `ping` and cancellation are
//! always served. Exactly one task owns the output: every line it writes is one complete
//! JSON-RPC message.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::dispatch::{Dispatcher, Effect, Era, Route};
use super::tools_call::{ToolCall, execute};
use crate::guard::Guards;
use crate::guard::audit::{CallRecord, Outcome};
use crate::plugins::{CallContext, Registry, ToolResult};
use crate::rpc::message::{error_line, result_line};
use crate::rpc::{ErrorObject, Frame, Id, LineFramer, Message, code, parse};

/// Calls that may wait for a running slot, per slot: a burst of a few hundred requests is
/// absorbed, while a flood gets "busy" answers instead of unbounded tasks.
const QUEUED_PER_SLOT: usize = 4;
/// Bytes read from the input per `read` call.
const READ_CHUNK: usize = 64 * 1024;
/// Answers queued for the writer before producers wait; bounds memory if the client stops
/// reading its end of the pipe.
const OUTPUT_QUEUE: usize = 256;
/// After input ends, in-flight calls get this long to finish before they are cancelled: long
/// enough for a piped `echo … | server` to get its answers, short enough to exit promptly.
pub const EOF_GRACE: Duration = Duration::from_secs(2);
/// Longest wait for the writer to flush the last answers at exit.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// Settings of one session.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Longest accepted input line.
    pub max_line_bytes: usize,
    /// Tool calls running at once.
    pub max_in_flight: usize,
    /// Tools per `tools/list` page.
    pub tools_page_size: usize,
    /// The guardrails and audit log every call goes through.
    pub guards: Arc<Guards>,
}

/// How the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The input was closed.
    EndOfInput,
    /// The shutdown future completed (SIGTERM/SIGINT).
    Shutdown,
    /// The output was closed; nobody is listening.
    OutputClosed,
}

/// Calls admitted and not yet finished or cancelled, by request id.
type InFlight = Arc<Mutex<HashMap<Id, InFlightCall>>>;

/// One admitted call. `seq` tells a finishing task whether the entry is still its own: after a
/// cancellation, the client may reuse the id for a new call before the old task has noticed.
struct InFlightCall {
    seq: u64,
    token: CancellationToken,
}

/// Serves one MCP session from `input` to `output` until the input ends, the output closes or
/// `shutdown` completes.
///
/// # Errors
/// Only failures to read the input; output failures end the session quietly (the client left).
pub async fn serve<R, W>(
    registry: Arc<Registry>,
    settings: SessionSettings,
    input: R,
    output: W,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<Ending>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(OUTPUT_QUEUE);
    let writer = tokio::spawn(write_lines(receiver, output));
    let mut session = Session {
        dispatcher: Dispatcher::new(Arc::clone(&registry), settings.tools_page_size),
        registry,
        output: sender,
        in_flight: Arc::new(Mutex::new(HashMap::new())),
        next_seq: 0,
        tasks: TaskTracker::new(),
        running: Arc::new(Semaphore::new(settings.max_in_flight)),
        stop: CancellationToken::new(),
        settings,
    };

    let ending = tokio::select! {
        biased;
        () = shutdown => Ok(Ending::Shutdown),
        ending = session.read_all(input) => ending,
    };
    if matches!(ending, Ok(Ending::EndOfInput)) {
        session.wait_for_calls(EOF_GRACE).await;
    }
    // Cancel what is still running; cancelled calls send nothing.
    session.stop.cancel();
    drop(session);
    match tokio::time::timeout(FLUSH_GRACE, writer).await {
        Ok(Ok(Err(error))) => tracing::debug!(%error, "output closed"),
        Ok(Err(error)) => tracing::error!(%error, "writer task failed"),
        Ok(Ok(Ok(()))) => {}
        Err(_) => tracing::warn!("output did not drain before exit"),
    }
    ending
}

struct Session {
    dispatcher: Dispatcher,
    registry: Arc<Registry>,
    output: mpsc::Sender<Vec<u8>>,
    /// Admitted calls; its size is what admission bounds.
    in_flight: InFlight,
    next_seq: u64,
    /// Every call task, so shutdown can wait for them.
    tasks: TaskTracker,
    /// Calls running; `limits.max_in_flight`.
    running: Arc<Semaphore>,
    stop: CancellationToken,
    settings: SessionSettings,
}

impl Session {
    async fn read_all<R: AsyncRead + Unpin>(&mut self, mut input: R) -> std::io::Result<Ending> {
        let mut framer = LineFramer::new(self.settings.max_line_bytes);
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut frames = Vec::new();
        loop {
            let read = input.read(&mut chunk).await?;
            if read == 0 {
                framer.finish(&mut frames);
            } else {
                framer.push(&chunk[..read], &mut frames);
            }
            for frame in frames.drain(..) {
                if !self.handle(frame).await {
                    return Ok(Ending::OutputClosed);
                }
            }
            if read == 0 {
                return Ok(Ending::EndOfInput);
            }
        }
    }

    /// Handles one frame; `false` when the output is gone.
    async fn handle(&mut self, frame: Frame) -> bool {
        let line = match frame {
            Frame::Line(line) => line,
            Frame::Oversized { len } => {
                tracing::debug!(len, "oversize line discarded");
                let error = ErrorObject::new(
                    code::INVALID_REQUEST,
                    format!(
                        "invalid request: line of {len} bytes exceeds limits.max_line_bytes ({}) \
                         and was discarded",
                        self.settings.max_line_bytes
                    ),
                );
                return self.send(error_line(None, &error)).await;
            }
        };
        match parse(&line) {
            Err(failure) if failure.is_notification => {
                tracing::debug!(code = failure.error.code, "malformed notification dropped");
                true
            }
            Err(failure) => {
                tracing::debug!(code = failure.error.code, "malformed message");
                self.send(error_line(failure.id.as_ref(), &failure.error))
                    .await
            }
            Ok(Message::Response(_)) => {
                // We never send requests, so a response answers nothing.
                tracing::debug!("ignoring response from client");
                true
            }
            Ok(Message::Notification(notification)) => {
                if let Effect::Cancel(id) = self.dispatcher.notification(&notification) {
                    self.cancel(&id);
                }
                true
            }
            Ok(Message::Request(request)) => match self.dispatcher.request(&request) {
                Route::Reply(Ok(result)) => self.send(result_line(&request.id, &result)).await,
                Route::Reply(Err(error)) => self.send(error_line(Some(&request.id), &error)).await,
                Route::Call(call, era) => self.start_call(request.id, call, era).await,
            },
        }
    }

    async fn send(&self, line: Vec<u8>) -> bool {
        self.output.send(line).await.is_ok()
    }

    fn cancel(&self, id: &Id) {
        // Removing the entry here, not when the task notices, frees its admission at once.
        let call = lock(&self.in_flight).remove(id);
        match call {
            Some(call) => {
                tracing::debug!(%id, "request cancelled by client");
                call.token.cancel();
            }
            // Finished already, or never existed: the spec says to ignore it.
            None => tracing::debug!(%id, "cancellation for no running request"),
        }
    }

    async fn start_call(&mut self, id: Id, call: ToolCall, era: Era) -> bool {
        let seq = self.next_seq;
        self.next_seq += 1;
        let token = self.stop.child_token();
        let refusal = {
            let mut in_flight = lock(&self.in_flight);
            if in_flight.contains_key(&id) {
                let error = ErrorObject::new(
                    code::INVALID_REQUEST,
                    format!("id {id} is already used by a request in progress; use a new id"),
                );
                Some((error_line(Some(&id), &error), None))
            } else if in_flight.len() >= self.admission_capacity() {
                // Admission never blocks the reader, so ping and cancellation stay responsive
                // however busy the tools are; past the bound the call is refused with advice.
                let busy = ToolResult::error(format!(
                    "the server is busy: {} calls are running or waiting (limits.max_in_flight \
                     is {}); retry when one of them has finished",
                    in_flight.len(),
                    self.settings.max_in_flight
                ));
                let record = CallRecord {
                    request_id: id.to_value(),
                    tool: call.tool.clone(),
                    arguments: call.arguments.clone(),
                    outcome: Outcome::RateLimited,
                    rule: Some("limits.max_in_flight".into()),
                    duration: Duration::ZERO,
                };
                Some((result_line(&id, &enveloped(&busy, era)), Some(record)))
            } else {
                let entry = InFlightCall {
                    seq,
                    token: token.clone(),
                };
                in_flight.insert(id.clone(), entry);
                None
            }
        };
        if let Some((line, record)) = refusal {
            // The reader waits for this record (it is not a tool): a flood of refused calls is
            // slowed to the pace of the audit log instead of piling up tasks.
            if let (Some(audit), Some(record)) = (&self.settings.guards.audit, record) {
                audit.call(&record).await;
            }
            return self.send(line).await;
        }
        let registry = Arc::clone(&self.registry);
        let running = Arc::clone(&self.running);
        let in_flight = Arc::clone(&self.in_flight);
        let output = self.output.clone();
        let guards = Arc::clone(&self.settings.guards);
        self.tasks.spawn(async move {
            // Removes the in-flight entry however the task ends, a panic included, so the id
            // and the admission slot are never leaked.
            let entry = InFlightGuard {
                map: in_flight,
                id: id.clone(),
                seq,
            };
            let started = Instant::now();
            let mut record = CallRecord {
                request_id: id.to_value(),
                tool: call.tool.clone(),
                arguments: call.arguments.clone(),
                outcome: Outcome::Cancelled,
                rule: None,
                duration: Duration::ZERO,
            };
            let execution = tokio::select! {
                biased;
                () = token.cancelled() => None,
                execution = async {
                    // The semaphore is never closed, so acquiring only waits.
                    let _slot = running.acquire_owned().await;
                    // The deadline counts from the start of the run, not from the queue.
                    let timeout = guards.tools.timeout_for(&call.tool);
                    let ctx = CallContext::new(timeout, token.clone());
                    execute(registry, Arc::clone(&guards), call, ctx).await
                } => Some(execution),
            };
            drop(entry);
            // Re-check: a cancellation that raced with completion still suppresses the answer.
            let answer = match execution {
                Some(execution) if !token.is_cancelled() => {
                    record.outcome = execution.outcome;
                    record.rule = execution.rule;
                    Some(match execution.response {
                        Ok(result) => result_line(&id, &enveloped(&result, era)),
                        Err(error) => error_line(Some(&id), &error),
                    })
                }
                Some(_) | None => None,
            };
            record.duration = started.elapsed();
            if let Some(audit) = &guards.audit {
                audit.call(&record).await;
            }
            if let Some(line) = answer {
                let _ = output.send(line).await;
            }
        });
        true
    }

    /// Calls admitted at once: those running plus those waiting for a slot.
    fn admission_capacity(&self) -> usize {
        self.settings.max_in_flight.saturating_mul(QUEUED_PER_SLOT)
    }

    /// Waits until every call task has ended, or `grace` has passed.
    async fn wait_for_calls(&self, grace: Duration) {
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::info!("input closed; cancelling calls still running");
        }
    }
}

/// Owns a call's in-flight entry; dropping it removes the entry if it is still this call's.
struct InFlightGuard {
    map: InFlight,
    id: Id,
    seq: u64,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut map = lock(&self.map);
        if map.get(&self.id).is_some_and(|entry| entry.seq == self.seq) {
            map.remove(&self.id);
        }
    }
}

/// A tool result in the envelope of the session's era.
fn enveloped(result: &ToolResult, era: Era) -> serde_json::Value {
    let mut value = result.to_mcp();
    match era {
        Era::Handshake => {}
        Era::Modern => super::modern::decorate(&mut value),
    }
    value
}

/// The in-flight map is only held for single inserts and lookups, so a std mutex is right;
/// a panic while holding it cannot leave the map inconsistent, so poisoning is ignored.
fn lock(map: &InFlight) -> std::sync::MutexGuard<'_, HashMap<Id, InFlightCall>> {
    map.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn write_lines<W: AsyncWrite + Unpin>(
    mut lines: mpsc::Receiver<Vec<u8>>,
    output: W,
) -> std::io::Result<()> {
    let mut output = BufWriter::new(output);
    while let Some(line) = lines.recv().await {
        output.write_all(&line).await?;
        // Batch whatever else is ready, then flush once: one syscall for a burst.
        while let Ok(line) = lines.try_recv() {
            output.write_all(&line).await?;
        }
        output.flush().await?;
    }
    output.flush().await
}
