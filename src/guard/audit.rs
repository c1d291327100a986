//! The audit log: one JSON Lines record per tool call, plus start-up and shutdown, hash-chained.
//!
//! Every record carries `seq` (consecutive), `prev` (the previous record's hash) and `hash`
//! (SHA-256 of the record without `hash`, serialised as written), so an edited, deleted or
//! reordered line breaks the chain and `audit verify` finds it. Records are written under an
//! exclusive `flock`, whole lines in one `write(2)` (O_APPEND); records of calls that finish while
//! another batch is being written wait without holding a thread, then go out together in the
//! next write (group commit). Concurrent calls,
//! and other server processes sharing the file, never interleave, and each writer re-reads the chain's last link
//! when someone else appended or rotated. Nothing is buffered in the process, so a clean shutdown
//! or SIGTERM loses nothing. Files rotate by size; the chain continues into the new file.
//! Arguments are redacted before they are recorded.
//!
//! What it does not do: protect a log an attacker can rewrite entirely (recomputing every hash);
//! for that, ship records off the machine.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::redact::redact;
use crate::policy::model::AuditPolicy;
use crate::policy::{AuditField, AuditLevel};

/// `prev` of the very first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The tool ran and succeeded.
    Ok,
    /// The tool ran and reported an error (or failed internally).
    ToolError,
    /// A guardrail refused the call before it ran.
    Denied,
    /// The rate limit refused the call.
    RateLimited,
    /// The deadline stopped the call.
    Timeout,
    /// The client cancelled the call (or the server shut down).
    Cancelled,
}

impl Outcome {
    /// The name written to the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::Denied => "denied",
            Outcome::RateLimited => "rate_limited",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
        }
    }

    fn passes(self, level: AuditLevel) -> bool {
        match level {
            AuditLevel::Debug | AuditLevel::Info => true,
            AuditLevel::Warn => self != Outcome::Ok,
            AuditLevel::Error => matches!(self, Outcome::ToolError | Outcome::Timeout),
        }
    }
}

/// One finished (or refused) call.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// The JSON-RPC request id.
    pub request_id: Value,
    /// The tool.
    pub tool: String,
    /// The arguments as received (redacted before writing).
    pub arguments: Value,
    /// How it ended.
    pub outcome: Outcome,
    /// The rule that refused or stopped it, if any.
    pub rule: Option<String>,
    /// Time from admission to the end.
    pub duration: Duration,
}

struct Writer {
    path: PathBuf,
    file: File,
    /// Device and inode of `file`: when `path` still names them, `path`'s size is ours.
    identity: (u64, u64),
    size: u64,
    seq: u64,
    prev: String,
    max_bytes: u64,
    keep: u32,
    /// Set when the previous chain could not be continued (a damaged last line): written into
    /// the next record, so the break is on record rather than silent.
    restart: Option<String>,
}

/// Records waiting for the writer, numbered in arrival order.
#[derive(Default)]
struct Queue {
    records: Vec<Map<String, Value>>,
    /// Tickets handed out: the last queued record's number.
    queued: u64,
    /// Every record up to this ticket has been written (or its write failed and was logged).
    settled: u64,
}

/// The audit log.
pub struct AuditLog {
    /// Whoever holds the writer next writes everything queued at once (group commit): one
    /// lock and one `write(2)` for many concurrent calls.
    queue: Mutex<Queue>,
    writer: Mutex<Writer>,
    /// Signalled after each batch, once the writer is free again.
    settled: Notify,
    level: AuditLevel,
    include: Vec<AuditField>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("level", &self.level)
            .finish()
    }
}

impl AuditLog {
    /// Opens (or creates, mode 0600) the log and continues the chain of its last record.
    ///
    /// # Errors
    /// The file cannot be opened or read.
    pub fn open(policy: &AuditPolicy) -> std::io::Result<Self> {
        let path = policy.log_file.clone();
        let file = open_append(&path)?;
        let mut writer = Writer {
            path,
            identity: identity(&file)?,
            file,
            size: 0,
            seq: 0,
            prev: GENESIS.to_owned(),
            max_bytes: policy.max_size_mb.saturating_mul(1024 * 1024),
            keep: policy.keep,
            restart: None,
        };
        writer.resync()?;
        Ok(AuditLog {
            queue: Mutex::new(Queue::default()),
            writer: Mutex::new(writer),
            settled: Notify::new(),
            level: policy.log_level,
            include: policy.include.clone(),
        })
    }

