//! The seven tool definitions: names and arguments of the original README (every original
//! argument is here; `title`, `description`, `query`, `ready`, `limit` and `offset` are ours),
//! and the output schemas of their `structuredContent`.

use serde_json::{Value, json};

use super::model::{MAX_TAG_CHARS, MAX_TAGS, MAX_TEXT_CHARS, MAX_TITLE_CHARS};
use crate::plugins::{ToolAnnotations, ToolDefinition};

/// Largest `limit` of `list_bugs` and `search_bugs_global`.
pub const MAX_PAGE: u32 = 500;
/// Default `limit`.
pub const DEFAULT_PAGE: u32 = 50;

const STATUSES: [&str; 3] = ["open", "in_progress", "closed"];
const PRIORITIES: [&str; 4] = ["low", "medium", "high", "critical"];
const RELATIONS: [&str; 5] = [
    "duplicate_of",
    "duplicated_by",
    "related_to",
    "blocks",
    "blocked_by",
];

fn project_path() -> Value {
    json!({
        "type": "string",
        "format": "path",
        "maxLength": 4096,
        "description": "Project directory (defaults to $MCP_PROJECT_PATH, else the server's working directory); must be inside filesystem.allowed_paths"
    })
}

fn bug_id(what: &str) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 64, "description": what})
}

fn tags(description: &str) -> Value {
    json!({
        "type": "array",
        "maxItems": MAX_TAGS,
        "items": {"type": "string", "maxLength": MAX_TAG_CHARS * 4},
        "description": description
    })
}

fn text(description: &str, max: usize) -> Value {
    json!({"type": "string", "maxLength": max * 4, "description": description})
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false
    })
}

fn filters(with_project: bool) -> Value {
    let mut properties = json!({
        "status": {"type": "string", "enum": STATUSES, "description": "Only bugs with this status"},
        "priority": {"type": "string", "enum": PRIORITIES, "description": "Only bugs with this priority"},
        "tags": tags("Only bugs that have ALL of these tags"),
        "query": {"type": "string", "maxLength": 1000, "description": "Full-text search in titles, descriptions and notes; every word must appear, 'word*' matches a prefix"},
        "ready": {"type": "boolean", "description": "Only open bugs none of whose blockers (blocked_by) is still open or in progress"},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE, "description": "Bugs per page"},
        "offset": {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0, "description": "Bugs to skip (for the next page)"}
    });
    if with_project {
        properties["project_path"] = project_path();
    }
    object(properties, &[])
}

fn summary_properties() -> Value {
    json!({
        "id": {"type": "string"},
        "project_path": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "string", "enum": STATUSES},
        "priority": {"type": "string", "enum": PRIORITIES},
        "tags": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
        "closed_at": {"type": ["string", "null"]}
    })
}

const SUMMARY_REQUIRED: [&str; 9] = [
    "id",
    "project_path",
    "title",
    "status",
    "priority",
    "tags",
    "created_at",
    "updated_at",
    "closed_at",
];

/// `structuredContent` of the tools that return one bug.
fn bug_output() -> Value {
    let mut properties = summary_properties();
    properties["description"] = json!({"type": "string"});
    properties["aliases"] = json!({"type": "array", "items": {"type": "string"}});
    properties["related_bugs"] = json!({
        "type": "array",
        "items": object(json!({
            "bug_id": {"type": "string"},
            "relationship": {"type": "string", "enum": RELATIONS},
            "title": {"type": "string"},
            "status": {"type": "string", "enum": STATUSES}
        }), &["bug_id", "relationship", "title", "status"])
    });
    properties["history"] = json!({
        "type": "array",
        "items": object(json!({
            "timestamp": {"type": "string"},
            "action": {"type": "string"},
            "note": {"type": ["string", "null"]},
            "changes": {
                "type": "array",
                "items": object(json!({
                    "field": {"type": "string"},
                    "old": {"type": ["string", "null"]},
                    "new": {"type": ["string", "null"]}
                }), &["field", "old", "new"])
            }
        }), &["timestamp", "action", "note", "changes"])
    });
    let mut required: Vec<&str> = SUMMARY_REQUIRED.to_vec();
    required.extend(["description", "aliases", "related_bugs", "history"]);
    object(properties, &required)
}

fn list_output() -> Value {
    object(
        json!({
            "project_path": {"type": "string"},
            "projects_searched": {"type": "integer", "minimum": 0},
            "total": {"type": "integer", "minimum": 0},
            "offset": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 1},
            "bugs": {"type": "array", "items": object(summary_properties(), &SUMMARY_REQUIRED)}
        }),
        &["total", "offset", "limit", "bugs"],
    )
}

fn writes(idempotent: bool) -> ToolAnnotations {
    ToolAnnotations {
        read_only: false,
        destructive: false,
        idempotent,
        open_world: false,
    }
}

