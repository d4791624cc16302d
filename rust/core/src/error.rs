//! One error type for the core; the binding maps each kind onto a Python exception class.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A value is out of range or inconsistent with another (maps to `ValueError`).
    Value,
    /// A wrong type, dtype or memory layout (maps to `TypeError`).
    Type,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosaicError {
    pub kind: ErrorKind,
    pub message: String,
}

impl MosaicError {
    pub fn value(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Value,
            message: message.into(),
        }
    }

    pub fn type_error(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Type,
            message: message.into(),
        }
    }
}

impl fmt::Display for MosaicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MosaicError {}

pub type Result<T> = std::result::Result<T, MosaicError>;

/// Return early with a value error built from a format string.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::MosaicError::value(format!($($arg)*)))
    };
}
