//! Reading JSON arguments (alert documents, payloads, headers) with a depth
//! limit checked before serde_json sees them.

use serde_json::Value;

/// Deepest JSON nesting pg_vigil reads (alert documents, payload builder
/// arguments, channel headers, alert details). serde_json's own parser stops
/// at 128 levels, and PostgreSQL's jsonb allows far more; a document past
/// this limit is refused with an error naming the argument.
pub const MAX_JSON_DEPTH: usize = 64;

/// Deepest nesting of JSON pg_vigil stores from a caller (alert details,
/// `send_webhook` payloads): well under `MAX_JSON_DEPTH`, so an alert
/// document that wraps its details stays readable.
pub const MAX_STORED_DEPTH: usize = 32;

/// Why a JSON argument cannot be read; `message` names the argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonReadError {
    /// Nested `depth` levels, deeper than `limit` (SQLSTATE 54000).
    TooDeep { depth: usize, limit: usize },
    /// Not readable as JSON numbers/strings serde_json can hold, e.g. a
    /// number beyond ±1.8e308 (SQLSTATE 22023).
    Unreadable(String),
}

impl JsonReadError {
    pub fn message(&self, argument: &str) -> String {
        match self {
            JsonReadError::TooDeep { depth, limit } => {
                format!("{argument} is nested {depth} levels deep; at most {limit} are allowed")
            }
            JsonReadError::Unreadable(why) => format!("{argument} cannot be read as JSON: {why}"),
        }
    }
}

/// The nesting depth of JSON text (objects and arrays), without recursion:
/// a scan that skips strings. Scalars are depth 0.
pub fn json_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses JSON text (as PostgreSQL prints a jsonb) into a value, refusing
/// documents deeper than `MAX_JSON_DEPTH` before serde_json sees them, so no
/// input reaches serde_json's recursion limit or a deep recursive drop.
pub fn read_json(text: &str) -> Result<Value, JsonReadError> {
    let depth = json_depth(text);
    if depth > MAX_JSON_DEPTH {
        return Err(JsonReadError::TooDeep {
            depth,
            limit: MAX_JSON_DEPTH,
        });
    }
    serde_json::from_str(text).map_err(|e| {
        let why = e.to_string();
        // serde_json appends " at line L column C": positions mean nothing here.
        let why = match why.find(" at line ") {
            Some(at) => why[..at].to_owned(),
            None => why,
        };
        JsonReadError::Unreadable(why)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_counts_nesting_and_ignores_brackets_in_strings() {
        assert_eq!(json_depth("1"), 0);
        assert_eq!(json_depth("{}"), 1);
        assert_eq!(json_depth(r#"{"a": [1, {"b": []}]}"#), 4);
        assert_eq!(json_depth(r#"{"a": "[[[[{{{{"}"#), 1);
        assert_eq!(json_depth(r#"{"a": "\\\"[[["}"#), 1);
        assert_eq!(json_depth(r#"["\\", [[]]]"#), 3);
    }

    #[test]
    fn deep_json_is_refused_with_the_argument_named_not_a_panic() {
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = read_json(&deep).unwrap_err();
        assert_eq!(
            err,
            JsonReadError::TooDeep {
                depth: 10_000,
                limit: 64
            }
        );
        assert_eq!(
            err.message("alert"),
            "alert is nested 10000 levels deep; at most 64 are allowed"
        );
        let ok = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        assert!(read_json(&ok).is_ok());
        // 65 levels: under serde_json's limit, still refused by ours.
        let over = format!("{}1{}", "{\"a\":".repeat(65), "}".repeat(65));
        assert!(matches!(
            read_json(&over),
            Err(JsonReadError::TooDeep { depth: 65, .. })
        ));
    }

    #[test]
    fn numbers_serde_json_cannot_hold_are_named_errors() {
        // How PostgreSQL prints the jsonb number 1e400.
        let huge = format!("{{\"urgency\": 1{}}}", "0".repeat(400));
        let err = read_json(&huge).unwrap_err();
        let msg = err.message("alert");
        assert!(
            msg.starts_with("alert cannot be read as JSON: number out of range"),
            "{msg}"
        );
        assert!(!msg.contains("line"), "{msg}");
        // Huge but shallow documents are fine.
        let wide = format!("[{}1]", "1,".repeat(200_000));
        assert!(read_json(&wide).is_ok());
    }
}
