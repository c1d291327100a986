//! The audit log: one JSON Lines record per tool call, plus start-up and shutdown, hash-chained.
//!
//! Every record carries `seq` (consecutive), `prev` (the previous record's hash) and `hash`
//! (SHA-256 of the record without `hash`, serialised as written), so an edited, deleted or
//! reordered line breaks the chain and `audit verify` finds it. Records are written under an
//! exclusive `flock`, whole lines in one `write(2)` (O_APPEND); records of calls that finish while
//! another is being written go out together in the next write (group commit). Concurrent calls,
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
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

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

/// The audit log.
pub struct AuditLog {
    /// Records waiting for the writer. Whoever holds the writer next writes them all at once
    /// (group commit): one lock and one `write(2)` for many concurrent calls.
    pending: Mutex<Vec<Map<String, Value>>>,
    writer: Mutex<Writer>,
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
            pending: Mutex::new(Vec::new()),
            writer: Mutex::new(writer),
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

    /// Records one call, if `audit.log_level` lets its outcome through.
    pub fn call(&self, record: &CallRecord) {
        if !record.outcome.passes(self.level) {
            return;
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
        let keep_time = self.include.is_empty() || self.include.contains(&AuditField::Timestamp);
        self.append_fields(fields, keep_time);
    }

    fn append(&self, record: Value) {
        if let Value::Object(fields) = record {
            self.append_fields(fields, true);
        }
    }

    fn append_fields(&self, mut fields: Map<String, Value>, with_time: bool) {
        if with_time {
            fields.insert(
                "ts".into(),
                json!(humantime::format_rfc3339_micros(SystemTime::now()).to_string()),
            );
        }
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(fields);
        // Once we hold the writer, our record is either written (by the previous holder, who
        // took it from `pending`) or still pending and written by us: either way it is on file
        // before this returns.
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let batch =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if batch.is_empty() {
            return;
        }
        let count = batch.len();
        if let Err(error) = writer.append(batch) {
            tracing::error!(%error, path = %writer.path.display(), records = count, "audit records not written");
        }
    }
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
                let hash = record_hash(&fields);
                fields.insert("hash".into(), json!(hash));
                let mut line = Value::Object(fields).to_string().into_bytes();
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

/// SHA-256 (hex) of the record as serialised without its `hash` member.
fn record_hash(fields: &Map<String, Value>) -> String {
    let bytes = Value::Object(fields.clone()).to_string();
    let digest = Sha256::digest(bytes.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
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

    #[test]
    fn chain_verifies_and_continues_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&policy(dir.path(), 10)).unwrap();
        log.startup("p", "abc", json!({}));
        log.call(&call(Outcome::Ok));
        drop(log);
        let log = AuditLog::open(&policy(dir.path(), 10)).unwrap();
        log.call(&call(Outcome::Denied));
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

    #[test]
    fn tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&policy(dir.path(), 10)).unwrap();
        for _ in 0..4 {
            log.call(&call(Outcome::Ok));
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

    #[test]
    fn concurrent_calls_are_all_written_in_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        // Small files: batches also cross rotations.
        let mut small = policy(dir.path(), 1);
        small.keep = 100;
        let log = AuditLog::open(&small).unwrap();
        let big = CallRecord {
            arguments: json!({"q": "x".repeat(2000)}),
            ..call(Outcome::Ok)
        };
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        log.call(&big);
                    }
                });
            }
        });
        let verified = verify(&dir.path().join("audit.log")).unwrap();
        assert!(verified.files.len() > 1, "the log rotated");
        assert_eq!(verified.records, 1600, "every record kept (keep: 100)");
        assert_eq!(verified.last.map(|(seq, _)| seq), Some(1600));
    }

    #[test]
    fn two_writers_on_one_file_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let a = AuditLog::open(&policy(dir.path(), 10)).unwrap();
        let b = AuditLog::open(&policy(dir.path(), 10)).unwrap();
        for _ in 0..20 {
            a.call(&call(Outcome::Ok));
            b.call(&call(Outcome::Denied));
        }
        let verified = verify(&dir.path().join("audit.log")).unwrap();
        assert_eq!(verified.records, 40);
        assert_eq!(verified.last.unwrap().0, 40);
    }

    #[test]
    fn a_damaged_tail_starts_a_new_chain_on_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "{\"seq\": tru\n").unwrap();
        let log = AuditLog::open(&policy(dir.path(), 10)).unwrap();
        log.call(&call(Outcome::Ok));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().last().unwrap().contains("chain_restart"));
        assert!(
            verify(&path).is_err(),
            "the damaged line itself is still reported"
        );
    }

    #[test]
    fn rotation_keeps_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = policy(dir.path(), 1);
        p.max_size_mb = 1;
        let log = AuditLog::open(&p).unwrap();
        let big = CallRecord {
            arguments: json!({"q": "x".repeat(300_000)}),
            ..call(Outcome::Ok)
        };
        for _ in 0..8 {
            log.call(&big);
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
