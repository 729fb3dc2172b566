//! `tools/call` arguments checked against the tool's `inputSchema`.
//!
//! Schemas come from the upstream, which is not trusted, so they are compiled
//! with every external reference refused (no network or file access) and
//! with the linear-time `regex` engine for `pattern`, so a hostile pattern
//! cannot make the gateway backtrack. A schema that does not compile under
//! those rules is not enforced (the upstream still checks its own input) and
//! the reason is logged once.
//!
//! Violation messages are *masked*: they name the JSON pointer and the
//! keyword that failed, never the offending value, so arguments (which may
//! hold secrets) do not end up in error answers or logs.

use serde_json::Value;

/// How many violations an error answer lists.
pub const MAX_VIOLATIONS: usize = 5;

/// A compiled `inputSchema`.
pub struct ArgumentSchema(jsonschema::Validator);

impl std::fmt::Debug for ArgumentSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArgumentSchema")
    }
}

/// One way the arguments fail the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the arguments (`""` is the arguments object itself).
    pub pointer: String,
    /// What is wrong, without the value.
    pub message: String,
}

impl ArgumentSchema {
    /// Compiles a schema (draft 2020-12 unless `$schema` names another draft,
    /// such as draft-07).
    pub fn compile(schema: &Value) -> Result<ArgumentSchema, String> {
        jsonschema::options()
            .offline()
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(schema)
            .map(ArgumentSchema)
            .map_err(|e| e.masked().to_string())
    }

    /// The first [`MAX_VIOLATIONS`] violations; empty when the arguments are valid.
    pub fn violations(&self, arguments: &Value) -> Vec<Violation> {
        if self.0.is_valid(arguments) {
            return Vec::new();
        }
        self.0
            .iter_errors(arguments)
            .take(MAX_VIOLATIONS)
            .map(|e| Violation { pointer: e.instance_path().as_str().to_owned(), message: e.masked().to_string() })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn violations_name_pointers_and_hide_values() {
        let schema = ArgumentSchema::compile(&json!({
            "type": "object",
            "properties": {"a": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["a"],
            "additionalProperties": false
        }))
        .expect("compiles");
        assert!(schema.violations(&json!({"a": 1, "tags": ["x"]})).is_empty());
        let v = schema.violations(&json!({"a": "hunter2", "tags": ["ok", 7]}));
        let pointers: Vec<&str> = v.iter().map(|v| v.pointer.as_str()).collect();
        assert!(pointers.contains(&"/a") && pointers.contains(&"/tags/1"), "{v:?}");
        assert!(v.iter().all(|v| !v.message.contains("hunter2")), "values are masked: {v:?}");
        let v = schema.violations(&json!({}));
        assert_eq!(v[0].pointer, "");
        let many = json!({"a": 1, "b": 1, "c": 1, "d": 1, "e": 1, "f": 1, "g": 1});
        assert!(schema.violations(&many).len() <= MAX_VIOLATIONS);
    }

    #[test]
    fn draft_07_and_remote_refs() {
        let d7 = json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "properties": {"n": {"type": "number", "exclusiveMinimum": 0}}});
        let schema = ArgumentSchema::compile(&d7).expect("draft-07 compiles");
        assert_eq!(schema.violations(&json!({"n": 0})).len(), 1);
        assert!(ArgumentSchema::compile(&json!({"$ref": "https://example.com/s.json"})).is_err(), "never fetched");
        assert!(ArgumentSchema::compile(&json!({"type": 5})).is_err());
    }
}
