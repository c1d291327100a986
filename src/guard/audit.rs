//! The audit log: one JSON Lines record per tool call, plus start-up and shutdown, hash-chained.
//!
//! Every record carries `seq` (consecutive), `prev` (the previous record's hash) and `hash`
//! (SHA-256 of the record without `hash`, serialised as written), so an edited, deleted or
//! reordered line breaks the chain and `audit verify` finds it. Records are written through one
//! lock with one `write(2)` each (O_APPEND), so concurrent calls never interleave, and nothing is
//! buffered in the process, so a clean shutdown or SIGTERM loses nothing. Files rotate by size;
//! the chain continues into the new file. Arguments are redacted before they are recorded.
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
    size: u64,
    seq: u64,
    prev: String,
    max_bytes: u64,
    keep: u32,
}

/// The audit log.
pub struct AuditLog {
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
        let (seq, prev) = last_link(&path)?;
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(AuditLog {
            writer: Mutex::new(Writer {
                path,
                file,
                size,
                seq,
                prev,
                max_bytes: policy.max_size_mb.saturating_mul(1024 * 1024),
                keep: policy.keep,
            }),
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
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        fields.insert("seq".into(), json!(writer.seq + 1));
        fields.insert("prev".into(), json!(writer.prev));
        let hash = record_hash(&fields);
        fields.insert("hash".into(), json!(hash));
        let mut line = Value::Object(fields).to_string().into_bytes();
        line.push(b'\n');
        if let Err(error) = writer.write(&line) {
            tracing::error!(%error, path = %writer.path.display(), "audit record not written");
            return;
        }
        writer.seq += 1;
        writer.prev = hash;
    }
}

impl Writer {
    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.max_bytes > 0 && self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        // One write(2) of a whole line on an O_APPEND file: records never interleave.
        let written = self.file.write(line)?;
        if written != line.len() {
            return Err(std::io::Error::other("short write to the audit log"));
        }
        self.size += line.len() as u64;
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
        self.size = 0;
        Ok(())
    }
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

/// `seq` and `hash` of the last record of the newest file, to continue the chain.
fn last_link(path: &Path) -> std::io::Result<(u64, String)> {
    let Ok(file) = File::open(path) else {
        return Ok((0, GENESIS.to_owned()));
    };
    let mut last = None;
    for line in BufReader::new(file).lines() {
        let line = line?;
        if !line.trim().is_empty() {
            last = Some(line);
        }
    }
    let Some(line) = last else {
        return Ok((0, GENESIS.to_owned()));
    };
    let record: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    match (record["seq"].as_u64(), record["hash"].as_str()) {
        (Some(seq), Some(hash)) => Ok((seq, hash.to_owned())),
        // A damaged tail: start a new chain, and say so in it.
        _ => Ok((0, GENESIS.to_owned())),
    }
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Files read, oldest first.
    pub files: Vec<PathBuf>,
    /// Records checked.
    pub records: u64,
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
            if let Some((last_seq, last_hash)) = &previous {
                if prev != last_hash || seq != last_seq + 1 {
                    return Err(format!(
                        "{}: record {seq} does not follow record {last_seq} (a line was deleted, \
                         inserted or reordered)",
                        at()
                    ));
                }
            }
            previous = Some((seq, hash));
            records += 1;
        }
    }
    Ok(Verified { files, records })
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