/// The seven tools, in the original's order.
pub fn definitions() -> Vec<ToolDefinition> {
    let project_only = object(json!({"project_path": project_path()}), &[]);
    vec![
        ToolDefinition {
            name: "init_bugtracker".into(),
            title: Some("Initialise bug tracking".into()),
            description: "Start tracking bugs for a project directory (it must exist). Safe to \
                call again: an initialised project is left as it is."
                .into(),
            input_schema: project_only,
            output_schema: Some(object(
                json!({
                    "project_path": {"type": "string"},
                    "created": {"type": "boolean"},
                    "bug_count": {"type": "integer", "minimum": 0}
                }),
                &["project_path", "created", "bug_count"],
            )),
            annotations: writes(true),
        },
        ToolDefinition {
            name: "add_bug".into(),
            title: Some("Add a bug".into()),
            description: "Add a new bug to the project's tracker; it gets the next id (BUG-001, \
                BUG-002, …) and status open."
                .into(),
            input_schema: object(
                json!({
                    "title": text("Brief title for the bug (one line)", MAX_TITLE_CHARS),
                    "description": text("Detailed description", MAX_TEXT_CHARS),
                    "priority": {"type": "string", "enum": PRIORITIES, "default": "medium", "description": "Bug priority (default: medium)"},
                    "tags": tags("Tags for categorisation (lowercased, de-duplicated)"),
                    "project_path": project_path()
                }),
                &["title"],
            ),
            output_schema: Some(bug_output()),
            annotations: writes(false),
        },
        ToolDefinition {
            name: "get_bug".into(),
            title: Some("Get a bug".into()),
            description: "Retrieve a bug by id, with its description, relations and full \
                history."
                .into(),
            input_schema: object(
                json!({
                    "bug_id": bug_id("The bug id, e.g. BUG-001 (or an imported id such as bug-1a2b3c4d)"),
                    "project_path": project_path()
                }),
                &["bug_id"],
            ),
            output_schema: Some(bug_output()),
            annotations: ToolAnnotations::READ_ONLY,
        },
        ToolDefinition {
            name: "update_bug".into(),
            title: Some("Update a bug".into()),
            description: "Change a bug's status, priority, tags, title, description or related \
                bugs, and/or add a note. Each call adds one history entry listing every changed \
                field; a call that changes nothing and has no note is refused."
                .into(),
            input_schema: object(
                json!({
                    "bug_id": bug_id("The bug id to update"),
                    "status": {"type": "string", "enum": STATUSES},
                    "priority": {"type": "string", "enum": PRIORITIES},
                    "tags": tags("New tags (replaces the existing ones)"),
                    "title": text("New title", MAX_TITLE_CHARS),
                    "description": text("New description", MAX_TEXT_CHARS),
                    "related_bugs": {
                        "type": "array",
                        "maxItems": 100,
                        "description": "Related bugs with relationship type (replaces the existing ones; the other bug gets the inverse relation). A plain id means related_to.",
                        "items": {"anyOf": [
                            bug_id("A bug id (related_to)"),
                            object(json!({
                                "bug_id": bug_id("The other bug"),
                                "relationship": {"type": "string", "enum": RELATIONS}
                            }), &["bug_id", "relationship"])
                        ]}
                    },
                    "note": text("Note for the history entry (progress, reason for the change)", MAX_TEXT_CHARS),
                    "project_path": project_path()
                }),
                &["bug_id"],
            ),
            output_schema: Some(bug_output()),
            annotations: writes(false),
        },
        ToolDefinition {
            name: "close_bug".into(),
            title: Some("Close a bug".into()),
            description: "Close a bug, recording the resolution as the history note.".into(),
            input_schema: object(
                json!({
                    "bug_id": bug_id("The bug id to close"),
                    "resolution": text("Resolution note explaining how the bug was fixed", MAX_TEXT_CHARS),
                    "project_path": project_path()
                }),
                &["bug_id"],
            ),
            output_schema: Some(bug_output()),
            annotations: writes(false),
        },
        ToolDefinition {
            name: "list_bugs".into(),
            title: Some("List bugs".into()),
            description: "List a project's bugs, filtered by status, priority, tags (all must \
                match), full text and readiness; critical first, then by id. Paged with limit \
                and offset; the total count is included."
                .into(),
            input_schema: filters(true),
            output_schema: Some(list_output()),
            annotations: ToolAnnotations::READ_ONLY,
        },
        ToolDefinition {
            name: "search_bugs_global".into(),
            title: Some("Search bugs in every project".into()),
            description: "Search the bugs of every initialised project inside \
                filesystem.allowed_paths, with the same filters as list_bugs; each result \
                names its project."
                .into(),
            input_schema: filters(false),
            output_schema: Some(list_output()),
            annotations: ToolAnnotations::READ_ONLY,
        },
    ]
}
