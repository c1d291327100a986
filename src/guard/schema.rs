//! Tool argument validation against the tool's `inputSchema` (JSON Schema 2020-12).
//!
//! A validator is compiled once: when the registry is built for schemas from outside (external
//! plugins, so a bad one stops start-up), or on the first call for the built-in tools' constant
//! schemas, which the test suite compiles (start-up then skips about a millisecond of meta-schema
//! checks). Failures become a tool error that names each offending field, so the model can
//! correct itself.

use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;

/// At most this many violations are listed in one error; the rest are counted.
const MAX_REPORTED_VIOLATIONS: usize = 5;

/// Why arguments were not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgumentError {
    /// The arguments break the schema; the text names every offending field.
    Invalid(String),
    /// The tool's own schema does not compile: a server bug, not the caller's mistake.
    BrokenSchema(String),
}

/// An argument schema and its validator, compiled at most once.
pub struct ArgumentSchema {
    schema: Value,
    validator: OnceLock<Result<Validator, String>>,
}

impl std::fmt::Debug for ArgumentSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArgumentSchema")
    }
}

impl ArgumentSchema {
    /// Compiles `schema` as JSON Schema 2020-12 (the MCP 2025-11-25 default dialect).
    ///
    /// # Errors
    /// The schema is not a valid 2020-12 schema.
    pub fn compile(schema: &Value) -> Result<Self, String> {
        let compiled = Self::deferred(schema);
        match compiled.validator() {
            Ok(_) => Ok(compiled),
            Err(error) => Err(error.clone()),
        }
    }

    /// Keeps `schema` and compiles it on the first [`check`](Self::check): for constant schemas
    /// that the tests compile, so a start-up need not.
    pub fn deferred(schema: &Value) -> Self {
        // Without `properties`, the validator reports an undeclared argument as "False schema
        // does not allow 1", naming neither the argument nor its place; an empty `properties`
        // (same meaning) makes it say "'name' was unexpected".
        let mut schema = schema.clone();
        if let Some(root) = schema.as_object_mut()
            && root.get("additionalProperties") == Some(&Value::Bool(false))
        {
            root.entry("properties")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
        }
        ArgumentSchema {
            schema,
            validator: OnceLock::new(),
        }
    }

    fn validator(&self) -> &Result<Validator, String> {
        self.validator
            .get_or_init(|| jsonschema::draft202012::new(&self.schema).map_err(|e| e.to_string()))
    }

    /// Checks `arguments`; the error text names every offending field.
    ///
    /// # Errors
    /// [`ArgumentError::Invalid`] with a message listing the violations, e.g.
    /// `arguments.detail_level: "x" is not one of ["name","summary","full"]`;
    /// [`ArgumentError::BrokenSchema`] when a deferred schema fails to compile.
    pub fn check(&self, arguments: &Value) -> Result<(), ArgumentError> {
        let validator = self
            .validator()
            .as_ref()
            .map_err(|error| ArgumentError::BrokenSchema(error.clone()))?;
        let mut problems = Vec::new();
        let mut total = 0usize;
        for error in validator.iter_errors(arguments) {
            total += 1;
            if problems.len() < MAX_REPORTED_VIOLATIONS {
                problems.push(format!(
                    "{}: {}",
                    field_name(&error.instance_path().to_string()),
                    error
                ));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        if total > problems.len() {
            problems.push(format!("and {} more", total - problems.len()));
        }
        Err(ArgumentError::Invalid(problems.join("; ")))
    }
}

/// `/a/0/b` → `arguments.a[0].b`; the root is `arguments`.
fn field_name(pointer: &str) -> String {
    let mut name = String::from("arguments");
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            name.push_str(&format!("[{segment}]"));
        } else {
            name.push('.');
            name.push_str(&segment);
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> ArgumentSchema {
        ArgumentSchema::compile(&json!({
            "type": "object",
            "properties": {
                "level": {"type": "string", "enum": ["a", "b"]},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["level"],
            "additionalProperties": false
        }))
        .unwrap()
    }

    /// The message of an `Invalid` result.
    fn invalid(result: Result<(), ArgumentError>) -> String {
        match result {
            Err(ArgumentError::Invalid(message)) => message,
            other => panic!("expected invalid arguments, got {other:?}"),
        }
    }

    fn args(value: Value) -> Value {
        value
    }

    #[test]
    fn valid_arguments_pass() {
        assert_eq!(
            schema().check(&args(json!({"level": "a", "tags": ["x"]}))),
            Ok(())
        );
    }

    #[test]
    fn violations_name_the_field() {
        let error = invalid(schema().check(&args(json!({"level": "c"}))));
        assert!(error.starts_with("arguments.level: "), "{error}");
        let error = invalid(schema().check(&args(json!({"level": "a", "tags": [1]}))));
        assert!(error.starts_with("arguments.tags[0]: "), "{error}");
        let error = invalid(schema().check(&args(json!({}))));
        assert!(
            error.contains("\"level\" is a required property"),
            "{error}"
        );
        let error = invalid(schema().check(&args(json!({"level": "a", "bogus": 1}))));
        assert!(error.contains("bogus"), "{error}");
    }

    #[test]
    fn a_deferred_schema_compiles_on_first_use() {
        let valid = ArgumentSchema::deferred(&json!({"type": "object", "required": ["a"]}));
        assert!(valid.validator.get().is_none(), "not compiled yet");
        assert!(invalid(valid.check(&json!({}))).contains("\"a\""));
        assert!(valid.validator.get().is_some());
        let broken = ArgumentSchema::deferred(&json!({"type": "no-such-type"}));
        assert!(matches!(
            broken.check(&json!({})),
            Err(ArgumentError::BrokenSchema(_))
        ));
    }

    #[test]
    fn an_undeclared_argument_is_named_even_without_properties() {
        let closed =
            ArgumentSchema::compile(&json!({"type": "object", "additionalProperties": false}))
                .unwrap();
        let error = invalid(closed.check(&json!({"surprise": 1})));
        assert!(error.contains("'surprise' was unexpected"), "{error}");
    }

    #[test]
    fn invalid_schemas_do_not_compile() {
        assert!(ArgumentSchema::compile(&json!({"type": "no-such-type"})).is_err());
    }
}
