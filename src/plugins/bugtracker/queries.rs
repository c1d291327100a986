//! Every read and write of the bug tracker, as functions over one SQLite connection.
//!
//! Writes run in one `BEGIN IMMEDIATE` transaction each: the write lock is taken up front, so
//! two processes never interleave a read-modify-write, and a crash leaves either all of a call
//! or none of it. Every lookup by bug id is scoped to one project.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use thiserror::Error;

use super::model::{BugNumber, MAX_RELATIONS, Priority, RelationKind, Status};

/// Why a tracker operation failed; the text is meant for the model and says what to do.
#[derive(Debug, Error)]
pub enum TrackerError {
    /// The project has no tracker yet.
    #[error(
        "no bug tracker is initialised for {0}; call init_bugtracker with project_path {0:?} first"
    )]
    NotInitialised(String),
    /// No such bug in this project.
    #[error(
        "{reference} not found in project {project}; ids look like BUG-001 (imported bugs also answer to their old id), and list_bugs shows them"
    )]
    BugNotFound {
        /// What the client asked for.
        reference: String,
        /// The project searched.
        project: String,
    },
    /// The arguments are valid JSON but not a valid request.
    #[error("{0}")]
    Invalid(String),
    /// SQLite failed.
    #[error("{}", sql_message(.0))]
    Sql(#[from] rusqlite::Error),
}

fn sql_message(error: &rusqlite::Error) -> String {
    let stopped_at_commit = matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_COMMITHOOK
    );
    if stopped_at_commit {
        return "the call was stopped (deadline or cancellation) before its change was \
                committed; nothing was changed"
            .into();
    }
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            "the bug database is busy (another process holds its write lock); retry".into()
        }
        Some(rusqlite::ErrorCode::OperationInterrupted) => {
            "the database operation was stopped (deadline or cancellation); nothing was changed"
                .into()
        }
        Some(rusqlite::ErrorCode::DiskFull) => {
            "the disk holding the bug database is full; free space and retry".into()
        }
        _ => format!("bug database error: {error}"),
    }
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, TrackerError>;

/// A registered project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Row id.
    pub id: i64,
    /// The resolved directory.
    pub path: String,
}

/// A bug's own fields, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct BugSummary {
    /// Row id (never shown).
    pub row: i64,
    /// The project's directory.
    pub project_path: String,
    /// `BUG-NNN`.
    pub number: BugNumber,
    /// One-line summary.
    pub title: String,
    /// Current status.
    pub status: Status,
    /// Current priority.
    pub priority: Priority,
    /// Normalised, sorted tags.
    pub tags: Vec<String>,
    /// RFC 3339 timestamps.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Set while the bug is closed.
    pub closed_at: Option<String>,
}

/// Everything about one bug, as `get_bug` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bug {
    /// The listed fields.
    pub summary: BugSummary,
    /// The long text.
    pub description: String,
    /// Old ids this bug answers to (from `bugs import`).
    pub aliases: Vec<String>,
    /// Relations, sorted by kind then bug.
    pub relations: Vec<Relation>,
    /// Oldest first.
    pub history: Vec<HistoryEntry>,
}

/// One relation as seen from the bug that has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    /// How this bug relates to the other.
    pub kind: RelationKind,
    /// The other bug.
    pub number: BugNumber,
    /// Its title.
    pub title: String,
    /// Its status.
    pub status: Status,
}

/// One history entry: what one call changed.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// When.
    pub at: String,
    /// `created`, `updated`, `closed` or `imported`.
    pub action: String,
    /// The note, resolution or import remark.
    pub note: Option<String>,
    /// Field changes, sorted by field.
    pub changes: Vec<Change>,
}

/// One field's change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The field name (`status`, `tags`…).
    pub field: String,
    /// Before (`None` when unset).
    pub old: Option<String>,
    /// After.
    pub new: Option<String>,
}

/// A new bug, already normalised.
#[derive(Debug, Clone)]
pub struct NewBug {
    /// Trimmed title.
    pub title: String,
    /// Trimmed description.
    pub description: String,
    /// Priority.
    pub priority: Priority,
    /// Normalised tags.
    pub tags: Vec<String>,
}

