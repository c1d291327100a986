//! The bug database: opening it (file mode, pragmas), its ordered schema migrations, and
//! running one job at a time on the connection with cancellation.
//!
//! Opened before the sandbox is applied (DESIGN.md §3); afterwards the process can only reach
//! the database's directory. Several server processes may share one file: WAL mode lets readers
//! run beside the writer, every write is one `BEGIN IMMEDIATE` transaction, and the busy
//! timeout makes a second writer wait instead of failing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use thiserror::Error;

use crate::policy::Synchronous;

/// How long a writer waits for another process's transaction before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite virtual-machine steps between two checks of the cancellation flag.
const PROGRESS_STEPS: i32 = 10_000;

/// The schema, one batch per version: version N is reached by running batch N-1. Never edit a
/// released batch; append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: projects, bugs, tags, relations, history (one row per change).
    "CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        next_number INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE bugs (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id),
        number INTEGER NOT NULL,
        title TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL CHECK (status IN ('open', 'in_progress', 'closed')),
        priority TEXT NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'critical')),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        closed_at TEXT,
        UNIQUE (project_id, number)
    );
    CREATE INDEX bugs_by_status ON bugs (project_id, status, priority);
    CREATE TABLE tags (
        bug_id INTEGER NOT NULL REFERENCES bugs(id),
        tag TEXT NOT NULL,
        PRIMARY KEY (bug_id, tag)
    ) WITHOUT ROWID;
    CREATE INDEX tags_by_name ON tags (tag, bug_id);
    CREATE TABLE relations (
        bug_id INTEGER NOT NULL REFERENCES bugs(id),
        kind TEXT NOT NULL CHECK (kind IN
            ('duplicate_of', 'duplicated_by', 'related_to', 'blocks', 'blocked_by')),
        other_id INTEGER NOT NULL REFERENCES bugs(id),
        PRIMARY KEY (bug_id, other_id, kind),
        CHECK (bug_id != other_id)
    ) WITHOUT ROWID;
    CREATE INDEX relations_by_other ON relations (other_id);
    CREATE TABLE history (
        id INTEGER PRIMARY KEY,
        bug_id INTEGER NOT NULL REFERENCES bugs(id),
        at TEXT NOT NULL,
        action TEXT NOT NULL,
        note TEXT
    );
    CREATE INDEX history_by_bug ON history (bug_id, id);
    CREATE TABLE changes (
        history_id INTEGER NOT NULL REFERENCES history(id),
        field TEXT NOT NULL,
        old_value TEXT,
        new_value TEXT,
        PRIMARY KEY (history_id, field)
    ) WITHOUT ROWID;",
    // 2: full-text search over title, description and notes; aliases for imported ids.
    "CREATE VIRTUAL TABLE bug_text USING fts5 (
        title, description, notes, tokenize = 'unicode61 remove_diacritics 2'
    );
    INSERT INTO bug_text (rowid, title, description, notes)
        SELECT b.id, b.title, b.description,
               COALESCE((SELECT group_concat(h.note, char(10)) FROM history h
                         WHERE h.bug_id = b.id AND h.note IS NOT NULL), '')
        FROM bugs b;
    CREATE TABLE aliases (
        project_id INTEGER NOT NULL REFERENCES projects(id),
        alias TEXT NOT NULL,
        bug_id INTEGER NOT NULL REFERENCES bugs(id),
        PRIMARY KEY (project_id, alias)
    ) WITHOUT ROWID;
    CREATE INDEX aliases_by_bug ON aliases (bug_id);",
];

/// The schema version this build writes.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Why the database cannot be used.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The file could not be created or its mode set.
    #[error(
        "cannot create the bug database {path}: {source}\nhint: check permissions, or set plugins.bugtracker.database in the policy"
    )]
    Create {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite refused to open or set up the file.
    #[error(
        "cannot open the bug database {path}: {source}\nhint: is it a SQLite file? Move it aside to start a new one"
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file system cannot hold a WAL database (e.g. a network file system).
    #[error(
        "the bug database {path} cannot use WAL mode (SQLite kept journal_mode {mode}); put it on a local file system"
    )]
    NoWal {
        /// The file.
        path: PathBuf,
        /// The journal mode SQLite reported.
        mode: String,
    },
    /// The file was written by a newer build.
    #[error(
        "the bug database {path} has schema version {found}, newer than this build's {supported}; upgrade mcp-secure-server"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// `PRAGMA user_version` in the file.
        found: i64,
        /// [`current_version`].
        supported: i64,
    },
}

