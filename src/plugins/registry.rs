//! The registry: every plugin's tools, checked and indexed once at start-up.
//!
//! Building it validates what MCP and our own rules require of a tool (name syntax, unique
//! names, a description, a 2020-12 `inputSchema` whose root is a closed object) and compiles
//! the schemas of every plugin from outside, so a broken plugin stops the server at start-up
//! with a message rather than failing on its first call. The crate's own plugins' schemas are
//! constants that the tests compile; theirs are compiled on first use. The discovery plugin is
//! always registered first.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use thiserror::Error;

use super::discovery::{Catalog, CatalogCategory, Discovery};
use super::{Plugin, ToolDefinition};
use crate::guard::ArgumentSchema;

/// Longest tool name MCP allows.
const MAX_TOOL_NAME: usize = 128;

/// Why the plugin set cannot be served.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RegistryError {
    /// Two plugins share a category name.
    #[error("plugin name {0:?} is registered twice; give each plugin its own name")]
    DuplicatePlugin(String),
    /// A plugin name is empty or has characters other than `[a-z0-9_-]`.
    #[error("plugin name {0:?} is invalid; use lowercase letters, digits, '_' and '-'")]
    BadPluginName(String),
    /// Two tools share a name.
    #[error("tool {tool:?} is defined by both {first:?} and {second:?}; tool names must be unique")]
    DuplicateTool {
        /// The tool name.
        tool: String,
        /// The plugin that registered it first.
        first: String,
        /// The plugin that tried again.
        second: String,
    },
    /// A tool definition breaks a rule.
    #[error("plugin {plugin:?}, tool {tool:?}: {problem}")]
    BadTool {
        /// The plugin.
        plugin: String,
        /// The tool.
        tool: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

/// A tool ready to be called: its plugin and its compiled argument schema.
pub struct RegisteredTool {
    /// The tool as its plugin defined it.
    pub definition: ToolDefinition,
    /// The plugin that runs it.
    pub plugin: Arc<dyn Plugin>,
    /// The compiled `inputSchema`.
    pub arguments: ArgumentSchema,
    /// Arguments whose schema says `"format": "path"` or `"format": "command"`.
    pub formatted: Vec<FormattedArgument>,
}

/// A guarded argument format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgumentFormat {
    /// `"format": "path"`: the path rules apply.
    Path,
    /// `"format": "command"`: the command rules apply.
    Command,
}

/// A top-level argument (or array of them) with a guarded format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormattedArgument {
    /// The property name.
    pub name: String,
    /// Its format.
    pub format: ArgumentFormat,
    /// An array whose items have the format.
    pub array: bool,
}

/// Every `"format": "path" | "command"` anywhere in a schema.
fn count_guarded_formats(schema: &Value) -> usize {
    match schema {
        Value::Object(map) => {
            let here = matches!(
                map.get("format").and_then(Value::as_str),
                Some("path" | "command")
            );
            usize::from(here) + map.values().map(count_guarded_formats).sum::<usize>()
        }
        Value::Array(items) => items.iter().map(count_guarded_formats).sum(),
        _ => 0,
    }
}

/// Finds the guarded arguments of a schema: top-level properties and arrays of them.
fn formatted_arguments(schema: &Value) -> Vec<FormattedArgument> {
    let format_of = |v: &Value| match v.get("format").and_then(Value::as_str) {
        Some("path") => Some(ArgumentFormat::Path),
        Some("command") => Some(ArgumentFormat::Command),
        _ => None,
    };
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .filter_map(|(name, property)| {
            let (format, array) = match format_of(property) {
                Some(format) => (format, false),
                None => (property.get("items").and_then(format_of)?, true),
            };
            Some(FormattedArgument {
                name: name.clone(),
                format,
                array,
            })
        })
        .collect()
}

/// All tools, in a deterministic order: discovery first, then plugins in registration order,
/// each plugin's tools in the order it lists them.
pub struct Registry {
    tools: Vec<RegisteredTool>,
    by_name: HashMap<String, usize>,
    catalog: Arc<Catalog>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("tools", &self.by_name.len())
            .finish()
    }
}