    /// Records start-up: the policy and the sandbox status.
    pub fn startup(&self, policy_source: &str, policy_sha256: &str, sandbox: Value) {
        self.append(json!({
            "type": "startup",
            "policy": policy_source,
            "policy_sha256": policy_sha256,
            "sandbox": sandbox,
            "version": env!("CARGO_PKG_VERSION"),
        }));
    }

    /// Records shutdown.
    pub fn shutdown(&self, reason: &str) {
        self.append(json!({"type": "shutdown", "reason": reason}));
    }

    /// Records one call, if `audit.log_level` lets its outcome through; returns once the
    /// record is on file.
    ///
    /// While another task writes, this one waits without holding a worker thread, so records
    /// of calls that finish meanwhile pile up and go out together in the next write.
    pub async fn call(&self, record: &CallRecord) {
        let Some(fields) = self.call_fields(record) else {
            return;
        };
        let ticket = self.enqueue(fields);
        // Let the calls that are ready on this thread queue their records first, so the next
        // write carries them all.
        tokio::task::yield_now().await;
        loop {
            // Armed before the checks, so a batch that ends in between still wakes us.
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.is_settled(ticket) {
                return;
            }
            if !self.try_flush() {
                settled.await;
            }
        }
    }

    /// The fields of a call record, or `None` when `audit.log_level` filters it out.
    fn call_fields(&self, record: &CallRecord) -> Option<Map<String, Value>> {
        if !record.outcome.passes(self.level) {
            return None;
        }
        let mut fields = Map::new();
        let mut put = |field: AuditField, key: &str, value: Value| {
            if self.include.is_empty() || self.include.contains(&field) {
                fields.insert(key.to_owned(), value);
            }
        };
        put(
            AuditField::RequestId,
            "request_id",
            record.request_id.clone(),
        );
        put(AuditField::ToolName, "tool", json!(record.tool));
        put(
            AuditField::Arguments,
            "arguments",
            redact(&record.arguments),
        );
        put(
            AuditField::ResultStatus,
            "outcome",
            json!(record.outcome.as_str()),
        );
        put(AuditField::SecurityEvents, "rule", json!(record.rule));
        put(
            AuditField::ExecutionTime,
            "duration_us",
            json!(u64::try_from(record.duration.as_micros()).unwrap_or(u64::MAX)),
        );
        fields.insert("type".into(), json!("call"));
        if self.include.is_empty() || self.include.contains(&AuditField::Timestamp) {
            stamp(&mut fields);
        }
        Some(fields)
    }

    /// Writes a start-up or shutdown record, blocking until it is on file.
    fn append(&self, record: Value) {
        let Value::Object(mut fields) = record else {
            return;
        };
        stamp(&mut fields);
        self.enqueue(fields);
        // Once we hold the writer, our record is either written (by the previous holder, who
        // took it from the queue) or still queued and written by us.
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.flush(writer);
    }

    /// Queues a record; returns its ticket.
    fn enqueue(&self, fields: Map<String, Value>) -> u64 {
        let mut queue = self.queue();
        queue.records.push(fields);
        queue.queued += 1;
        queue.queued
    }

    fn is_settled(&self, ticket: u64) -> bool {
        self.queue().settled >= ticket
    }

    /// Writes the queue if the writer is free; `false` when someone else holds it (and will
    /// signal `settled` when done).
    fn try_flush(&self) -> bool {
        let writer = match self.writer.try_lock() {
            Ok(writer) => writer,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return false,
        };
        self.flush(writer);
        true
    }

    /// Writes everything queued; `FlushEnd` then settles the batch, releases the writer and
    /// wakes the waiters, in that order, however the write ends.
    fn flush<'a>(&'a self, writer: MutexGuard<'a, Writer>) {
        let mut end = FlushEnd {
            log: self,
            writer: Some(writer),
            settles: None,
        };
        let (batch, last) = {
            let mut queue = self.queue();
            (std::mem::take(&mut queue.records), queue.queued)
        };
        if batch.is_empty() {
            return;
        }
        end.settles = Some(last);
        let count = batch.len();
        if let Some(writer) = end.writer.as_mut()
            && let Err(error) = writer.append(batch)
        {
            tracing::error!(%error, path = %writer.path.display(), records = count, "audit records not written");
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The end of a flush, run on drop so that a panic while writing cannot leave the batch's
/// callers waiting (or spinning on a poisoned writer) for a batch that will never settle.
struct FlushEnd<'a> {
    log: &'a AuditLog,
    writer: Option<MutexGuard<'a, Writer>>,
    /// The batch's last ticket, once a batch was taken.
    settles: Option<u64>,
}

impl Drop for FlushEnd<'_> {
    fn drop(&mut self) {
        if let Some(last) = self.settles {
            self.log.queue().settled = last;
        }
        // Free the writer before waking anyone: a waiter woken while it was still held could
        // find it busy and sleep with nobody left to wake it.
        drop(self.writer.take());
        self.log.settled.notify_waiters();
    }
}