/// One open database, shared by every call of this process.
pub struct Store {
    connection: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// Set to stop the running job at its next progress check (the job then fails and its
/// transaction rolls back).
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Asks the job to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Store {
    /// Opens (creating with mode 0600 if needed) and migrates the database at `path`.
    ///
    /// # Errors
    /// See [`StoreError`].
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Store, StoreError> {
        create_private_file(path)?;
        let open_error = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(open_error)?;
        let mode = configure(&connection, synchronous).map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal {
                path: path.to_owned(),
                mode,
            });
        }
        migrate(&connection, path)?;
        // Seed SQLite's random generator now: it reads /dev/urandom, which the sandbox hides.
        connection
            .query_row("SELECT randomblob(16)", [], |_| Ok(()))
            .map_err(open_error)?;
        Ok(Store {
            connection: Mutex::new(connection),
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `job` on the connection. Once `stop` is set, the job does not start, a running
    /// statement is interrupted between SQLite steps, a wait for another process's write lock
    /// ends, and a COMMIT turns into a rollback: a stopped call changes nothing.
    ///
    /// # Errors
    /// The job's own, or an interrupt error when it was stopped before it began.
    pub fn run<T, E: From<rusqlite::Error>>(
        &self,
        stop: &StopFlag,
        job: impl FnOnce(&mut Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        // A job that panicked left no open transaction behind (dropping it rolled back).
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if stop.is_set() {
            return Err(interrupted().into());
        }
        let _waiting = CurrentStop::install(stop);
        let (steps, commits) = (stop.clone(), stop.clone());
        let hooks = connection
            .progress_handler(PROGRESS_STEPS, Some(move || steps.is_set()))
            .and_then(|()| connection.commit_hook(Some(move || commits.is_set())));
        if let Err(error) = hooks {
            // Without the hooks the job could commit after its caller gave up.
            return Err(error.into());
        }
        let result = job(&mut connection);
        let _ = connection.progress_handler(0, None::<fn() -> bool>);
        let _ = connection.commit_hook(None::<fn() -> bool>);
        result
    }
}

/// The error a stopped job gets (SQLite's own interrupt code).
fn interrupted() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
        Some("stopped before it began".into()),
    )
}

thread_local! {
    /// The stop flag of the job running on this thread, for the busy handler (SQLite takes a
    /// plain function there, not a closure).
    static CURRENT_STOP: std::cell::RefCell<Option<StopFlag>> = const { std::cell::RefCell::new(None) };
}

/// Sets [`CURRENT_STOP`] for the duration of one job, also if it panics.
struct CurrentStop;

impl CurrentStop {
    fn install(stop: &StopFlag) -> CurrentStop {
        CURRENT_STOP.with(|current| *current.borrow_mut() = Some(stop.clone()));
        CurrentStop
    }
}

impl Drop for CurrentStop {
    fn drop(&mut self) {
        CURRENT_STOP.with(|current| *current.borrow_mut() = None);
    }
}

/// SQLite's busy handler: wait for another process's lock with a growing sleep (1 ms up to
/// 20 ms) for about [`BUSY_TIMEOUT`], and give up at once when the running job is stopped.
fn wait_for_lock(attempt: i32) -> bool {
    let stopped =
        CURRENT_STOP.with(|current| current.borrow().as_ref().is_some_and(StopFlag::is_set));
    if stopped {
        return false;
    }
    let attempt = u64::try_from(attempt).unwrap_or(0);
    // Slept so far: 1 + 2 + … + min(attempt, 20), then 20 ms per attempt.
    let ramp = attempt.min(20);
    let slept = ramp * (ramp + 1) / 2 + attempt.saturating_sub(20) * 20;
    if slept >= BUSY_TIMEOUT.as_millis() as u64 {
        return false;
    }
    std::thread::sleep(Duration::from_millis((attempt + 1).min(20)));
    true
}

/// Creates `path` with mode 0600 if it is missing and tightens it if it exists. SQLite gives
/// the `-wal` and `-shm` files the same mode.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |source| StoreError::Create {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(fail)
}

/// Sets the pragmas; returns the journal mode SQLite accepted.
fn configure(connection: &Connection, synchronous: Synchronous) -> rusqlite::Result<String> {
    connection.busy_handler(Some(wait_for_lock))?;
    let mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    // FULL (the default): a bug whose add_bug was answered survives a power cut, not only a
    // crash. NORMAL trades that for about twice the write rate; WAL keeps the file whole.
    let synchronous = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    connection.execute_batch(&format!(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = {synchronous};
         PRAGMA temp_store = MEMORY;"
    ))?;
    Ok(mode)
}

