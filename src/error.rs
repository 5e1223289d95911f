//! The error type of pg_vigil's pure logic. It carries the SQLSTATE class the
//! SQL layer reports, so a pure function decides *what* is wrong and the pgrx
//! wrapper only translates it into an `ereport`.

use std::fmt;

/// The JSON type of `v` as error messages name it ("number", "object", ...).
pub fn json_type(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Which SQLSTATE an error maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 22023 invalid_parameter_value
    InvalidParameter,
    /// 22003 numeric_value_out_of_range
    OutOfRange,
    /// 42703 undefined_column
    UndefinedColumn,
    /// 42P01 undefined_table
    UndefinedTable,
    /// 42P07 duplicate_table
    DuplicateTable,
    /// 22004 null_value_not_allowed
    NullValue,
    /// 42804 datatype_mismatch
    DatatypeMismatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VigilError {
    pub kind: ErrorKind,
    pub message: String,
}

impl VigilError {
    pub fn invalid(message: impl Into<String>) -> Self {
        VigilError {
            kind: ErrorKind::InvalidParameter,
            message: message.into(),
        }
    }

    pub fn out_of_range(message: impl Into<String>) -> Self {
        VigilError {
            kind: ErrorKind::OutOfRange,
            message: message.into(),
        }
    }

    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        VigilError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for VigilError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for VigilError {}

pub type Result<T> = std::result::Result<T, VigilError>;

/// Rejects NaN and ±Infinity: they would poison every comparison downstream.
pub fn finite(name: &str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(VigilError::invalid(format!(
            "{name} must be a finite number, got {value}"
        )))
    }
}

/// A finite number that is zero or more.
pub fn non_negative(name: &str, value: f64) -> Result<f64> {
    let value = finite(name, value)?;
    if value < 0.0 {
        return Err(VigilError::invalid(format!(
            "{name} must be >= 0, got {value}"
        )));
    }
    Ok(value)
}

/// An integer count that is zero or more.
pub fn non_negative_count(name: &str, value: i64) -> Result<i64> {
    if value < 0 {
        return Err(VigilError::invalid(format!(
            "{name} must be >= 0, got {value}"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_rejects_nan_and_infinities_naming_the_argument() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = finite("value", bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidParameter);
            assert!(err.message.starts_with("value must be a finite number"));
        }
        assert_eq!(finite("value", -1.5), Ok(-1.5));
    }

    #[test]
    fn non_negative_accepts_zero_and_rejects_below() {
        assert_eq!(non_negative("x", 0.0), Ok(0.0));
        assert!(non_negative("x", -0.001)
            .unwrap_err()
            .message
            .contains("x must be >= 0"));
        assert_eq!(non_negative_count("n", 0), Ok(0));
        assert!(non_negative_count("n", -1).is_err());
    }
}