/// Adds the `ts` member: RFC 3339, microseconds, UTC.
fn stamp(fields: &mut Map<String, Value>) {
    fields.insert(
        "ts".into(),
        json!(humantime::format_rfc3339_micros(SystemTime::now()).to_string()),
    );
}

impl Writer {
    /// Chains and writes `records` under the file lock, in one `write(2)` unless the file
    /// rotates in between.
    fn append(&mut self, records: Vec<Map<String, Value>>) -> std::io::Result<()> {
        use rustix::fs::{FlockOperation, flock};
        flock(&self.file, FlockOperation::LockExclusive)?;
        let result = (|| {
            self.resync()?;
            let mut lines = Vec::new();
            for mut fields in records {
                if let Some(reason) = self.restart.take() {
                    fields.insert("chain_restart".into(), json!(reason));
                }
                fields.insert("seq".into(), json!(self.seq + 1));
                fields.insert("prev".into(), json!(self.prev));
                let (mut line, hash) = sealed(&fields);
                line.push(b'\n');
                let written = self.size + lines.len() as u64;
                if self.max_bytes > 0 && written > 0 && written + line.len() as u64 > self.max_bytes
                {
                    self.write(&lines)?;
                    lines.clear();
                    self.rotate()?;
                }
                lines.extend_from_slice(&line);
                self.seq += 1;
                self.prev = hash;
            }
            self.write(&lines)
        })();
        if result.is_err() {
            // The chain state ran ahead of the file: re-read the last link next time.
            self.size = u64::MAX;
        }
        // Closing or reopening releases the lock too; this covers the normal path.
        let _ = flock(&self.file, FlockOperation::Unlock);
        result
    }

    /// Catches up with other processes: reopens the file if it was rotated away, and re-reads
    /// the last link if someone else appended.
    fn resync(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        // One stat of the path: it says both whether another process rotated the file away
        // and, when it did not, how long the file is now.
        let on_disk = std::fs::metadata(&self.path).ok();
        let same_file = on_disk
            .as_ref()
            .is_some_and(|m| (m.dev(), m.ino()) == self.identity);
        let size = match on_disk {
            Some(meta) if same_file => meta.len(),
            _ => {
                self.file = open_append(&self.path)?;
                rustix::fs::flock(&self.file, rustix::fs::FlockOperation::LockExclusive)?;
                self.identity = identity(&self.file)?;
                self.file.metadata()?.len()
            }
        };
        if !same_file || size != self.size {
            match last_link(&self.path)? {
                Link::Record(seq, hash) => (self.seq, self.prev) = (seq, hash),
                Link::Empty => (self.seq, self.prev) = (0, GENESIS.to_owned()),
                Link::Damaged => {
                    tracing::warn!(path = %self.path.display(), "audit log ends in a damaged record; starting a new chain");
                    (self.seq, self.prev) = (0, GENESIS.to_owned());
                    self.restart = Some("the previous last record was damaged".into());
                }
            }
            self.size = size;
        }
        Ok(())
    }

    /// Appends whole lines with one write(2) on the O_APPEND file: records never interleave.
    fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let written = self.file.write(lines)?;
        if written != lines.len() {
            return Err(std::io::Error::other("short write to the audit log"));
        }
        self.size += lines.len() as u64;
        Ok(())
    }

    /// `log` → `log.1` → … → `log.KEEP` (the oldest is dropped), then a fresh `log`.
    fn rotate(&mut self) -> std::io::Result<()> {
        for n in (1..self.keep).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        if self.keep > 0 {
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.file = open_append(&self.path)?;
        rustix::fs::flock(&self.file, rustix::fs::FlockOperation::LockExclusive)?;
        self.identity = identity(&self.file)?;
        self.size = 0;
        Ok(())
    }
}