/// What `update_bug` (or `close_bug`) asks to change; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct Update {
    /// New status.
    pub status: Option<Status>,
    /// New priority.
    pub priority: Option<Priority>,
    /// Replacement tags.
    pub tags: Option<Vec<String>>,
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Replacement relations: (bug reference, kind).
    pub related: Option<Vec<(String, RelationKind)>>,
    /// Note for the history entry.
    pub note: Option<String>,
}

/// What an update call is, for its history entry and its preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `update_bug`.
    Update,
    /// `close_bug`: refused when the bug is already closed.
    Close,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Update => "updated",
            Action::Close => "closed",
        }
    }
}

/// Filters of `list_bugs` and `search_bugs_global`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only this priority.
    pub priority: Option<Priority>,
    /// Bugs having all of these (normalised) tags.
    pub tags: Vec<String>,
    /// An FTS5 query (see `model::fts_query`).
    pub text: Option<String>,
    /// Only open bugs with no blocker that is still open.
    pub ready: bool,
    /// Page size.
    pub limit: u32,
    /// Rows skipped.
    pub offset: u32,
}

/// One page of bugs and how many match in all.
#[derive(Debug, Clone)]
pub struct Page {
    /// Matches across all pages.
    pub total: u64,
    /// This page, ordered by priority (critical first), project, then number.
    pub bugs: Vec<BugSummary>,
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

fn immediate(connection: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    connection.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// Registers `path`; returns the project, whether it is new, and its bug count.
///
/// # Errors
/// SQLite failures.
pub fn init_project(connection: &mut Connection, path: &str) -> Result<(Project, bool, u64)> {
    let tx = immediate(connection)?;
    let (project, created) = ensure_project(&tx, path)?;
    let count: i64 = tx.query_row(
        "SELECT count(*) FROM bugs WHERE project_id = ?1",
        [project.id],
        |r| r.get(0),
    )?;
    tx.commit()?;
    Ok((project, created, u64::try_from(count).unwrap_or(0)))
}

/// The project at `path`, registered inside `tx` if it is new; true when it is new.
pub(super) fn ensure_project(
    tx: &Transaction<'_>,
    path: &str,
) -> rusqlite::Result<(Project, bool)> {
    if let Some(project) = project_in(tx, path)? {
        return Ok((project, false));
    }
    tx.execute(
        "INSERT INTO projects (path, created_at) VALUES (?1, ?2)",
        params![path, now()],
    )?;
    let project = Project {
        id: tx.last_insert_rowid(),
        path: path.to_owned(),
    };
    Ok((project, true))
}

fn project_in(connection: &Connection, path: &str) -> rusqlite::Result<Option<Project>> {
    connection
        .query_row(
            "SELECT id, path FROM projects WHERE path = ?1",
            [path],
            |r| {
                Ok(Project {
                    id: r.get(0)?,
                    path: r.get(1)?,
                })
            },
        )
        .optional()
}

/// The registered project at `path`.
///
/// # Errors
/// [`TrackerError::NotInitialised`] when it is not registered.
pub fn project(connection: &Connection, path: &str) -> Result<Project> {
    project_in(connection, path)?.ok_or_else(|| TrackerError::NotInitialised(path.to_owned()))
}

/// Every registered project, by path.
///
/// # Errors
/// SQLite failures.
pub fn all_projects(connection: &Connection) -> Result<Vec<Project>> {
    let mut statement = connection.prepare_cached("SELECT id, path FROM projects ORDER BY path")?;
    let rows = statement.query_map([], |r| {
        Ok(Project {
            id: r.get(0)?,
            path: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Adds a bug and its `created` history entry; returns it.
///
/// # Errors
/// SQLite failures.
pub fn add_bug(connection: &mut Connection, project: &Project, bug: &NewBug) -> Result<Bug> {
    let tx = immediate(connection)?;
    let row = insert_bug(&tx, project, bug, Status::Open, &now())?;
    record(&tx, row, "created", None, &[])?;
    refresh_text(&tx, row)?;
    tx.commit()?;
    load_bug(connection, project, row)
}

/// Inserts the bug row and its tags under the project's next number; returns the row id.
pub(super) fn insert_bug(
    tx: &Transaction<'_>,
    project: &Project,
    bug: &NewBug,
    status: Status,
    at: &str,
) -> Result<i64> {
    // Numbers come from a counter, not max(number) + 1, so they are never reused.
    let number: i64 = tx.query_row(
        "UPDATE projects SET next_number = next_number + 1 WHERE id = ?1 RETURNING next_number - 1",
        [project.id],
        |r| r.get(0),
    )?;
    let closed_at = (status == Status::Closed).then_some(at);
    tx.execute(
        "INSERT INTO bugs (project_id, number, title, description, status, priority,
                           created_at, updated_at, closed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
        params![
            project.id,
            number,
            bug.title,
            bug.description,
            status.as_str(),
            bug.priority.as_str(),
            at,
            closed_at,
        ],
    )?;
    let row = tx.last_insert_rowid();
    set_tags(tx, row, &bug.tags)?;
    Ok(row)
}

fn set_tags(tx: &Transaction<'_>, row: i64, tags: &[String]) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM tags WHERE bug_id = ?1", [row])?;
    let mut insert = tx.prepare_cached("INSERT INTO tags (bug_id, tag) VALUES (?1, ?2)")?;
    for tag in tags {
        insert.execute(params![row, tag])?;
    }
    Ok(())
}

/// Writes one history entry with its changes; returns its id.
pub(super) fn record(
    tx: &Transaction<'_>,
    row: i64,
    action: &str,
    note: Option<&str>,
    changes: &[Change],
) -> rusqlite::Result<i64> {
    record_at(tx, row, &now(), action, note, changes)
}

/// [`record`] with an explicit time (imports keep the original's timestamps).
pub(super) fn record_at(
    tx: &Transaction<'_>,
    row: i64,
    at: &str,
    action: &str,
    note: Option<&str>,
    changes: &[Change],
) -> rusqlite::Result<i64> {
    tx.prepare_cached("INSERT INTO history (bug_id, at, action, note) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![row, at, action, note])?;
    let id = tx.last_insert_rowid();
    let mut insert = tx.prepare_cached(
        "INSERT INTO changes (history_id, field, old_value, new_value) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for change in changes {
        insert.execute(params![id, change.field, change.old, change.new])?;
    }
    Ok(id)
}

/// Rewrites the bug's full-text row from its title, description and notes.
pub(super) fn refresh_text(tx: &Transaction<'_>, row: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM bug_text WHERE rowid = ?1")?
        .execute([row])?;
    tx.prepare_cached(
        "INSERT INTO bug_text (rowid, title, description, notes)
         SELECT b.id, b.title, b.description,
                COALESCE((SELECT group_concat(h.note, char(10)) FROM history h
                          WHERE h.bug_id = b.id AND h.note IS NOT NULL), '')
         FROM bugs b WHERE b.id = ?1",
    )?
    .execute([row])?;
    Ok(())
}

/// The row id of the bug `reference` names in `project`: an imported alias, or `BUG-NNN`.
///
/// # Errors
/// Not a bug id, or no such bug in this project.
pub fn resolve(connection: &Connection, project: &Project, reference: &str) -> Result<i64> {
    let wanted = reference.trim();
    // BUG-NNN first, so that an imported id spelled like one cannot hide a bug of ours.
    if let Some(number) = BugNumber::parse(wanted) {
        let row: Option<i64> = connection
            .prepare_cached("SELECT id FROM bugs WHERE project_id = ?1 AND number = ?2")?
            .query_row(params![project.id, number.0], |r| r.get(0))
            .optional()?;
        if let Some(row) = row {
            return Ok(row);
        }
    }
    let by_alias: Option<i64> = connection
        .prepare_cached("SELECT bug_id FROM aliases WHERE project_id = ?1 AND alias = ?2")?
        .query_row(params![project.id, wanted.to_lowercase()], |r| r.get(0))
        .optional()?;
    by_alias.ok_or_else(|| TrackerError::BugNotFound {
        reference: BugNumber::parse(wanted)
            .map_or_else(|| format!("{wanted:?}"), |n| n.to_string()),
        project: project.path.clone(),
    })
}

const SUMMARY_COLUMNS: &str = "b.id, p.path, b.number, b.title, b.status, b.priority, \
     COALESCE((SELECT group_concat(t.tag, ',') FROM (SELECT tag FROM tags WHERE bug_id = b.id ORDER BY tag) t), ''), \
     b.created_at, b.updated_at, b.closed_at";

fn summary_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<BugSummary> {
    let status: String = row.get(4)?;
    let priority: String = row.get(5)?;
    let tags: String = row.get(6)?;
    let bad = |column: usize, what: &str, value: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            format!("the database holds an unknown {what} {value:?}").into(),
        )
    };
    Ok(BugSummary {
        row: row.get(0)?,
        project_path: row.get(1)?,
        number: BugNumber(row.get(2)?),
        title: row.get(3)?,
        status: Status::parse(&status).ok_or_else(|| bad(4, "status", &status))?,
        priority: Priority::parse(&priority).ok_or_else(|| bad(5, "priority", &priority))?,
        tags: tags
            .split(',')
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        closed_at: row.get(9)?,
    })
}

/// Everything about the bug at `row`.
///
/// # Errors
/// SQLite failures.
pub fn load_bug(connection: &Connection, project: &Project, row: i64) -> Result<Bug> {
    let (summary, description) = connection
        .prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS}, b.description FROM bugs b \
             JOIN projects p ON p.id = b.project_id WHERE b.id = ?1 AND b.project_id = ?2"
        ))?
        .query_row(params![row, project.id], |r| {
            Ok((summary_from(r)?, r.get::<_, String>(10)?))
        })?;
    let aliases = connection
        .prepare_cached("SELECT alias FROM aliases WHERE bug_id = ?1 ORDER BY alias")?
        .query_map([row], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    let relations = connection
        .prepare_cached(
            "SELECT r.kind, o.number, o.title, o.status FROM relations r
             JOIN bugs o ON o.id = r.other_id WHERE r.bug_id = ?1 ORDER BY r.kind, o.number",
        )?
        .query_map([row], |r| {
            let kind: String = r.get(0)?;
            let status: String = r.get(3)?;
            Ok(Relation {
                kind: RelationKind::parse(&kind).unwrap_or(RelationKind::RelatedTo),
                number: BugNumber(r.get(1)?),
                title: r.get(2)?,
                status: Status::parse(&status).unwrap_or(Status::Open),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut history: Vec<(i64, HistoryEntry)> = connection
        .prepare_cached("SELECT id, at, action, note FROM history WHERE bug_id = ?1 ORDER BY id")?
        .query_map([row], |r| {
            Ok((
                r.get(0)?,
                HistoryEntry {
                    at: r.get(1)?,
                    action: r.get(2)?,
                    note: r.get(3)?,
                    changes: Vec::new(),
                },
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut changes = connection.prepare_cached(
        "SELECT c.history_id, c.field, c.old_value, c.new_value FROM changes c
         JOIN history h ON h.id = c.history_id WHERE h.bug_id = ?1 ORDER BY c.history_id, c.field",
    )?;
    let mut rows = changes.query([row])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        if let Ok(index) = history.binary_search_by_key(&id, |(hid, _)| *hid) {
            history[index].1.changes.push(Change {
                field: r.get(1)?,
                old: r.get(2)?,
                new: r.get(3)?,
            });
        }
    }
    Ok(Bug {
        summary,
        description,
        aliases,
        relations,
        history: history.into_iter().map(|(_, entry)| entry).collect(),
    })
}

/// The bug `reference` names in `project`.
///
/// # Errors
/// See [`resolve`].
pub fn get_bug(connection: &Connection, project: &Project, reference: &str) -> Result<Bug> {
    // One read transaction: every part of the bug comes from the same snapshot.
    let snapshot = connection.unchecked_transaction()?;
    let row = resolve(&snapshot, project, reference)?;
    let bug = load_bug(&snapshot, project, row)?;
    snapshot.finish()?;
    Ok(bug)
}

fn relations_text(relations: &BTreeSet<(RelationKind, i64)>, numbers: &[(i64, i64)]) -> String {
    let number_of = |row: i64| {
        numbers
            .iter()
            .find(|(r, _)| *r == row)
            .map_or(0, |(_, n)| *n)
    };
    let mut text = String::new();
    for (kind, other) in relations {
        if !text.is_empty() {
            text.push_str(", ");
        }
        let _ = write!(text, "{} {}", kind.as_str(), BugNumber(number_of(*other)));
    }
    text
}

/// Applies `update` to the bug `reference` names, recording one history entry with `action`.
///
/// # Errors
/// Unknown bug, a relation to an unknown bug or to itself, a no-op update, SQLite failures.
pub fn update_bug(
    connection: &mut Connection,
    project: &Project,
    reference: &str,
    update: &Update,
    action: Action,
) -> Result<Bug> {
    let tx = immediate(connection)?;
    let row = resolve(&tx, project, reference)?;
    let current = load_bug(&tx, project, row)?;
    let summary = &current.summary;
    // Checked inside the write transaction, so two processes cannot both close the bug.
    if action == Action::Close && summary.status == Status::Closed {
        return Err(TrackerError::Invalid(format!(
            "{} is already closed (at {}); use update_bug to reopen it or to add a note",
            summary.number,
            summary.closed_at.as_deref().unwrap_or("unknown time")
        )));
    }
    let mut changes = Vec::new();
    let mut change = |field: &str, old: &str, new: &str| {
        if old != new {
            changes.push(Change {
                field: field.into(),
                old: Some(old.into()),
                new: Some(new.into()),
            });
        }
    };
    if let Some(title) = &update.title {
        change("title", &summary.title, title);
    }
    if let Some(description) = &update.description {
        change("description", &current.description, description);
    }
    if let Some(status) = update.status {
        change("status", summary.status.as_str(), status.as_str());
    }
    if let Some(priority) = update.priority {
        change("priority", summary.priority.as_str(), priority.as_str());
    }
    if let Some(tags) = &update.tags {
        change("tags", &summary.tags.join(", "), &tags.join(", "));
    }
    let mut relation_change = None;
    if let Some(related) = &update.related {
        let wanted = resolve_relations(&tx, project, row, related)?;
        let existing = relations_of(&tx, row)?;
        if wanted != existing {
            let rows: Vec<i64> = wanted.iter().chain(&existing).map(|(_, o)| *o).collect();
            let numbers = numbers_of(&tx, &rows)?;
            change(
                "related_bugs",
                &relations_text(&existing, &numbers),
                &relations_text(&wanted, &numbers),
            );
            relation_change = Some((existing, wanted));
        }
    }
    let note = update.note.as_deref().filter(|n| !n.is_empty());
    if changes.is_empty() && note.is_none() {
        return Err(TrackerError::Invalid(format!(
            "nothing to change: {} already has these values; give a different value or a note",
            summary.number
        )));
    }

    let at = now();
    if let Some(title) = &update.title {
        tx.execute(
            "UPDATE bugs SET title = ?2 WHERE id = ?1",
            params![row, title],
        )?;
    }
    if let Some(description) = &update.description {
        tx.execute(
            "UPDATE bugs SET description = ?2 WHERE id = ?1",
            params![row, description],
        )?;
    }
    if let Some(status) = update.status.filter(|s| *s != summary.status) {
        let closed_at = (status == Status::Closed).then_some(at.as_str());
        tx.execute(
            "UPDATE bugs SET status = ?2, closed_at = ?3 WHERE id = ?1",
            params![row, status.as_str(), closed_at],
        )?;
    }
    if let Some(priority) = update.priority {
        tx.execute(
            "UPDATE bugs SET priority = ?2 WHERE id = ?1",
            params![row, priority.as_str()],
        )?;
    }
    if let Some(tags) = &update.tags {
        set_tags(&tx, row, tags)?;
    }
    if let Some((existing, wanted)) = &relation_change {
        // The other side of each changed relation gets its own history entry.
        let others: BTreeSet<i64> = existing
            .symmetric_difference(wanted)
            .map(|(_, other)| *other)
            .collect();
        let before = others
            .iter()
            .map(|other| Ok((*other, relations_of(&tx, *other)?)))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (kind, other) in existing.difference(wanted) {
            unlink(&tx, row, *kind, *other)?;
        }
        for (kind, other) in wanted.difference(existing) {
            link(&tx, row, *kind, *other)?;
        }
        for (other, old) in before {
            let new = relations_of(&tx, other)?;
            let rows: Vec<i64> = old.iter().chain(&new).map(|(_, o)| *o).collect();
            let numbers = numbers_of(&tx, &rows)?;
            let note = format!("relations changed by an update of {}", summary.number);
            let change = Change {
                field: "related_bugs".into(),
                old: Some(relations_text(&old, &numbers)),
                new: Some(relations_text(&new, &numbers)),
            };
            record_at(&tx, other, &at, "related", Some(&note), &[change])?;
            tx.execute(
                "UPDATE bugs SET updated_at = ?2 WHERE id = ?1",
                params![other, at],
            )?;
            refresh_text(&tx, other)?;
        }
    }
    tx.execute(
        "UPDATE bugs SET updated_at = ?2 WHERE id = ?1",
        params![row, at],
    )?;
    record_at(&tx, row, &at, action.as_str(), note, &changes)?;
    refresh_text(&tx, row)?;
    tx.commit()?;
    load_bug(connection, project, row)
}

/// Stores `row kind other` and its inverse.
pub(super) fn link(
    tx: &Transaction<'_>,
    row: i64,
    kind: RelationKind,
    other: i64,
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO relations (bug_id, kind, other_id) VALUES (?1, ?2, ?3)",
    )?;
    insert.execute(params![row, kind.as_str(), other])?;
    insert.execute(params![other, kind.inverse().as_str(), row])?;
    Ok(())
}

fn unlink(tx: &Transaction<'_>, row: i64, kind: RelationKind, other: i64) -> rusqlite::Result<()> {
    let mut delete = tx.prepare_cached(
        "DELETE FROM relations WHERE bug_id = ?1 AND kind = ?2 AND other_id = ?3",
    )?;
    delete.execute(params![row, kind.as_str(), other])?;
    delete.execute(params![other, kind.inverse().as_str(), row])?;
    Ok(())
}

/// The relations a bug has, from its side.
fn relations_of(
    connection: &Connection,
    row: i64,
) -> rusqlite::Result<BTreeSet<(RelationKind, i64)>> {
    connection
        .prepare_cached("SELECT kind, other_id FROM relations WHERE bug_id = ?1")?
        .query_map([row], |r| {
            let kind: String = r.get(0)?;
            Ok((
                RelationKind::parse(&kind).unwrap_or(RelationKind::RelatedTo),
                r.get::<_, i64>(1)?,
            ))
        })?
        .collect()
}

fn numbers_of(connection: &Connection, rows: &[i64]) -> rusqlite::Result<Vec<(i64, i64)>> {
    let mut statement = connection.prepare_cached("SELECT number FROM bugs WHERE id = ?1")?;
    rows.iter()
        .map(|row| Ok((*row, statement.query_row([row], |r| r.get(0))?)))
        .collect()
}

fn resolve_relations(
    connection: &Connection,
    project: &Project,
    row: i64,
    related: &[(String, RelationKind)],
) -> Result<BTreeSet<(RelationKind, i64)>> {
    if related.len() > MAX_RELATIONS {
        return Err(TrackerError::Invalid(format!(
            "{} related bugs given; a bug can have at most {MAX_RELATIONS}",
            related.len()
        )));
    }
    let mut wanted = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (reference, kind) in related {
        let other = resolve(connection, project, reference).map_err(|e| match e {
            TrackerError::BugNotFound { .. } => TrackerError::Invalid(format!("related_bugs: {e}")),
            other => other,
        })?;
        if other == row {
            return Err(TrackerError::Invalid(format!(
                "related_bugs: {reference} is the bug being updated; a bug cannot relate to itself"
            )));
        }
        if !seen.insert(other) {
            return Err(TrackerError::Invalid(format!(
                "related_bugs: {reference} is listed twice; give each related bug once, with one relationship"
            )));
        }
        wanted.insert((*kind, other));
    }
    Ok(wanted)
}

/// Bugs of `projects` matching `filter`, one page of them.
///
/// # Errors
/// SQLite failures.
pub fn list_bugs(connection: &Connection, projects: &[Project], filter: &Filter) -> Result<Page> {
    // The page and (for an empty page) the count come from one snapshot.
    let snapshot = connection.unchecked_transaction()?;
    let page = list_in(&snapshot, projects, filter)?;
    snapshot.finish()?;
    Ok(page)
}

fn list_in(connection: &Connection, projects: &[Project], filter: &Filter) -> Result<Page> {
    if projects.is_empty() {
        return Ok(Page {
            total: 0,
            bugs: Vec::new(),
        });
    }
    let mut conditions = Vec::new();
    let mut values: Vec<SqlValue> = Vec::new();
    let placeholders = vec!["?"; projects.len()].join(", ");
    conditions.push(format!("b.project_id IN ({placeholders})"));
    values.extend(projects.iter().map(|p| SqlValue::Integer(p.id)));
    if let Some(status) = filter.status {
        conditions.push("b.status = ?".into());
        values.push(SqlValue::Text(status.as_str().into()));
    }
    if let Some(priority) = filter.priority {
        conditions.push("b.priority = ?".into());
        values.push(SqlValue::Text(priority.as_str().into()));
    }
    if !filter.tags.is_empty() {
        // One index range per tag (tags_by_name), intersected.
        let per_tag = vec!["SELECT bug_id FROM tags WHERE tag = ?"; filter.tags.len()];
        conditions.push(format!("b.id IN ({})", per_tag.join(" INTERSECT ")));
        values.extend(filter.tags.iter().map(|t| SqlValue::Text(t.clone())));
    }
    if let Some(text) = &filter.text {
        conditions.push("b.id IN (SELECT rowid FROM bug_text WHERE bug_text MATCH ?)".into());
        values.push(SqlValue::Text(text.clone()));
    }
    if filter.ready {
        conditions.push(
            "b.status = 'open' AND NOT EXISTS (SELECT 1 FROM relations r \
             JOIN bugs blocker ON blocker.id = r.other_id \
             WHERE r.bug_id = b.id AND r.kind = 'blocked_by' AND blocker.status != 'closed')"
                .into(),
        );
    }
    let clause = conditions.join(" AND ");
    values.push(SqlValue::Integer(i64::from(filter.limit)));
    values.push(SqlValue::Integer(i64::from(filter.offset)));
    // One pass: the page is chosen on sort keys alone, with the match count as a window
    // column; the summary columns (tags need a subquery) are computed for the page only.
    let mut total = None;
    let bugs = connection
        .prepare(&format!(
            "WITH page AS (SELECT b.id, CASE b.priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1 \
             WHEN 'medium' THEN 2 ELSE 3 END AS rank, p.path AS path, b.number AS number, \
             count(*) OVER () AS total \
             FROM bugs b JOIN projects p ON p.id = b.project_id WHERE {clause} \
             ORDER BY rank, path, number LIMIT ? OFFSET ?) \
             SELECT {SUMMARY_COLUMNS}, page.total FROM page JOIN bugs b ON b.id = page.id \
             JOIN projects p ON p.id = b.project_id ORDER BY page.rank, page.path, page.number"
        ))?
        .query_map(rusqlite::params_from_iter(values.iter()), |row| {
            Ok((summary_from(row)?, row.get::<_, i64>(10)?))
        })?
        .map(|row| {
            row.map(|(bug, count)| {
                total = Some(count);
                bug
            })
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = match total {
        Some(total) => total,
        // An empty page (no match, or offset past the end) still reports the count.
        None => connection
            .prepare(&format!("SELECT count(*) FROM bugs b WHERE {clause}"))?
            .query_row(
                rusqlite::params_from_iter(&values[..values.len() - 2]),
                |r| r.get(0),
            )?,
    };
    Ok(Page {
        total: u64::try_from(total).unwrap_or(0),
        bugs,
    })
}
