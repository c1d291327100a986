//! `web_search`: DuckDuckGo Lite through the egress connector.
//!
//! The query goes to `plugins.web_search.endpoint` (`?q=…&kl=us-en`), the page is parsed by
//! [`parse`], and the answer is the original project's text plus `structuredContent`. Each
//! failure gets its own message: denied by policy, DNS, timeout, HTTP status, rate limited by
//! DuckDuckGo, page not recognised.

pub mod parse;

use std::sync::Arc;

use serde_json::{Map, Value, json};
use url::Url;

use self::parse::{Parsed, SearchResult};
use super::{CallContext, Plugin, ToolAnnotations, ToolDefinition, ToolFuture, ToolResult};
use crate::egress::{Connector, EgressError};

/// Longest query, in characters (the original's limit).
pub const MAX_QUERY_CHARS: usize = 500;

/// The web search plugin.
#[derive(Debug)]
pub struct WebSearch {
    connector: Option<Arc<Connector>>,
    endpoint: Url,
}

impl WebSearch {
    /// The category name.
    pub const NAME: &'static str = "websearch";

    /// Searches `endpoint` through `connector`.
    pub fn new(connector: Arc<Connector>, endpoint: Url) -> Self {
        WebSearch {
            connector: Some(connector),
            endpoint,
        }
    }

    /// A plugin that only lists its tool (for `check`, which opens no connections).
    pub fn unconnected(endpoint: Url) -> Self {
        WebSearch {
            connector: None,
            endpoint,
        }
    }

    fn definition() -> ToolDefinition {
        ToolDefinition {
            name: "web_search".into(),
            title: Some("Search the web".into()),
            description: "Search the web using DuckDuckGo. Returns titles, URLs, and snippets."
                .into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "query": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_QUERY_CHARS,
                        "description": "The search query"
                    },
                    "max_results": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 20,
                        "default": 5,
                        "description": "Maximum number of results to return (default: 5)"
                    }
                },
                "required": ["query"],
                "additionalProperties": false
            }),
            output_schema: Some(json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string"},
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "title": {"type": "string"},
                                "url": {"type": "string"},
                                "snippet": {"type": "string"},
                                "domain": {"type": "string"}
                            },
                            "required": ["title", "url", "snippet", "domain"],
                            "additionalProperties": false
                        }
                    }
                },
                "required": ["query", "results"],
                "additionalProperties": false
            })),
            annotations: ToolAnnotations {
                read_only: true,
                destructive: false,
                idempotent: true,
                open_world: true,
            },
        }
    }

    async fn search(&self, arguments: &Map<String, Value>, ctx: &CallContext) -> ToolResult {
        let Some(connector) = &self.connector else {
            return ToolResult::error("web_search has no network connector in this mode");
        };
        let query = arguments
            .get("query")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned();
        if query.is_empty() {
            return ToolResult::error("the query is empty; give some words to search for");
        }
        let max_results = arguments
            .get("max_results")
            .and_then(Value::as_u64)
            .unwrap_or(5)
            .clamp(1, 20) as usize;
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("q", &query)
            .append_pair("kl", "us-en");
        let host = url.host_str().unwrap_or_default().to_owned();
        // A little under the call's deadline, so that a slow server gets this tool's own
        // timeout message rather than the generic one.
        let budget = ctx
            .remaining()
            .saturating_sub(std::time::Duration::from_millis(250));
        let fetched = match connector.get(url, budget).await {
            Ok(fetched) => fetched,
            Err(error) => return ToolResult::error(describe(&error)),
        };
        // The host that answered, after redirects.
        let host = fetched.url.host_str().unwrap_or(&host).to_owned();
        if fetched.status == 429 {
            return ToolResult::error(rate_limited(&host, fetched.status));
        }
        if fetched.status == 403 {
            return ToolResult::error(format!(
                "search failed: {host} answered HTTP 403 (forbidden); DuckDuckGo answers this when \
                 it rate-limits, so wait a few minutes before searching again"
            ));
        }
        if !(200..300).contains(&fetched.status) {
            return ToolResult::error(format!(
                "search failed: {host} answered HTTP {}; retry later",
                fetched.status
            ));
        }
        let page = String::from_utf8_lossy(&fetched.body).into_owned();
        // Parsing a large page is CPU work: keep it off the async workers.
        let parsed = match tokio::task::spawn_blocking(move || parse::parse(&page)).await {
            Ok(parsed) => parsed,
            Err(_) => return ToolResult::error("search failed: the page parser failed; retry"),
        };
        match parsed {
            Ok(Parsed::RateLimited) => ToolResult::error(rate_limited(&host, fetched.status)),
            Ok(Parsed::NoResults) => answer(&query, &[]),
            Ok(Parsed::Results(mut results)) => {
                results.truncate(max_results);
                answer(&query, &results)
            }
            Err(unknown) => ToolResult::error(format!("search failed: {unknown} (from {host})")),
        }
    }
}

fn rate_limited(host: &str, status: u16) -> String {
    format!(
        "DuckDuckGo ({host}) is rate limiting this server (HTTP {status}, bot check); wait a few \
         minutes before searching again"
    )
}

/// The error text for the model: what failed and what to do.
fn describe(error: &EgressError) -> String {
    match error {
        EgressError::Denied(denial) => format!(
            "web_search was {denial}; change the policy's network section if this host should be reachable"
        ),
        other => format!("search failed: {other}"),
    }
}

/// The original's text format, plus the same results as structured content.
fn answer(query: &str, results: &[SearchResult]) -> ToolResult {
    let text = if results.is_empty() {
        format!("No results found for: {query}")
    } else {
        let blocks: Vec<String> = results
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "{}. {}\n   URL: {}\n   {}",
                    i + 1,
                    r.title,
                    r.url,
                    r.snippet
                )
            })
            .collect();
        format!("Search results for: {query}\n\n{}", blocks.join("\n\n"))
    };
    let structured = json!({
        "query": query,
        "results": results.iter().map(|r| json!({
            "title": r.title, "url": r.url, "snippet": r.snippet, "domain": r.domain
        })).collect::<Vec<_>>(),
    });
    ToolResult::text_and_structured(text, structured)
}

impl Plugin for WebSearch {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn tools(&self) -> Vec<ToolDefinition> {
        vec![Self::definition()]
    }

    fn built_in(&self) -> Option<super::sealed::BuiltIn> {
        super::built_in()
    }

    fn call<'a>(
        &'a self,
        tool: &'a str,
        arguments: Map<String, Value>,
        ctx: CallContext,
    ) -> ToolFuture<'a> {
        Box::pin(async move {
            if tool != "web_search" {
                return ToolResult::error(format!("the web search plugin has no tool {tool:?}"));
            }
            self.search(&arguments, &ctx).await
        })
    }
}
