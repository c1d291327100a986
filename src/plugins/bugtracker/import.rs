//! `bugs import`: moves a database of the Python original into ours.
//!
//! The original keeps one SQLite file per project (`PROJECT/.bugtracker/bugs.db`) with a single
//! `bugs` table: text ids such as `bug-1a2b3c4d`, and JSON in `tags`, `related_bugs`
//! (`[{"bug_id", "relationship"}]`) and `history` (`[{"timestamp", "changes": {field: [old,
//! new]}, "note"}]`). Each bug gets the project's next `BUG-NNN`, keeps its old id as an alias,
//! and keeps its history; relations are re-linked once every bug exists. The whole import is
//! one transaction, and a bug whose old id is already an alias is skipped, so running it twice
//! changes nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Deserialize;
use serde_json::Value;

use super::model::{self, BugNumber, Priority, RelationKind, Status};
use super::queries::{self, Change, NewBug, TrackerError};

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The project the bugs went to.
    pub project: String,
    /// New id for each imported old id, in import order.
    pub bugs: Vec<(String, BugNumber)>,
    /// Old ids already present (from an earlier import).
    pub skipped: Vec<String>,
    /// Relations that pointed at bugs not in the file.
    pub dangling_relations: Vec<String>,
}

/// One row of the original's `bugs` table.
struct OldBug {
    id: String,
    title: String,
    description: Option<String>,
    status: String,
    priority: String,
    tags: String,
    related_bugs: String,
    created_at: String,
    history: String,
}

#[derive(Deserialize)]
struct OldRelation {
    bug_id: String,
    relationship: String,
}

#[derive(Deserialize)]
struct OldHistory {
    timestamp: String,
    #[serde(default)]
    changes: HashMap<String, Value>,
    #[serde(default)]
    note: Option<String>,
}

/// The project an old database belongs to: the directory holding its `.bugtracker` folder.
pub fn default_project(old_database: &Path) -> Option<PathBuf> {
    let folder = old_database.parent()?;
    (folder.file_name()? == ".bugtracker").then(|| folder.parent().map(Path::to_path_buf))?
}

