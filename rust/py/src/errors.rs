//! Errors in one place: a core error becomes its `mosaic_fast.errors` class and a panic
//! `MosaicInternalError`; [`detached`] runs a core call with the GIL released and maps both.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mosaic_core::{self as core, ErrorKind, MosaicError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// Map a core error onto the `mosaic_fast.errors` hierarchy.
pub(crate) fn to_pyerr(py: Python<'_>, err: MosaicError) -> PyErr {
    let class_name = match err.kind {
        ErrorKind::Value => "MosaicValueError",
        ErrorKind::Type => "MosaicTypeError",
    };
    raise(py, class_name, err.message)
}

fn raise(py: Python<'_>, class_name: &str, message: String) -> PyErr {
    match py
        .import("mosaic_fast.errors")
        .and_then(|m| m.getattr(class_name))
    {
        Ok(cls) => match cls.downcast::<PyType>() {
            Ok(t) => PyErr::from_type(t.clone(), message),
            Err(_) => PyValueError::new_err(message),
        },
        Err(_) => PyValueError::new_err(message),
    }
}

/// Run a core call with the GIL released; a panic becomes `MosaicInternalError`, never a crash.
pub(crate) fn detached<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> core::Result<T> + Send,
) -> PyResult<T> {
    let result = py.detach(|| catch_unwind(AssertUnwindSafe(f)));
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_pyerr(py, e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(raise(
                py,
                "MosaicInternalError",
                format!("internal error in the Rust core: {what}"),
            ))
        }
    }
}

pub(crate) fn value_err(py: Python<'_>, message: String) -> PyErr {
    to_pyerr(py, MosaicError::value(message))
}

pub(crate) fn type_err(py: Python<'_>, message: String) -> PyErr {
    to_pyerr(py, MosaicError::type_error(message))
}

/// A state the checks should have made impossible: a bug here, reported as `MosaicInternalError`.
pub(crate) fn internal_err(py: Python<'_>, message: String) -> PyErr {
    raise(
        py,
        "MosaicInternalError",
        format!("internal error in mosaic_fast._core: {message}"),
    )
}