impl Registry {
    /// Validates and indexes `plugins`, with the discovery plugin in front.
    ///
    /// # Errors
    /// The first rule a plugin or tool breaks.
    pub fn build(plugins: Vec<Arc<dyn Plugin>>) -> Result<Self, RegistryError> {
        let mut categories = vec![CatalogCategory {
            name: Discovery::NAME.to_owned(),
            version: Discovery::VERSION.to_owned(),
            tools: Discovery::definitions(),
        }];
        for plugin in &plugins {
            categories.push(CatalogCategory {
                name: plugin.name().to_owned(),
                version: plugin.version().to_owned(),
                tools: plugin.tools(),
            });
        }
        let catalog = Arc::new(Catalog { categories });
        let discovery: Arc<dyn Plugin> = Arc::new(Discovery::new(Arc::clone(&catalog)));
        let providers: Vec<Arc<dyn Plugin>> = std::iter::once(discovery).chain(plugins).collect();

        let mut tools = Vec::new();
        let mut by_name = HashMap::new();
        let mut owners: HashMap<String, String> = HashMap::new();
        let mut seen_plugins = Vec::<String>::new();
        for (category, plugin) in catalog.categories.iter().zip(providers) {
            check_plugin_name(&category.name)?;
            if seen_plugins.contains(&category.name) {
                return Err(RegistryError::DuplicatePlugin(category.name.clone()));
            }
            seen_plugins.push(category.name.clone());
            for definition in &category.tools {
                let arguments =
                    check_tool(&category.name, definition, plugin.built_in().is_some())?;
                if let Some(first) = owners.insert(definition.name.clone(), category.name.clone()) {
                    return Err(RegistryError::DuplicateTool {
                        tool: definition.name.clone(),
                        first,
                        second: category.name.clone(),
                    });
                }
                by_name.insert(definition.name.clone(), tools.len());
                tools.push(RegisteredTool {
                    formatted: formatted_arguments(&definition.input_schema),
                    definition: definition.clone(),
                    plugin: Arc::clone(&plugin),
                    arguments,
                });
            }
        }
        Ok(Registry {
            tools,
            by_name,
            catalog,
        })
    }

    /// All tools in listing order.
    pub fn tools(&self) -> &[RegisteredTool] {
        &self.tools
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&RegisteredTool> {
        self.by_name.get(name).map(|&i| &self.tools[i])
    }

    /// Categories with their tools, as the discovery tools see them.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

fn check_plugin_name(name: &str) -> Result<(), RegistryError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(RegistryError::BadPluginName(name.to_owned()))
    }
}

/// Checks a tool's name, description and schemas. Schemas from outside are compiled now, so a
/// bad one stops start-up; built-in ones (`built_in`) are compiled by the tests and, for input,
/// on first use.
fn check_tool(
    plugin: &str,
    tool: &ToolDefinition,
    built_in: bool,
) -> Result<ArgumentSchema, RegistryError> {
    let bad = |problem: String| RegistryError::BadTool {
        plugin: plugin.to_owned(),
        tool: tool.name.clone(),
        problem,
    };
    let name_ok = !tool.name.is_empty()
        && tool.name.len() <= MAX_TOOL_NAME
        && tool
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !name_ok {
        return Err(bad(format!(
            "tool names are 1-{MAX_TOOL_NAME} characters of A-Z a-z 0-9 _ - ."
        )));
    }
    if tool.description.trim().is_empty() {
        return Err(bad(
            "a description is required: it tells the model what the tool does".into(),
        ));
    }
    check_closed_object(&tool.input_schema, "inputSchema").map_err(bad)?;
    // Guarded formats elsewhere (nested objects, anyOf, $defs) would silently go unchecked.
    if count_guarded_formats(&tool.input_schema) != formatted_arguments(&tool.input_schema).len() {
        return Err(bad(
            "\"format\": \"path\" and \"format\": \"command\" are supported only on top-level \
             string properties or arrays of them, where the server can check them"
                .into(),
        ));
    }
    if let Some(output) = &tool.output_schema {
        if output.get("type") != Some(&Value::from("object")) {
            return Err(bad(
                "outputSchema must have \"type\": \"object\" at its root".into(),
            ));
        }
        if !built_in {
            ArgumentSchema::compile(output).map_err(|e| bad(format!("outputSchema: {e}")))?;
        }
    }
    if built_in {
        return Ok(ArgumentSchema::deferred(&tool.input_schema));
    }
    ArgumentSchema::compile(&tool.input_schema).map_err(|e| bad(format!("inputSchema: {e}")))
}

