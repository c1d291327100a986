//! The bug tracker plugin: seven tools over one SQLite database, scoped by project directory.
//!
//! `project_path` is a `format: path` argument, so the server's path rules have resolved and
//! checked it before a tool runs; when it is omitted, the default (`$MCP_PROJECT_PATH`, else the
//! working directory) goes through the same rules here. Database work runs on tokio's blocking
//! pool; a call that is cancelled or misses its deadline stops its SQLite statement and rolls
//! back.

pub mod import;
pub mod model;
pub mod queries;
pub mod render;
pub mod store;
pub mod tools;

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use self::model::{Priority, RelationKind, Status};
use self::queries::{Action, Filter, NewBug, Project, TrackerError, Update};
use self::store::{StopFlag, Store};
use super::{CallContext, Plugin, ToolDefinition, ToolFuture, ToolResult};
use crate::guard::PathRules;
use crate::policy::model::BugtrackerPolicy;

/// Where `project_path` comes from when a call omits it.
#[derive(Debug, Clone)]
pub struct DefaultProject {
    /// The path as found (not yet checked).
    pub path: String,
    /// Where it came from, for error messages.
    pub source: &'static str,
}

impl DefaultProject {
    /// `$MCP_PROJECT_PATH` if set and non-empty, else `cwd`.
    pub fn from_env(cwd: &std::path::Path) -> Self {
        match std::env::var("MCP_PROJECT_PATH") {
            Ok(path) if !path.is_empty() => DefaultProject {
                path,
                source: "MCP_PROJECT_PATH",
            },
            _ => DefaultProject {
                path: cwd.to_string_lossy().into_owned(),
                source: "the server's working directory",
            },
        }
    }
}

/// The bug tracker plugin.
#[derive(Debug)]
pub struct BugTracker {
    store: Option<Arc<Store>>,
    rules: PathRules,
    default_project: DefaultProject,
}

impl BugTracker {
    /// The category name.
    pub const NAME: &'static str = "bugtracker";

    /// A tracker over the open `store`.
    pub fn new(store: Store, rules: PathRules, default_project: DefaultProject) -> Self {
        BugTracker {
            store: Some(Arc::new(store)),
            rules,
            default_project,
        }
    }

    /// A tracker that only lists its tools (for `check`, which must not create files).
    pub fn unopened(rules: PathRules, default_project: DefaultProject) -> Self {
        BugTracker {
            store: None,
            rules,
            default_project,
        }
    }

    /// The checked project directory of a call.
    fn project_path(&self, given: Option<&str>) -> Result<String, String> {
        if let Some(path) = given {
            // Already resolved and checked by the server's path rules.
            return Ok(path.to_owned());
        }
        let default = &self.default_project;
        self.rules.check(&default.path).map_err(|denial| {
            format!(
                "project_path was not given, and the default from {} ({}) cannot be used: {}; \
                 pass project_path",
                default.source, default.path, denial.message
            )
        })
    }