/// Device and inode of an open file.
fn identity(file: &File) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// `audit.log` → `audit.log.N`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The record's line (without the newline) and its hash: the compact, key-sorted JSON of the
/// fields, with `"hash"` added as the last member. Serialised once: the hashed bytes are the
/// line minus that member.
fn sealed(fields: &Map<String, Value>) -> (Vec<u8>, String) {
    let mut line = serde_json::to_vec(fields).unwrap_or_else(|_| b"{}".to_vec());
    let hash = sha256_hex(&line);
    // `fields` always holds `seq` and `prev`, so the object is never empty and a comma fits.
    line.pop();
    line.extend_from_slice(b",\"hash\":\"");
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(b"\"}");
    (line, hash)
}

/// SHA-256 (hex) of the record as serialised without its `hash` member, keys sorted.
fn record_hash(fields: &Map<String, Value>) -> String {
    sha256_hex(&serde_json::to_vec(fields).unwrap_or_default())
}

fn sha256_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    Sha256::digest(bytes)
        .iter()
        .flat_map(|byte| {
            [
                DIGITS[usize::from(byte >> 4)],
                DIGITS[usize::from(byte & 15)],
            ]
        })
        .map(char::from)
        .collect()
}

/// The end of the chain on disk.
enum Link {
    /// The last record's `seq` and `hash`.
    Record(u64, String),
    /// No records yet (in this file or the newest rotated one).
    Empty,
    /// The last line is not a valid record.
    Damaged,
}

/// The last record of the newest file (or of `path.1` when `path` is empty after a rotation).
fn last_link(path: &Path) -> std::io::Result<Link> {
    for candidate in [path.to_path_buf(), rotated(path, 1)] {
        let Some(line) = last_line(&candidate)? else {
            continue;
        };
        let record: Value = serde_json::from_slice(&line).unwrap_or(Value::Null);
        return Ok(match (record["seq"].as_u64(), record["hash"].as_str()) {
            (Some(seq), Some(hash)) => Link::Record(seq, hash.to_owned()),
            _ => Link::Damaged,
        });
    }
    Ok(Link::Empty)
}

/// The last non-empty line of a file, read backwards in growing chunks (records can be large,
/// files larger still).
fn last_line(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut tail = Vec::new();
        Read::by_ref(&mut file)
            .take(len - start)
            .read_to_end(&mut tail)?;
        let trimmed = tail.trim_ascii_end();
        match trimmed.iter().rposition(|&b| b == b'\n') {
            Some(newline) => return Ok(Some(trimmed[newline + 1..].to_vec())),
            None if start == 0 => {
                return Ok((!trimmed.is_empty()).then(|| trimmed.to_vec()));
            }
            None => window = window.saturating_mul(4),
        }
    }
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Files read, oldest first.
    pub files: Vec<PathBuf>,
    /// Records checked.
    pub records: u64,
    /// `seq` of the first record read (above 1 only when older files were rotated away).
    pub first_seq: u64,
    /// `seq` and `hash` of the last record: compare them with a copy kept elsewhere to detect
    /// a truncated tail.
    pub last: Option<(u64, String)>,
}

