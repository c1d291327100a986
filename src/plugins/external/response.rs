//! A plugin's answer: one JSON object `{"content": [{"type": "text", "text": …}], "isError":
//! bool}`. Anything else is reported as what it is, with a short excerpt, so that the plugin's
//! author can see what was wrong.

use serde_json::Value;

use crate::plugins::{Content, ToolResult};

/// Bytes of bad output quoted in an error.
const EXCERPT: usize = 200;

/// Parses one answer.
///
/// # Errors
/// What is wrong with the output, for the tool error.
pub fn parse(output: &[u8]) -> Result<ToolResult, String> {
    let trimmed = output.trim_ascii();
    if trimmed.is_empty() {
        return Err("printed nothing on stdout (expected one JSON object)".into());
    }
    let value: Value = serde_json::from_slice(trimmed).map_err(|e| {
        format!(
            "printed output that is not one JSON object ({e}): {}",
            excerpt(trimmed)
        )
    })?;
    let Some(object) = value.as_object() else {
        return Err(format!(
            "printed JSON that is not an object: {}",
            excerpt(trimmed)
        ));
    };
    let Some(blocks) = object.get("content").and_then(Value::as_array) else {
        return Err("printed an object without a \"content\" array".into());
    };
    let mut content = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.iter().enumerate() {
        let kind = block.get("type").and_then(Value::as_str);
        match (kind, block.get("text").and_then(Value::as_str)) {
            (Some("text"), Some(text)) => content.push(Content::Text { text: text.into() }),
            (Some("text"), None) => {
                return Err(format!("content[{i}] has no \"text\" string"));
            }
            _ => {
                return Err(format!(
                    "content[{i}] is not {{\"type\": \"text\", \"text\": …}}; only text blocks are supported"
                ));
            }
        }
    }
    if content.is_empty() {
        return Err("printed an empty \"content\" array; give at least one text block".into());
    }
    let is_error = match object.get("isError") {
        None => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => return Err("printed an \"isError\" that is not true or false".into()),
    };
    Ok(ToolResult {
        content,
        structured_content: None,
        is_error,
    })
}

/// The start of `bytes` as text, for error messages.
pub fn excerpt(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(EXCERPT)];
    let text = String::from_utf8_lossy(cut);
    if bytes.len() > EXCERPT {
        format!("{text:?}…")
    } else {
        format!("{text:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_answer() {
        let result =
            parse(b"{\"content\":[{\"type\":\"text\",\"text\":\"hi\"}],\"isError\":true}\n")
                .unwrap();
        assert!(result.is_error);
        assert_eq!(result.content, vec![Content::Text { text: "hi".into() }]);
        let default_ok = parse(b"{\"content\":[{\"type\":\"text\",\"text\":\"\"}]}").unwrap();
        assert!(!default_ok.is_error);
    }

    #[test]
    fn bad_answers_say_what_is_wrong() {
        let cases: [(&[u8], &str); 8] = [
            (b"", "printed nothing"),
            (b"hello", "not one JSON object"),
            (b"{} {}", "not one JSON object"),
            (b"[1]", "not an object"),
            (b"{\"isError\":false}", "without a \"content\" array"),
            (b"{\"content\":[]}", "empty \"content\""),
            (b"{\"content\":[{\"type\":\"image\"}]}", "only text blocks"),
            (
                b"{\"content\":[{\"type\":\"text\",\"text\":\"x\"}],\"isError\":1}",
                "\"isError\"",
            ),
        ];
        for (output, expected) in cases {
            let error = parse(output).unwrap_err();
            assert!(error.contains(expected), "{output:?}: {error}");
        }
    }
}