/// Imports `old_database` into project `project` (a resolved directory) of `connection`.
///
/// # Errors
/// The old file cannot be read, a row is not in the original's format (the message names the
/// bug and field), or SQLite fails; nothing is imported then.
pub fn import(
    connection: &mut Connection,
    old_database: &Path,
    project: &str,
) -> Result<Imported, TrackerError> {
    let old = read_old(old_database)?;
    // The project is registered in the same transaction: a failed import leaves nothing.
    let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (project, _) = queries::ensure_project(&tx, project)?;
    let mut imported = Imported {
        project: project.path.clone(),
        bugs: Vec::new(),
        skipped: Vec::new(),
        dangling_relations: Vec::new(),
    };
    let mut rows: HashMap<String, i64> = HashMap::new();
    let mut new_rows = std::collections::HashSet::new();
    for bug in &old {
        let alias = bug.id.trim().to_lowercase();
        let existing: Option<i64> = tx
            .query_row(
                "SELECT bug_id FROM aliases WHERE project_id = ?1 AND alias = ?2",
                params![project.id, alias],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(row) = existing {
            rows.insert(alias.clone(), row);
            imported.skipped.push(bug.id.clone());
            continue;
        }
        let row = import_bug(&tx, &project, bug)?;
        tx.execute(
            "INSERT INTO aliases (project_id, alias, bug_id) VALUES (?1, ?2, ?3)",
            params![project.id, alias, row],
        )?;
        let number: i64 =
            tx.query_row("SELECT number FROM bugs WHERE id = ?1", [row], |r| r.get(0))?;
        rows.insert(alias, row);
        new_rows.insert(row);
        imported.bugs.push((bug.id.clone(), BugNumber(number)));
    }
    for bug in &old {
        let relations: Vec<OldRelation> = json_column(&bug.id, "related_bugs", &bug.related_bugs)?;
        let Some(&row) = rows.get(&bug.id.trim().to_lowercase()) else {
            continue;
        };
        for relation in relations {
            let kind = RelationKind::parse(&relation.relationship).ok_or_else(|| {
                invalid(
                    &bug.id,
                    "related_bugs",
                    &format!("unknown relationship {:?}", relation.relationship),
                )
            })?;
            let described = format!("{} {} {}", bug.id, kind.as_str(), relation.bug_id);
            match rows.get(&relation.bug_id.trim().to_lowercase()) {
                // A relation between two bugs of an earlier import is left as it is now: it
                // may have been changed since.
                Some(&other) if other != row => {
                    if new_rows.contains(&row) || new_rows.contains(&other) {
                        queries::link(&tx, row, kind, other)?;
                    }
                }
                Some(_) => imported
                    .dangling_relations
                    .push(format!("{described} (a bug cannot relate to itself)")),
                None => imported
                    .dangling_relations
                    .push(format!("{described} (the other bug is not in the file)")),
            }
        }
    }
    tx.commit()?;
    Ok(imported)
}

fn invalid(bug: &str, field: &str, message: &str) -> TrackerError {
    TrackerError::Invalid(format!(
        "bug {bug}: {field}: {message}; fix the row in the old database or remove it, then import again"
    ))
}

fn json_column<T: serde::de::DeserializeOwned>(
    bug: &str,
    field: &str,
    text: &str,
) -> Result<T, TrackerError> {
    serde_json::from_str(if text.trim().is_empty() { "[]" } else { text })
        .map_err(|e| invalid(bug, field, &format!("not the original's JSON ({e})")))
}

fn read_old(path: &Path) -> Result<Vec<OldBug>, TrackerError> {
    let old = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let has_table: bool = old
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'bugs'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)?;
    if !has_table {
        return Err(TrackerError::Invalid(format!(
            "{} has no `bugs` table; give the original's PROJECT/.bugtracker/bugs.db",
            path.display()
        )));
    }
    let mut statement = old.prepare(
        "SELECT id, title, description, status, priority, tags, related_bugs, created_at, history
         FROM bugs ORDER BY created_at, id",
    )?;
    let rows = statement.query_map([], |r| {
        Ok(OldBug {
            id: r.get(0)?,
            title: r.get(1)?,
            description: r.get(2)?,
            status: r.get(3)?,
            priority: r.get(4)?,
            tags: r.get(5)?,
            related_bugs: r.get(6)?,
            created_at: r.get(7)?,
            history: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Change values of the original are `[old, new]` pairs of strings, nulls or lists.
fn change_value(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), String::from))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        other => Some(other.to_string()),
    }
}

/// A one-line title of at most [`model::MAX_TITLE_CHARS`]; true when it had to change.
fn lenient_title(raw: &str) -> (String, bool) {
    let one_line = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut title: String = one_line.chars().take(model::MAX_TITLE_CHARS).collect();
    if title.is_empty() {
        title = "(untitled)".into();
    }
    let changed = title != raw;
    (title, changed)
}

/// Tags made acceptable (commas and control characters become `-`, over-long tags are cut);
/// returns the kept tags and those beyond [`model::MAX_TAGS`].
fn lenient_tags(raw: &[String]) -> (Vec<String>, Vec<String>) {
    let cleaned: Vec<String> = raw
        .iter()
        .map(|tag| {
            tag.chars()
                .map(|c| if c == ',' || c.is_control() { '-' } else { c })
                .take(model::MAX_TAG_CHARS)
                .collect::<String>()
        })
        .filter(|tag| !tag.trim().is_empty())
        .collect();
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for tag in cleaned {
        let candidate: Vec<String> = kept.iter().cloned().chain([tag.clone()]).collect();
        match model::normalise_tags(&candidate) {
            Ok(_) => kept.push(tag),
            Err(_) => dropped.push(tag),
        }
    }
    let kept = model::normalise_tags(&kept).unwrap_or_default();
    (kept, dropped)
}

fn import_bug(
    tx: &rusqlite::Transaction<'_>,
    project: &queries::Project,
    bug: &OldBug,
) -> Result<i64, TrackerError> {
    let status = Status::parse(&bug.status).ok_or_else(|| {
        invalid(
            &bug.id,
            "status",
            &format!("unknown status {:?}", bug.status),
        )
    })?;
    let priority = Priority::parse(&bug.priority).ok_or_else(|| {
        invalid(
            &bug.id,
            "priority",
            &format!("unknown priority {:?}", bug.priority),
        )
    })?;
    let tags: Vec<String> = json_column(&bug.id, "tags", &bug.tags)?;
    // The original checked neither titles nor tags: adapt them instead of refusing the row,
    // and say in the history what was changed.
    let mut adapted = Vec::new();
    let (title, shortened) = lenient_title(&bug.title);
    if shortened {
        adapted.push(format!("original title: {}", bug.title));
    }
    let (tags, dropped) = lenient_tags(&tags);
    if !dropped.is_empty() {
        adapted.push(format!("tags not kept: {}", dropped.join(", ")));
    }
    let new = NewBug {
        title,
        description: bug.description.as_deref().unwrap_or("").trim().to_owned(),
        priority,
        tags,
    };
    let history: Vec<OldHistory> = json_column(&bug.id, "history", &bug.history)?;
    let row = queries::insert_bug(tx, project, &new, status, &bug.created_at)?;
    queries::record_at(tx, row, &bug.created_at, "created", None, &[])?;
    let mut last = bug.created_at.clone();
    for entry in &history {
        let mut changes: Vec<Change> = entry
            .changes
            .iter()
            .map(|(field, pair)| {
                let pair = pair.as_array().map(Vec::as_slice).unwrap_or_default();
                Change {
                    field: field.clone(),
                    old: pair.first().and_then(change_value),
                    new: pair.get(1).and_then(change_value),
                }
            })
            .collect();
        changes.sort_by(|a, b| a.field.cmp(&b.field));
        queries::record_at(
            tx,
            row,
            &entry.timestamp,
            "updated",
            entry.note.as_deref(),
            &changes,
        )?;
        last = last.max(entry.timestamp.clone());
    }
    queries::record(
        tx,
        row,
        "imported",
        Some(&format!(
            "imported from the original tracker (id {})",
            bug.id
        )),
        &[],
    )?;
    tx.execute(
        "UPDATE bugs SET updated_at = ?2 WHERE id = ?1",
        params![row, last],
    )?;
    if status == Status::Closed {
        tx.execute(
            "UPDATE bugs SET closed_at = ?2 WHERE id = ?1",
            params![row, last],
        )?;
    }
    queries::refresh_text(tx, row)?;
    Ok(row)
}
