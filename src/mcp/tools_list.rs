//! `tools/list`: the registry's tools in a fixed order, in pages with opaque cursors.
//!
//! A cursor is only valid if this server could have issued it (an offset that is a whole
//! number of pages into the list); anything else is -32602, never a silent restart at page 1.

use serde_json::{Map, Value, json};

use crate::rpc::{ErrorObject, code};

/// Cursors look like `tools-page:<offset>`; the prefix keeps them from being mistaken for
/// numbers and lets a future format change be detected.
const CURSOR_PREFIX: &str = "tools-page:";

/// Builds one page of the `tools/list` result from the pre-rendered `tools`.
///
/// # Errors
/// -32602 for a cursor that is not a string or was not issued by this server.
pub fn page(
    tools: &[Value],
    page_size: usize,
    params: &Map<String, Value>,
) -> Result<Value, ErrorObject> {
    let offset = match params.get("cursor") {
        None => 0,
        Some(Value::String(cursor)) => {
            parse_cursor(cursor, tools.len(), page_size).ok_or_else(|| {
                ErrorObject::new(
                    code::INVALID_PARAMS,
                    "unknown cursor; pass the nextCursor of a previous tools/list result, or omit \
                 cursor for the first page",
                )
            })?
        }
        Some(_) => {
            return Err(ErrorObject::new(
                code::INVALID_PARAMS,
                "params.cursor must be a string",
            ));
        }
    };
    let end = offset.saturating_add(page_size).min(tools.len());
    let mut result = json!({ "tools": &tools[offset..end] });
    if end < tools.len() {
        result["nextCursor"] = json!(format!("{CURSOR_PREFIX}{end}"));
    }
    Ok(result)
}

fn parse_cursor(cursor: &str, total: usize, page_size: usize) -> Option<usize> {
    let digits = cursor.strip_prefix(CURSOR_PREFIX)?;
    // Canonical decimal only: "01" or "+1" were never issued.
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let offset: usize = digits.parse().ok()?;
    (offset < total && offset.is_multiple_of(page_size)).then_some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(n: usize) -> Vec<Value> {
        (0..n).map(|i| json!({"name": format!("t{i}")})).collect()
    }

    fn params(cursor: Value) -> Map<String, Value> {
        json!({"cursor": cursor}).as_object().cloned().unwrap()
    }

    #[test]
    fn walks_every_page_exactly_once() {
        let all = tools(5);
        let mut seen = Vec::new();
        let mut result = page(&all, 2, &Map::new()).unwrap();
        loop {
            seen.extend(result["tools"].as_array().unwrap().iter().cloned());
            match result.get("nextCursor") {
                Some(cursor) => result = page(&all, 2, &params(cursor.clone())).unwrap(),
                None => break,
            }
        }
        assert_eq!(seen, all);
    }

    #[test]
    fn one_page_has_no_cursor() {
        assert_eq!(
            page(&tools(3), 100, &Map::new()).unwrap(),
            json!({"tools": tools(3)})
        );
    }

    #[test]
    fn foreign_cursors_are_invalid_params() {
        for cursor in [
            json!("x"),
            json!("tools-page:1"),
            json!("tools-page:4"),
            json!("tools-page:02"),
            json!("tools-page:"),
            json!("tools-page:99999999999999999999999"),
            json!(2),
        ] {
            let error = page(&tools(4), 2, &params(cursor.clone())).unwrap_err();
            assert_eq!(error.code, code::INVALID_PARAMS, "{cursor}");
        }
    }
}
