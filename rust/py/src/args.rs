//! Plain arguments: integers of any size Python writes, and an object's type name for messages.

use pyo3::prelude::*;

use crate::errors::{type_err, value_err};

/// A non-negative integer argument of any size Python can write: a negative one or one beyond
/// 64 bits is one line naming the argument (pyo3's own conversion raises a bare OverflowError).
pub(crate) fn uint_arg(py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(v) = value.extract::<u64>() {
        return Ok(v);
    }
    if value.extract::<i64>().is_ok() || value.lt(0).unwrap_or(false) {
        let text = value.str().map(|s| s.to_string()).unwrap_or_default();
        return Err(value_err(py, format!("{name}={text} must be non-negative")));
    }
    if value.is_instance_of::<pyo3::types::PyInt>() {
        let text = value.str().map(|s| s.to_string()).unwrap_or_default();
        return Err(value_err(
            py,
            format!("{name}={text} is too large: at most 2**64-1"),
        ));
    }
    let kind = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(type_err(py, format!("{name} must be an int, got {kind}")))
}

pub(crate) fn non_negative(py: Python<'_>, name: &str, value: i64) -> PyResult<u64> {
    if value < 0 {
        return Err(value_err(
            py,
            format!("{name}={value} must be non-negative"),
        ));
    }
    Ok(value as u64)
}

pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}