/// The root must be `"type": "object"` with `"additionalProperties": false`: an argument the
/// tool does not declare is a mistake or an attack, never something to pass through.
fn check_closed_object(schema: &Value, what: &str) -> Result<(), String> {
    if schema.get("type") != Some(&Value::from("object")) {
        return Err(format!("{what} must have \"type\": \"object\" at its root"));
    }
    if schema.get("additionalProperties") != Some(&Value::Bool(false)) {
        return Err(format!(
            "{what} must set \"additionalProperties\": false so undeclared arguments are refused"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::{CallContext, ToolFuture, ToolResult};
    use serde_json::{Map, json};

    struct Fake {
        name: &'static str,
        tools: Vec<ToolDefinition>,
    }

    impl Plugin for Fake {
        fn name(&self) -> &str {
            self.name
        }
        fn version(&self) -> &str {
            "0.0.1"
        }
        fn tools(&self) -> Vec<ToolDefinition> {
            self.tools.clone()
        }
        fn call<'a>(&'a self, _: &'a str, _: Map<String, Value>, _: CallContext) -> ToolFuture<'a> {
            Box::pin(async { ToolResult::text("ok") })
        }
    }

    fn tool(name: &str, schema: Value) -> ToolDefinition {
        crate::plugins::test_tool(name, schema)
    }

    fn closed() -> Value {
        json!({"type": "object", "properties": {}, "additionalProperties": false})
    }

    /// What lets built-in plugins skip compiling their schemas at start-up: every tool of every
    /// plugin marked built-in, as the server registers them, compiles.
    #[test]
    fn every_built_in_schema_compiles() {
        use crate::plugins::bugtracker::{BugTracker, DefaultProject};
        use crate::plugins::web_search::WebSearch;
        let policy = crate::policy::parse(
            crate::policy::DEFAULT_POLICY_YAML,
            &crate::policy::PolicySource::Embedded,
            &|name| (name == "HOME").then(|| "/home/test".to_owned()),
        )
        .unwrap();
        let cwd = std::env::temp_dir();
        let rules = crate::guard::PathRules::new(&policy.filesystem, None, cwd.clone());
        let plugins: Vec<Arc<dyn Plugin>> = vec![
            Arc::new(WebSearch::unconnected(
                "https://example.invalid/".parse().unwrap(),
            )),
            Arc::new(BugTracker::unopened(rules, DefaultProject::from_env(&cwd))),
        ];
        let registry = Registry::build(plugins).unwrap();
        let mut compiled = 0;
        for tool in registry.tools() {
            assert!(tool.plugin.built_in().is_some(), "{}", tool.definition.name);
            let definition = &tool.definition;
            let schemas =
                std::iter::once(&definition.input_schema).chain(definition.output_schema.as_ref());
            for schema in schemas {
                ArgumentSchema::compile(schema)
                    .unwrap_or_else(|e| panic!("{}: {e}", definition.name));
                compiled += 1;
            }
        }
        assert!(
            registry.tools().len() >= 10,
            "{} tools",
            registry.tools().len()
        );
        assert!(compiled > registry.tools().len(), "output schemas included");
    }

    fn build(plugins: Vec<Fake>) -> Result<Registry, RegistryError> {
        Registry::build(
            plugins
                .into_iter()
                .map(|p| Arc::new(p) as Arc<dyn Plugin>)
                .collect(),
        )
    }

    #[test]
    fn discovery_comes_first_then_registration_order() {
        let registry = build(vec![Fake {
            name: "fake",
            tools: vec![tool("zeta", closed()), tool("alpha", closed())],
        }])
        .unwrap();
        let names: Vec<_> = registry
            .tools()
            .iter()
            .map(|t| t.definition.name.as_str())
            .collect();
        assert_eq!(names, ["search_tools", "list_categories", "zeta", "alpha"]);
    }

    #[test]
    fn duplicate_tool_names_are_refused() {
        let error = build(vec![
            Fake {
                name: "a",
                tools: vec![tool("same", closed())],
            },
            Fake {
                name: "b",
                tools: vec![tool("same", closed())],
            },
        ])
        .unwrap_err();
        assert_eq!(
            error,
            RegistryError::DuplicateTool {
                tool: "same".into(),
                first: "a".into(),
                second: "b".into()
            }
        );
        let error = build(vec![Fake {
            name: "a",
            tools: vec![tool("search_tools", closed())],
        }]);
        assert!(matches!(error, Err(RegistryError::DuplicateTool { .. })));
    }

    #[test]
    fn guarded_formats_are_found() {
        let schema = json!({"type": "object", "additionalProperties": false, "properties": {
            "p": {"type": "string", "format": "path"},
            "c": {"type": "string", "format": "command"},
            "ps": {"type": "array", "items": {"type": "string", "format": "path"}},
            "plain": {"type": "string"}
        }});
        let mut found = formatted_arguments(&schema);
        found.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            found,
            vec![
                FormattedArgument {
                    name: "c".into(),
                    format: ArgumentFormat::Command,
                    array: false
                },
                FormattedArgument {
                    name: "p".into(),
                    format: ArgumentFormat::Path,
                    array: false
                },
                FormattedArgument {
                    name: "ps".into(),
                    format: ArgumentFormat::Path,
                    array: true
                },
            ]
        );
    }

    #[test]
    fn tools_must_follow_the_rules() {
        let open = json!({"type": "object"});
        let cases = [
            tool("has space", closed()),
            tool(&"x".repeat(129), closed()),
            tool("open", open),
            tool(
                "not_object",
                json!({"type": "array", "additionalProperties": false}),
            ),
            tool(
                "bad_schema",
                json!({"type": "object", "additionalProperties": false, "properties": {"a": {"type": 5}}}),
            ),
            ToolDefinition {
                description: " ".into(),
                ..tool("nodesc", closed())
            },
        ];
        for bad in cases {
            let name = bad.name.clone();
            let result = build(vec![Fake {
                name: "p",
                tools: vec![bad],
            }]);
            assert!(
                matches!(result, Err(RegistryError::BadTool { .. })),
                "{name}"
            );
        }
        assert!(matches!(
            build(vec![Fake {
                name: "Bad Name",
                tools: vec![]
            }]),
            Err(RegistryError::BadPluginName(_))
        ));
        assert!(matches!(
            build(vec![Fake {
                name: "discovery",
                tools: vec![]
            }]),
            Err(RegistryError::DuplicatePlugin(_))
        ));
    }
}
