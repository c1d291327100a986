//! The discovery plugin: `search_tools` and `list_categories`, always registered.
//!
//! They let an agent find the few tools it needs instead of loading every schema into its
//! context (progressive disclosure, as in the original project). Both return JSON as text and
//! as `structuredContent` matching their `outputSchema`.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{CallContext, Plugin, ToolAnnotations, ToolDefinition, ToolFuture, ToolResult};

/// Every category and its tools, fixed at start-up.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Categories in registration order (discovery first).
    pub categories: Vec<CatalogCategory>,
}

/// One plugin as the catalog sees it.
#[derive(Debug, Clone)]
pub struct CatalogCategory {
    /// The plugin name.
    pub name: String,
    /// The plugin version.
    pub version: String,
    /// Its tools.
    pub tools: Vec<ToolDefinition>,
}

/// How much `search_tools` returns per tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DetailLevel {
    Name,
    Summary,
    Full,
}

impl DetailLevel {
    fn parse(value: Option<&Value>) -> Self {
        // The schema's enum has already refused anything else.
        match value.and_then(Value::as_str) {
            Some("name") => DetailLevel::Name,
            Some("full") => DetailLevel::Full,
            _ => DetailLevel::Summary,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            DetailLevel::Name => "name",
            DetailLevel::Summary => "summary",
            DetailLevel::Full => "full",
        }
    }
}

/// The discovery plugin.
#[derive(Debug)]
pub struct Discovery {
    catalog: Arc<Catalog>,
}

impl Discovery {
    /// The category name.
    pub const NAME: &'static str = "discovery";
    /// The plugin version.
    pub const VERSION: &'static str = "1.0.0";

    /// A discovery plugin over `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Discovery { catalog }
    }

    /// The two tool definitions (also needed before the catalog exists).
    pub fn definitions() -> Vec<ToolDefinition> {
        let read_only = ToolAnnotations::READ_ONLY;
        vec![
            ToolDefinition {
                name: "search_tools".into(),
                title: Some("Search tools".into()),
                description: "Search the available tools by keyword (matched against names, \
                    titles and descriptions, case-insensitively; name matches rank first) and/or \
                    category. Use detail_level to control how much is returned: 'name' (names \
                    only), 'summary' (names and descriptions, the default) or 'full' (complete \
                    schemas)."
                    .into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "query": {
                            "type": "string",
                            "maxLength": 256,
                            "description": "Keyword to search in tool names, titles and descriptions; omit to list all"
                        },
                        "category": {
                            "type": "string",
                            "maxLength": 128,
                            "description": "Only tools of this category (e.g. 'bugtracker'); see list_categories"
                        },
                        "detail_level": {
                            "type": "string",
                            "enum": ["name", "summary", "full"],
                            "default": "summary",
                            "description": "'name' (just names), 'summary' (names + descriptions), 'full' (complete schemas)"
                        }
                    },
                    "additionalProperties": false
                }),
                output_schema: Some(json!({
                    "type": "object",
                    "properties": {
                        "detail_level": {"type": "string", "enum": ["name", "summary", "full"]},
                        "count": {"type": "integer", "minimum": 0},
                        "tools": {
                            "type": "array",
                            "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}
                        }
                    },
                    "required": ["detail_level", "count", "tools"],
                    "additionalProperties": false
                })),
                annotations: read_only,
            },
            ToolDefinition {
                name: "list_categories".into(),
                title: Some("List tool categories".into()),
                description: "List the tool categories (plugins) with their version, tool count \
                    and tool names. Use this first to see what the server can do, then \
                    search_tools for details."
                    .into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {},
                    "additionalProperties": false
                }),
                output_schema: Some(json!({
                    "type": "object",
                    "properties": {
                        "categories": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "category": {"type": "string"},
                                    "version": {"type": "string"},
                                    "tool_count": {"type": "integer", "minimum": 0},
                                    "tools": {"type": "array", "items": {"type": "string"}}
                                },
                                "required": ["category", "version", "tool_count", "tools"],
                                "additionalProperties": false
                            }
                        }
                    },
                    "required": ["categories"],
                    "additionalProperties": false
                })),
                annotations: read_only,
            },
        ]
    }

    fn list_categories(&self) -> ToolResult {
        let categories: Vec<Value> = self
            .catalog
            .categories
            .iter()
            .map(|c| {
                json!({
                    "category": c.name,
                    "version": c.version,
                    "tool_count": c.tools.len(),
                    "tools": c.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
                })
            })
            .collect();
        ToolResult::structured(json!({ "categories": categories }))
    }

    fn search_tools(&self, arguments: &Map<String, Value>) -> ToolResult {
        let level = DetailLevel::parse(arguments.get("detail_level"));
        let query = arguments
            .get("query")
            .and_then(Value::as_str)
            .map(|q| q.trim().to_lowercase())
            .unwrap_or_default();
        let category = arguments.get("category").and_then(Value::as_str);
        if let Some(wanted) = category
            && !self.catalog.categories.iter().any(|c| c.name == wanted)
        {
            let known: Vec<&str> = self
                .catalog
                .categories
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            return ToolResult::error(format!(
                "unknown category {wanted:?}; available categories: {}",
                known.join(", ")
            ));
        }
        let mut hits: Vec<(u8, usize, &CatalogCategory, &ToolDefinition)> = Vec::new();
        let mut position = 0usize;
        for c in &self.catalog.categories {
            for tool in &c.tools {
                position += 1;
                if category.is_some_and(|wanted| wanted != c.name) {
                    continue;
                }
                if let Some(rank) = rank(tool, &query) {
                    hits.push((rank, position, c, tool));
                }
            }
        }
        hits.sort_by_key(|&(rank, position, _, _)| (rank, position));
        let tools: Vec<Value> = hits
            .iter()
            .map(|&(_, _, c, tool)| describe(tool, &c.name, level))
            .collect();
        ToolResult::structured(json!({
            "detail_level": level.as_str(),
            "count": tools.len(),
            "tools": tools,
        }))
    }
}