/// Checks the chain of `path` and its rotated predecessors (`path.N` … `path.1`, then `path`).
///
/// # Errors
/// The first broken link: file, line number and what is wrong.
pub fn verify(path: &Path) -> Result<Verified, String> {
    let mut files: Vec<PathBuf> = (1..=1000)
        .map(|n| rotated(path, n))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files.push(path.to_path_buf());
    let mut previous: Option<(u64, String)> = None;
    let mut records = 0u64;
    let mut first_seq = 1u64;
    for file in &files {
        let reader = BufReader::new(
            File::open(file).map_err(|e| format!("{}: cannot read: {e}", file.display()))?,
        );
        for (index, line) in reader.lines().enumerate() {
            let at = || format!("{}:{}", file.display(), index + 1);
            let line = line.map_err(|e| format!("{}: {e}", at()))?;
            let mut fields: Map<String, Value> = serde_json::from_str(&line)
                .map_err(|_| format!("{}: not a JSON object (line edited or truncated)", at()))?;
            let hash = fields
                .remove("hash")
                .and_then(|h| h.as_str().map(str::to_owned))
                .ok_or_else(|| format!("{}: no hash", at()))?;
            if record_hash(&fields) != hash {
                return Err(format!(
                    "{}: the record does not match its hash (edited)",
                    at()
                ));
            }
            let seq = fields["seq"]
                .as_u64()
                .ok_or_else(|| format!("{}: no seq", at()))?;
            let prev = fields["prev"].as_str().unwrap_or_default();
            match &previous {
                Some((last_seq, last_hash)) => {
                    if prev != last_hash || seq != last_seq + 1 {
                        return Err(format!(
                            "{}: record {seq} does not follow record {last_seq} (a line was \
                             deleted, inserted or reordered)",
                            at()
                        ));
                    }
                }
                // The very first record must open the chain, unless older files were rotated
                // away (then the chain legitimately starts mid-way in `path.N`).
                None if files.len() == 1 && (seq != 1 || prev != GENESIS) => {
                    return Err(format!(
                        "{}: the log starts at record {seq}, not at the chain's first record \
                         (its head was removed)",
                        at()
                    ));
                }
                None => first_seq = seq,
            }
            previous = Some((seq, hash));
            records += 1;
        }
    }
    Ok(Verified {
        files,
        records,
        first_seq,
        last: previous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(dir: &Path, max_size_mb: u64) -> AuditPolicy {
        AuditPolicy {
            log_file: dir.join("audit.log"),
            log_level: AuditLevel::Info,
            include: vec![],
            max_size_mb,
            keep: 3,
        }
    }

    fn call(outcome: Outcome) -> CallRecord {
        CallRecord {
            request_id: json!(1),
            tool: "t".into(),
            arguments: json!({"password": "hunter2", "q": "x"}),
            outcome,
            rule: None,
            duration: Duration::from_micros(5),
        }
    }

    #[tokio::test]
    async fn chain_verifies_and_continues_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&policy(dir.path(), 10)).unwrap();
        log.startup("p", "abc", json!({}));
        log.call(&call(Outcome::Ok)).await;
        drop(log);
        let log = AuditLog::open(&policy(dir.path(), 10)).unwrap();
        log.call(&call(Outcome::Denied)).await;
        log.shutdown("eof");
        let verified = verify(&dir.path().join("audit.log")).unwrap();
        assert_eq!(verified.records, 4);
        let text = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
        assert!(!text.contains("hunter2"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("audit.log"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&policy(dir.path(), 10)).unwrap();
        for _ in 0..4 {
            log.call(&call(Outcome::Ok)).await;
        }
        let original = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = original.lines().collect();
        let variants = [
            (
                "edited",
                original.replacen("\"tool\":\"t\"", "\"tool\":\"u\"", 1),
            ),
            ("deleted", [lines[0], lines[2], lines[3]].join("\n") + "\n"),
            (
                "reordered",
                [lines[0], lines[2], lines[1], lines[3]].join("\n") + "\n",
            ),
        ];
        for (what, text) in variants {
            std::fs::write(&path, text).unwrap();
            assert!(verify(&path).is_err(), "{what} not detected");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_calls_are_all_written_in_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        // Small files: batches also cross rotations.
        let mut small = policy(dir.path(), 1);
        small.keep = 100;
        let log = AuditLog::open(&small).unwrap();
        let big = CallRecord {
            arguments: json!({"q": "x".repeat(2000)}),
            ..call(Outcome::Ok)
        };
        let log = std::sync::Arc::new(log);
        let big = std::sync::Arc::new(big);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (log, big) = (log.clone(), big.clone());
                tokio::spawn(async move {
                    for _ in 0..200 {
                        log.call(&big).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let verified = verify(&dir.path().join("audit.log")).unwrap();
        assert!(verified.files.len() > 1, "the log rotated");
        assert_eq!(verified.records, 1600, "every record kept (keep: 100)");
        assert_eq!(verified.last.map(|(seq, _)| seq), Some(1600));
    }

    #[test]
    fn calls_wait_for_a_busy_writer_without_holding_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let log = std::sync::Arc::new(AuditLog::open(&policy(dir.path(), 10)).unwrap());
        let (done, finished) = std::sync::mpsc::channel();
        let scenario = {
            let log = log.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                // Another writer is busy. A call that blocked on it would block this runtime's
                // only thread, and the writer below would never get to finish.
                let busy = log.writer.lock().unwrap();
                runtime.block_on(async {
                    let calls: Vec<_> = (0..3)
                        .map(|_| {
                            let log = log.clone();
                            tokio::spawn(async move { log.call(&call(Outcome::Ok)).await })
                        })
                        .collect();
                    for _ in 0..20 {
                        tokio::task::yield_now().await;
                    }
                    assert_eq!(log.queue().records.len(), 3, "all three wait in the queue");
                    assert_eq!(log.queue().settled, 0);
                    // The busy writer finishes: one batch carries all three, and they return.
                    log.flush(busy);
                    for task in calls {
                        task.await.unwrap();
                    }
                });
                done.send(()).unwrap();
            })
        };
        finished
            .recv_timeout(Duration::from_secs(60))
            .expect("the calls finished");
        scenario.join().unwrap();
        assert_eq!(verify(&dir.path().join("audit.log")).unwrap().records, 3);
    }

    #[test]
    fn a_panic_while_writing_still_settles_the_batch_and_frees_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&policy(dir.path(), 10)).unwrap();
        let ticket = log.enqueue(Map::new());
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _end = FlushEnd {
                log: &log,
                writer: Some(log.writer.lock().unwrap()),
                settles: Some(ticket),
            };
            panic!("the write went wrong");
        }));
        assert!(outcome.is_err());
        assert!(log.is_settled(ticket), "its caller is not left waiting");
        assert!(
            matches!(log.writer.try_lock(), Err(TryLockError::Poisoned(_))),
            "the writer is released (poisoned), not held"
        );
    }

    #[test]
    fn the_hash_is_the_last_member_and_covers_the_rest_of_the_line() {
        let mut fields = Map::new();
        fields.insert("seq".into(), json!(1));
        fields.insert("prev".into(), json!(GENESIS));
        fields.insert("zeta".into(), json!("x\"y"));
        let (line, hash) = sealed(&fields);
        let line = String::from_utf8(line).unwrap();
        let suffix = format!(",\"hash\":\"{hash}\"}}");
        let unsealed = format!("{}}}", line.strip_suffix(&suffix).unwrap());
        assert_eq!(sha256_hex(unsealed.as_bytes()), hash);
        let parsed: Map<String, Value> = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["hash"], json!(hash));
        assert_eq!(parsed["zeta"], json!("x\"y"));
    }

    #[test]
    fn records_with_the_hash_among_the_sorted_keys_still_verify() {
        // Logs written before the hash moved to the end of the line.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut prev = GENESIS.to_owned();
        let mut text = String::new();
        for seq in 1..=2 {
            let mut fields = Map::new();
            fields.insert("type".into(), json!("call"));
            fields.insert("seq".into(), json!(seq));
            fields.insert("prev".into(), json!(prev));
            prev = record_hash(&fields);
            fields.insert("hash".into(), json!(prev));
            text += &format!("{}\n", Value::Object(fields));
        }
        std::fs::write(&path, text).unwrap();
        assert_eq!(verify(&path).unwrap().records, 2);
    }

    #[tokio::test]
    async fn two_writers_on_one_file_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let a = AuditLog::open(&policy(dir.path(), 10)).unwrap();
        let b = AuditLog::open(&policy(dir.path(), 10)).unwrap();
        for _ in 0..20 {
            a.call(&call(Outcome::Ok)).await;
            b.call(&call(Outcome::Denied)).await;
        }
        let verified = verify(&dir.path().join("audit.log")).unwrap();
        assert_eq!(verified.records, 40);
        assert_eq!(verified.last.unwrap().0, 40);
    }

    #[tokio::test]
    async fn a_damaged_tail_starts_a_new_chain_on_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "{\"seq\": tru\n").unwrap();
        let log = AuditLog::open(&policy(dir.path(), 10)).unwrap();
        log.call(&call(Outcome::Ok)).await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().last().unwrap().contains("chain_restart"));
        assert!(
            verify(&path).is_err(),
            "the damaged line itself is still reported"
        );
    }

    #[tokio::test]
    async fn rotation_keeps_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = policy(dir.path(), 1);
        p.max_size_mb = 1;
        let log = AuditLog::open(&p).unwrap();
        let big = CallRecord {
            arguments: json!({"q": "x".repeat(300_000)}),
            ..call(Outcome::Ok)
        };
        for _ in 0..8 {
            log.call(&big).await;
        }
        let verified = verify(&dir.path().join("audit.log")).unwrap();
        assert!(verified.files.len() >= 2, "{verified:?}");
        assert!(
            !rotated(&dir.path().join("audit.log"), 4).exists(),
            "keep = 3"
        );
    }

    #[test]
    fn level_filters_outcomes() {
        assert!(Outcome::Ok.passes(AuditLevel::Info));
        assert!(!Outcome::Ok.passes(AuditLevel::Warn));
        assert!(Outcome::Denied.passes(AuditLevel::Warn));
        assert!(!Outcome::Denied.passes(AuditLevel::Error));
        assert!(Outcome::Timeout.passes(AuditLevel::Error));
    }
}
