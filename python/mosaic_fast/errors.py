"""Exception hierarchy. Every error mosaic-fast raises on bad input derives from ``MosaicError``."""

from __future__ import annotations


class MosaicError(Exception):
    """Base class of all mosaic-fast errors."""


class MosaicValueError(MosaicError, ValueError):
    """An argument has the right type but a bad value (shape, range, mismatch)."""


class MosaicTypeError(MosaicError, TypeError):
    """An argument has the wrong type, dtype or memory layout."""


class DataNotFoundError(MosaicError, FileNotFoundError):
    """A dataset has no local copy and cannot be downloaded."""


class MosaicInternalError(MosaicError, RuntimeError):
    """A bug inside mosaic-fast (a Rust panic caught at the boundary). Please report it."""
