"""User code named in settings: ``package.module:attribute`` references, and labels for Python objects.

A setting such as ``model`` holds a built-in name, a reference the CLI can import
(``mypkg.nets:make_resnet``), or, when the public API was handed a Python object that no reference
reaches (a lambda, a class defined in ``__main__``), a label in angle brackets (``<make_net>``)
that records what was used but cannot be imported again.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from .errors import MosaicValueError
from .settings import is_reference


def import_reference(reference: str, what: str) -> Any:
    """The object ``reference`` (``package.module:attribute``) names; ``what`` names the setting.

    Every failure is one MosaicValueError line: a missing module, a missing attribute, or an
    error raised while importing the module.
    """
    if is_object_label(reference):
        raise MosaicValueError(
            f"{what} {reference!r} was a Python object handed to Experiment; it cannot be "
            "imported again: pass the same object to Experiment, or a module:attribute reference"
        )
    if not is_reference(reference):
        raise MosaicValueError(f"{what} {reference!r} is not a module:attribute reference")
    module_name, attribute = reference.split(":", 1)
    # As `python -m` does: modules next to where the command runs are importable.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise MosaicValueError(f"{what} {reference!r}: no module named {exc.name!r}") from None
    except Exception as exc:  # user code: any failure while importing it is one line
        raise MosaicValueError(
            f"{what} {reference!r}: importing {module_name} failed: {first_line(exc)}"
        ) from None
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise MosaicValueError(
                f"{what} {reference!r}: module {module_name!r} has no attribute {attribute!r}"
            )
        obj = getattr(obj, part)
    return obj


def is_object_label(value: Any) -> bool:
    """True for the ``<name>`` label of a Python object that no reference reaches."""
    return isinstance(value, str) and value.startswith("<") and value.endswith(">")


def label_of(obj: Any) -> str:
    """A reference to ``obj`` when importing it gives ``obj`` back, else an ``<name>`` label."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if module and qualname and module != "__main__" and "<" not in qualname:
        reference = f"{module}:{qualname}"
        try:
            if is_reference(reference) and import_reference(reference, "object") is obj:
                return reference
        except MosaicValueError:
            pass
    name = qualname or type(obj).__name__
    return f"<{name.replace('<', '').replace('>', '')}>"


def describe(obj: Any) -> str:
    """A short name of a callable for messages: its qualified name, else its repr."""
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)


def first_line(exc: BaseException) -> str:
    """``Type: message`` of an exception raised by user code, cut to its first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