    /// Runs `job` on the blocking pool; dropping the returned future stops the job.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut rusqlite::Connection) -> Result<T, TrackerError> + Send + 'static,
    ) -> Result<T, String> {
        let Some(store) = self.store.clone() else {
            return Err("the bug database is not open in this mode".into());
        };
        let stop = StopFlag::default();
        let _stop_on_drop = StopOnDrop(stop.clone());
        let task = tokio::task::spawn_blocking(move || store.run(&stop, job));
        match task.await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(join) => Err(format!(
                "the bug tracker failed internally ({join}); the change was rolled back, retry"
            )),
        }
    }

    async fn init(&self, args: ProjectArgs) -> Result<ToolResult, String> {
        let path = self.project_path(args.project_path.as_deref())?;
        if !std::path::Path::new(&path).is_dir() {
            return Err(format!(
                "{path} is not an existing directory; create it first or pass another project_path"
            ));
        }
        let key = path.clone();
        let (_, created, count) = self.run(move |c| queries::init_project(c, &key)).await?;
        Ok(render::initialised(&path, created, count))
    }

    async fn add(&self, args: AddArgs) -> Result<ToolResult, String> {
        let path = self.project_path(args.project_path.as_deref())?;
        let bug = NewBug {
            title: model::normalise_title(&args.title)?,
            description: model::normalise_text(
                "description",
                args.description.as_deref().unwrap_or(""),
            )?,
            priority: parse_priority(args.priority.as_deref())?.unwrap_or(Priority::Medium),
            tags: model::normalise_tags(&args.tags.unwrap_or_default())?,
        };
        let bug = self
            .run(move |c| {
                let project = queries::project(c, &path)?;
                queries::add_bug(c, &project, &bug)
            })
            .await?;
        Ok(render::bug("Added", &bug))
    }

    async fn get(&self, args: BugArgs) -> Result<ToolResult, String> {
        let path = self.project_path(args.project_path.as_deref())?;
        let bug = self
            .run(move |c| {
                let project = queries::project(c, &path)?;
                queries::get_bug(c, &project, &args.bug_id)
            })
            .await?;
        Ok(render::bug("", &bug))
    }

    async fn update(&self, args: UpdateArgs) -> Result<ToolResult, String> {
        let path = self.project_path(args.project_path.as_deref())?;
        let update = Update {
            status: parse_status(args.status.as_deref())?,
            priority: parse_priority(args.priority.as_deref())?,
            tags: args
                .tags
                .as_deref()
                .map(model::normalise_tags)
                .transpose()?,
            title: args
                .title
                .as_deref()
                .map(model::normalise_title)
                .transpose()?,
            description: args
                .description
                .as_deref()
                .map(|d| model::normalise_text("description", d))
                .transpose()?,
            related: args
                .related_bugs
                .map(|list| list.into_iter().map(RelatedArg::into_pair).collect())
                .transpose()?,
            note: args
                .note
                .as_deref()
                .map(|n| model::normalise_text("note", n))
                .transpose()?,
        };
        let bug = self
            .run(move |c| {
                let project = queries::project(c, &path)?;
                queries::update_bug(c, &project, &args.bug_id, &update, Action::Update)
            })
            .await?;
        Ok(render::bug("Updated", &bug))
    }

    async fn close(&self, args: CloseArgs) -> Result<ToolResult, String> {
        let path = self.project_path(args.project_path.as_deref())?;
        let update = Update {
            status: Some(Status::Closed),
            note: args
                .resolution
                .as_deref()
                .map(|n| model::normalise_text("resolution", n))
                .transpose()?,
            ..Update::default()
        };
        let bug = self
            .run(move |c| {
                let project = queries::project(c, &path)?;
                queries::update_bug(c, &project, &args.bug_id, &update, Action::Close)
            })
            .await?;
        Ok(render::bug("Closed", &bug))
    }

    async fn list(&self, args: ListArgs, global: bool) -> Result<ToolResult, String> {
        let filter = args.filter()?;
        let (limit, offset) = (filter.limit, filter.offset);
        if global {
            let rules = self.rules.clone();
            let (page, searched) = self
                .run(move |c| {
                    // Only projects the policy still allows: the list of registered projects
                    // outlives policy changes.
                    let projects: Vec<Project> = queries::all_projects(c)?
                        .into_iter()
                        .filter(|p| {
                            rules
                                .check(&p.path)
                                .is_ok_and(|resolved| resolved == p.path)
                        })
                        .collect();
                    Ok((queries::list_bugs(c, &projects, &filter)?, projects.len()))
                })
                .await?;
            return Ok(render::page(
                &render::Scope::Global(searched),
                &page,
                limit,
                offset,
            ));
        }
        let path = self.project_path(args.project_path.as_deref())?;
        let key = path.clone();
        let page = self
            .run(move |c| {
                let project = queries::project(c, &key)?;
                queries::list_bugs(c, &[project], &filter)
            })
            .await?;
        Ok(render::page(
            &render::Scope::Project(&path),
            &page,
            limit,
            offset,
        ))
    }

    async fn dispatch(
        &self,
        tool: &str,
        arguments: Map<String, Value>,
    ) -> Result<ToolResult, String> {
        let arguments = Value::Object(arguments);
        match tool {
            "init_bugtracker" => self.init(parse(arguments)?).await,
            "add_bug" => self.add(parse(arguments)?).await,
            "get_bug" => self.get(parse(arguments)?).await,
            "update_bug" => self.update(parse(arguments)?).await,
            "close_bug" => self.close(parse(arguments)?).await,
            "list_bugs" => self.list(parse(arguments)?, false).await,
            "search_bugs_global" => self.list(parse(arguments)?, true).await,
            other => Err(format!("the bug tracker has no tool {other:?}")),
        }
    }
}

impl Plugin for BugTracker {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn tools(&self) -> Vec<ToolDefinition> {
        tools::definitions()
    }

