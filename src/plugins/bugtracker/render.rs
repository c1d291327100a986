//! Tool results: a readable text block for the model plus `structuredContent` that matches the
//! tool's output schema (see `tools.rs`).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::queries::{Bug, BugSummary, Page};
use crate::plugins::ToolResult;

fn summary_json(bug: &BugSummary) -> Value {
    json!({
        "id": bug.number.to_string(),
        "project_path": bug.project_path,
        "title": bug.title,
        "status": bug.status.as_str(),
        "priority": bug.priority.as_str(),
        "tags": bug.tags,
        "created_at": bug.created_at,
        "updated_at": bug.updated_at,
        "closed_at": bug.closed_at,
    })
}

fn summary_line(bug: &BugSummary, with_project: bool) -> String {
    let mut line = format!(
        "{} [{}, {}] {}",
        bug.number,
        bug.status.as_str(),
        bug.priority.as_str(),
        bug.title
    );
    if !bug.tags.is_empty() {
        let _ = write!(line, "  tags: {}", bug.tags.join(", "));
    }
    if with_project {
        let _ = write!(line, "  ({})", bug.project_path);
    }
    line
}

/// One bug, in full; `headline` says what just happened ("Added", "Updated"…).
pub fn bug(headline: &str, bug: &Bug) -> ToolResult {
    let s = &bug.summary;
    let mut text = format!("{headline} {}\n", summary_line(s, false));
    let _ = writeln!(text, "Project: {}", s.project_path);
    let _ = write!(text, "Created: {}  Updated: {}", s.created_at, s.updated_at);
    if let Some(closed) = &s.closed_at {
        let _ = write!(text, "  Closed: {closed}");
    }
    text.push('\n');
    if !bug.aliases.is_empty() {
        let _ = writeln!(text, "Also known as: {}", bug.aliases.join(", "));
    }
    for relation in &bug.relations {
        let _ = writeln!(
            text,
            "Related: {} {} [{}] {}",
            relation.kind.as_str(),
            relation.number,
            relation.status.as_str(),
            relation.title
        );
    }
    if !bug.description.is_empty() {
        let _ = writeln!(
            text,
            "Description:\n  {}",
            bug.description.replace('\n', "\n  ")
        );
    }
    text.push_str("History:\n");
    for entry in &bug.history {
        let _ = write!(text, "  {} {}", entry.at, entry.action);
        for change in &entry.changes {
            let _ = write!(
                text,
                "; {}: {} -> {}",
                change.field,
                change.old.as_deref().unwrap_or("(none)"),
                change.new.as_deref().unwrap_or("(none)")
            );
        }
        if let Some(note) = &entry.note {
            let _ = write!(text, " -- {note}");
        }
        text.push('\n');
    }

    let mut structured = summary_json(s);
    structured["description"] = json!(bug.description);
    structured["aliases"] = json!(bug.aliases);
    structured["related_bugs"] = bug
        .relations
        .iter()
        .map(|r| {
            json!({
                "bug_id": r.number.to_string(),
                "relationship": r.kind.as_str(),
                "title": r.title,
                "status": r.status.as_str(),
            })
        })
        .collect();
    structured["history"] = bug
        .history
        .iter()
        .map(|h| {
            json!({
                "timestamp": h.at,
                "action": h.action,
                "note": h.note,
                "changes": h.changes.iter().map(|c| json!({
                    "field": c.field, "old": c.old, "new": c.new
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    ToolResult::text_and_structured(text, structured)
}

/// `init_bugtracker`.
pub fn initialised(project_path: &str, created: bool, bug_count: u64) -> ToolResult {
    let text = if created {
        format!(
            "Bug tracking initialised for {project_path}. Add bugs with add_bug; their ids start at BUG-001."
        )
    } else {
        format!("Bug tracking was already initialised for {project_path} ({bug_count} bugs).")
    };
    ToolResult::text_and_structured(
        text,
        json!({"project_path": project_path, "created": created, "bug_count": bug_count}),
    )
}

/// Where a page came from, for its text and structured form.
pub enum Scope<'a> {
    /// `list_bugs` on one project.
    Project(&'a str),
    /// `search_bugs_global` over this many projects.
    Global(usize),
}

/// `list_bugs` and `search_bugs_global`.
pub fn page(scope: &Scope<'_>, page: &Page, limit: u32, offset: u32) -> ToolResult {
    let global = matches!(scope, Scope::Global(_));
    let mut text = match scope {
        Scope::Project(path) => format!("{} bug(s) match in {path}", page.total),
        Scope::Global(n) => format!("{} bug(s) match in {n} project(s)", page.total),
    };
    if page.bugs.is_empty() {
        text.push_str(if offset > 0 && page.total > 0 {
            "; this page is past the last one (lower offset)."
        } else {
            "."
        });
    } else {
        let first = u64::from(offset) + 1;
        let last = u64::from(offset) + page.bugs.len() as u64;
        let _ = write!(text, "; showing {first}-{last}:");
        for bug in &page.bugs {
            text.push('\n');
            text.push_str(&summary_line(bug, global));
        }
        if last < page.total {
            let _ = write!(text, "\nMore: call again with offset {last}.");
        }
    }
    let mut structured = json!({
        "total": page.total,
        "offset": offset,
        "limit": limit,
        "bugs": page.bugs.iter().map(summary_json).collect::<Vec<_>>(),
    });
    match scope {
        Scope::Project(path) => structured["project_path"] = json!(path),
        Scope::Global(n) => structured["projects_searched"] = json!(n),
    }
    ToolResult::text_and_structured(text, structured)
}