/// Lower is better: exact name, name contains, title contains, description contains.
/// An empty query matches everything equally.
fn rank(tool: &ToolDefinition, query: &str) -> Option<u8> {
    if query.is_empty() {
        return Some(0);
    }
    let name = tool.name.to_lowercase();
    if name == query {
        Some(0)
    } else if name.contains(query) {
        Some(1)
    } else if tool
        .title
        .as_deref()
        .is_some_and(|t| t.to_lowercase().contains(query))
    {
        Some(2)
    } else if tool.description.to_lowercase().contains(query) {
        Some(3)
    } else {
        None
    }
}

fn describe(tool: &ToolDefinition, category: &str, level: DetailLevel) -> Value {
    match level {
        DetailLevel::Name => json!(tool.name),
        DetailLevel::Summary => {
            let mut summary = json!({
                "name": tool.name,
                "category": category,
                "description": tool.description,
            });
            if let Some(title) = &tool.title {
                summary["title"] = json!(title);
            }
            summary
        }
        DetailLevel::Full => {
            let mut full = tool.to_mcp();
            full["category"] = json!(category);
            full
        }
    }
}

impl Plugin for Discovery {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn version(&self) -> &str {
        Self::VERSION
    }

    fn tools(&self) -> Vec<ToolDefinition> {
        Self::definitions()
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
        let result = match tool {
            "search_tools" => self.search_tools(&arguments),
            "list_categories" => self.list_categories(),
            other => ToolResult::error(format!("discovery has no tool {other:?}")),
        };
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::ArgumentSchema;

    fn def(name: &str, title: Option<&str>, description: &str) -> ToolDefinition {
        ToolDefinition {
            name: name.into(),
            title: title.map(String::from),
            description: description.into(),
            input_schema: json!({"type": "object", "additionalProperties": false}),
            output_schema: None,
            annotations: ToolAnnotations {
                read_only: false,
                destructive: true,
                idempotent: false,
                open_world: false,
            },
        }
    }

    fn discovery() -> Discovery {
        let mut categories = vec![CatalogCategory {
            name: "discovery".into(),
            version: "1.0.0".into(),
            tools: Discovery::definitions(),
        }];
        categories.push(CatalogCategory {
            name: "bugtracker".into(),
            version: "2.0.0".into(),
            tools: vec![
                def("list_bugs", Some("List bugs"), "List bugs of a project"),
                def("add_bug", None, "Add a new bug"),
                def("triage", Some("Triage a BUG"), "Sort things"),
                def(
                    "close_issue",
                    None,
                    "Close; mentions bug in the description",
                ),
            ],
        });
        Discovery::new(Arc::new(Catalog { categories }))
    }

    fn search(args: Value) -> ToolResult {
        discovery().search_tools(args.as_object().unwrap())
    }

    fn check_output(tool: &str, result: &ToolResult) {
        let schema = Discovery::definitions()
            .into_iter()
            .find(|d| d.name == tool)
            .and_then(|d| d.output_schema)
            .unwrap();
        let structured = result.structured_content.clone().unwrap();
        ArgumentSchema::compile(&schema)
            .unwrap()
            .check(&structured)
            .unwrap();
        let text = match &result.content[0] {
            crate::plugins::Content::Text { text } => text.clone(),
        };
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), structured);
    }

    #[test]
    fn name_matches_rank_before_title_and_description_matches() {
        let result = search(json!({"query": "BUG", "detail_level": "name"}));
        check_output("search_tools", &result);
        assert_eq!(
            result.structured_content.unwrap()["tools"],
            json!(["list_bugs", "add_bug", "triage", "close_issue"])
        );
    }

    #[test]
    fn category_filter_and_detail_levels() {
        let result = search(json!({"category": "discovery", "detail_level": "full"}));
        check_output("search_tools", &result);
        let tools = result.structured_content.unwrap()["tools"].clone();
        assert_eq!(tools.as_array().unwrap().len(), 2);
        assert_eq!(tools[0]["name"], "search_tools");
        assert_eq!(tools[0]["inputSchema"]["type"], "object");
        assert_eq!(tools[0]["category"], "discovery");

        let result = search(json!({"query": "add"}));
        check_output("search_tools", &result);
        assert_eq!(
            result.structured_content.unwrap()["tools"],
            json!([{"name": "add_bug", "category": "bugtracker", "description": "Add a new bug"}])
        );
    }

    #[test]
    fn unknown_category_is_an_actionable_error_and_no_match_is_empty() {
        let result = search(json!({"category": "nope"}));
        assert!(result.is_error);
        assert!(
            result
                .to_mcp()
                .to_string()
                .contains("available categories: discovery, bugtracker")
        );
        let result = search(json!({"query": "zzz"}));
        assert!(!result.is_error);
        assert_eq!(result.structured_content.unwrap()["count"], 0);
    }

    #[test]
    fn list_categories_counts_tools() {
        let result = discovery().list_categories();
        check_output("list_categories", &result);
        assert_eq!(
            result.structured_content.unwrap()["categories"][1],
            json!({"category": "bugtracker", "version": "2.0.0", "tool_count": 4,
                   "tools": ["list_bugs", "add_bug", "triage", "close_issue"]})
        );
    }
}