/// Brings the schema to [`current_version`], one transaction per step so that two processes
/// starting at once cannot both run a step.
fn migrate(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    let open_error = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    loop {
        let tx = rusqlite::Transaction::new_unchecked(connection, TransactionBehavior::Immediate)
            .map_err(open_error)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(open_error)?;
        if version > current_version() {
            return Err(StoreError::TooNew {
                path: path.to_owned(),
                found: version,
                supported: current_version(),
            });
        }
        let Some(batch) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            return Ok(());
        };
        tx.execute_batch(batch).map_err(open_error)?;
        tx.pragma_update(None, "user_version", version + 1)
            .map_err(open_error)?;
        tx.commit().map_err(open_error)?;
        tracing::info!(
            database = %path.display(),
            version = version + 1,
            "bug database schema upgraded"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_is_private_and_current() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bugs.db");
        let store = Store::open(&path, Synchronous::Full).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let version: i64 = store
            .run(&StopFlag::default(), |c| {
                c.query_row("PRAGMA user_version", [], |r| r.get(0))
            })
            .unwrap();
        assert_eq!(version, current_version());
        drop(store);
        // Opening again is a no-op migration.
        Store::open(&path, Synchronous::Full).unwrap();
    }

    /// The schema objects of a database, whitespace-normalised, by name.
    fn schema_of(connection: &Connection) -> Vec<(String, String)> {
        connection
            .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .unwrap()
            .query_map([], |r| {
                let sql: String = r.get(1)?;
                Ok((
                    r.get(0)?,
                    sql.split_whitespace().collect::<Vec<_>>().join(" "),
                ))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn migration_one_still_creates_the_frozen_version_one_schema() {
        let frozen = Connection::open_in_memory().unwrap();
        frozen
            .execute_batch(include_str!("../../../tests/fixtures/bugs-schema-v1.sql"))
            .unwrap();
        let fresh = Connection::open_in_memory().unwrap();
        fresh.execute_batch(MIGRATIONS[0]).unwrap();
        assert_eq!(schema_of(&fresh), schema_of(&frozen));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bugs.db");
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let error = Store::open(&path, Synchronous::Full)
            .unwrap_err()
            .to_string();
        assert!(error.contains("schema version 99"), "{error}");
    }

    #[test]
    fn a_stopped_job_is_interrupted_and_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("bugs.db"), Synchronous::Normal).unwrap();
        let count = |store: &Store| -> i64 {
            store
                .run(&StopFlag::default(), |c| {
                    c.query_row("SELECT count(*) FROM projects", [], |r| r.get(0))
                })
                .unwrap()
        };
        // Stopped before it starts: the job never runs.
        let stop = StopFlag::default();
        stop.stop();
        let mut ran = false;
        let result: rusqlite::Result<()> = store.run(&stop, |_| {
            ran = true;
            Ok(())
        });
        assert!(result.is_err() && !ran);
        // Stopped while running: a long statement is interrupted.
        let stop = StopFlag::default();
        let result = store.run(&stop, |c| {
            stop.stop();
            c.query_row(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000000)
                 SELECT count(*) FROM n",
                [],
                |r| r.get::<_, i64>(0),
            )
        });
        assert!(result.is_err(), "{result:?}");
        // Stopped just before COMMIT (a small write never reaches a progress check): rolled back.
        let stop = StopFlag::default();
        let result = store.run(&stop, |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO projects (path, created_at) VALUES ('/p', 'now')",
                [],
            )?;
            stop.stop();
            tx.commit()
        });
        assert!(result.is_err(), "{result:?}");
        assert_eq!(count(&store), 0, "nothing was committed");
        // The next job runs normally.
        store
            .run(&StopFlag::default(), |c| {
                c.execute(
                    "INSERT INTO projects (path, created_at) VALUES ('/p', 'now')",
                    [],
                )
            })
            .unwrap();
        assert_eq!(count(&store), 1);
    }

    #[test]
    fn a_stopped_job_stops_waiting_for_another_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bugs.db");
        let store = Store::open(&path, Synchronous::Normal).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let stop = StopFlag::default();
        let stopper = stop.clone();
        let timer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            stopper.stop();
        });
        // Without the stop this would wait the whole BUSY_TIMEOUT (10 s) and then fail busy.
        let result = store.run(&stop, |c| c.execute_batch("BEGIN IMMEDIATE; COMMIT;"));
        timer.join().unwrap();
        let error = result.unwrap_err();
        assert_eq!(
            error.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy),
            "{error}"
        );
        other.execute_batch("ROLLBACK").unwrap();
    }
}