    fn built_in(&self) -> Option<super::sealed::BuiltIn> {
        super::built_in()
    }

    fn call<'a>(
        &'a self,
        tool: &'a str,
        arguments: Map<String, Value>,
        _ctx: CallContext,
    ) -> ToolFuture<'a> {
        Box::pin(async move {
            self.dispatch(tool, arguments)
                .await
                .unwrap_or_else(ToolResult::error)
        })
    }
}

/// Stops the blocking job when the call's future is dropped (deadline or cancellation).
struct StopOnDrop(StopFlag);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

fn parse<T: serde::de::DeserializeOwned>(arguments: Value) -> Result<T, String> {
    serde_json::from_value(arguments).map_err(|e| format!("invalid arguments: {e}"))
}

fn parse_status(text: Option<&str>) -> Result<Option<Status>, String> {
    text.map(|t| {
        Status::parse(t)
            .ok_or_else(|| format!("unknown status {t:?}; use one of open, in_progress, closed"))
    })
    .transpose()
}

fn parse_priority(text: Option<&str>) -> Result<Option<Priority>, String> {
    text.map(|t| {
        Priority::parse(t).ok_or_else(|| {
            format!("unknown priority {t:?}; use one of low, medium, high, critical")
        })
    })
    .transpose()
}

#[derive(Deserialize)]
struct ProjectArgs {
    project_path: Option<String>,
}

#[derive(Deserialize)]
struct AddArgs {
    title: String,
    description: Option<String>,
    priority: Option<String>,
    tags: Option<Vec<String>>,
    project_path: Option<String>,
}

#[derive(Deserialize)]
struct BugArgs {
    bug_id: String,
    project_path: Option<String>,
}

#[derive(Deserialize)]
struct CloseArgs {
    bug_id: String,
    resolution: Option<String>,
    project_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RelatedArg {
    Id(String),
    Typed {
        bug_id: String,
        relationship: String,
    },
}

impl RelatedArg {
    fn into_pair(self) -> Result<(String, RelationKind), String> {
        match self {
            RelatedArg::Id(id) => Ok((id, RelationKind::RelatedTo)),
            RelatedArg::Typed {
                bug_id,
                relationship,
            } => RelationKind::parse(&relationship)
                .map(|kind| (bug_id, kind))
                .ok_or_else(|| {
                    format!(
                        "unknown relationship {relationship:?}; use one of duplicate_of, \
                         duplicated_by, related_to, blocks, blocked_by"
                    )
                }),
        }
    }
}

#[derive(Deserialize)]
struct UpdateArgs {
    bug_id: String,
    status: Option<String>,
    priority: Option<String>,
    tags: Option<Vec<String>>,
    title: Option<String>,
    description: Option<String>,
    related_bugs: Option<Vec<RelatedArg>>,
    note: Option<String>,
    project_path: Option<String>,
}

#[derive(Deserialize)]
struct ListArgs {
    status: Option<String>,
    priority: Option<String>,
    tags: Option<Vec<String>>,
    query: Option<String>,
    ready: Option<bool>,
    limit: Option<u32>,
    offset: Option<u32>,
    project_path: Option<String>,
}

impl ListArgs {
    fn filter(&self) -> Result<Filter, String> {
        let text = match self.query.as_deref() {
            None => None,
            Some(q) => Some(model::fts_query(q).ok_or_else(|| {
                "query has no words to search for; give at least one word or omit it".to_owned()
            })?),
        };
        Ok(Filter {
            status: parse_status(self.status.as_deref())?,
            priority: parse_priority(self.priority.as_deref())?,
            tags: model::normalise_tags(self.tags.as_deref().unwrap_or_default())?,
            text,
            ready: self.ready.unwrap_or(false),
            limit: self
                .limit
                .unwrap_or(tools::DEFAULT_PAGE)
                .clamp(1, tools::MAX_PAGE),
            offset: self.offset.unwrap_or(0),
        })
    }
}

/// Opens the database a policy names (for `serve`, before the sandbox is applied).
///
/// # Errors
/// See [`store::StoreError`].
pub fn open(
    settings: &BugtrackerPolicy,
    rules: PathRules,
    cwd: &std::path::Path,
) -> Result<BugTracker, store::StoreError> {
    let store = Store::open(&settings.database, settings.synchronous)?;
    Ok(BugTracker::new(store, rules, DefaultProject::from_env(cwd)))
}
