"""User code named in settings, decoded in one place.

Five settings (``model``, ``dataset``, ``topology``, ``fragmenter``, ``optimizer``; ``partition``
takes objects too) hold text that :func:`decode` reads as one of four forms:

- :class:`Builtin`: a name the package knows (``sgd``, ``ring``); the setting's choices say which;
- :class:`Import`: a ``package.module:attribute`` reference the CLI can import
  (``mypkg.nets:make_resnet``);
- :class:`Object`: the ``<name>`` label of a Python object handed to the public API that no
  reference reaches (a lambda, a class defined in ``__main__``): it records what was used but
  cannot be imported again;
- :class:`File`: ``edges:FILE`` (a topology's edge list) or ``assignment:FILE`` (a fragmenter's
  coordinate assignment).

Settings' validation accepts a form where the setting's declaration lists it; the parts that act
on a setting ask :func:`decode` (or :func:`user_object`) rather than testing the text themselves.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

from .errors import MosaicValueError

# ``package.module:attribute``: user code that a setting may name instead of a built-in choice.
_REFERENCE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")
# File forms by kind: ``edges:ring.txt`` names a file, not attribute ``ring.txt`` of a module
# ``edges``.
FILE_PREFIXES = {"edges": "edges:", "assignment": "assignment:"}


@dataclass(frozen=True)
class Builtin:
    """A built-in name (``sgd``); whether the setting has it is the setting's own check."""

    setting: str
    name: str
    form: ClassVar[str | None] = None


@dataclass(frozen=True)
class Import:
    """A ``package.module:attribute`` reference to user code."""

    setting: str
    reference: str
    form: ClassVar[str | None] = "reference"

    def load(self) -> Any:
        """The object the reference names (one-line MosaicValueError if it cannot be imported)."""
        return import_reference(self.reference, self.setting)


@dataclass(frozen=True)
class Object:
    """The ``<name>`` label of a Python object handed to the public API."""

    setting: str
    label: str
    form: ClassVar[str | None] = "object"

    def load(self) -> NoReturn:
        """Always a one-line MosaicValueError: the object is gone, only its label was stored."""
        raise MosaicValueError(
            f"{self.setting} {self.label!r} was a Python object handed to Experiment; it cannot "
            "be imported again: pass the same object to Experiment, or a module:attribute reference"
        )


@dataclass(frozen=True)
class File:
    """``edges:FILE`` or ``assignment:FILE``: ``kind`` is ``edges`` or ``assignment``."""

    setting: str
    kind: str
    path: str

    @property
    def form(self) -> str:
        """``edges-file`` or ``assignment-file``: the form's name in settings' declarations."""
        return f"{self.kind}-file"

    @property
    def text(self) -> str:
        """The setting's text: ``edges:ring.txt``."""
        return f"{FILE_PREFIXES[self.kind]}{self.path}"


Decoded = Builtin | Import | Object | File


def decode(setting: str, value: str) -> Decoded:
    """What the text ``value`` of ``setting`` (``"model"``) names; ``setting`` names it in errors.

    Every text decodes: an object label, a file form, a reference, else a built-in name (which the
    setting's choices may still refuse).
    """
    if is_object_label(value):
        return Object(setting, value)
    for kind, prefix in FILE_PREFIXES.items():
        if value.startswith(prefix) and len(value) > len(prefix):
            return File(setting, kind, value[len(prefix) :])
    if is_reference(value):
        return Import(setting, value)
    return Builtin(setting, value)


def user_object(setting: str, value: str) -> Any:
    """The user object ``value`` names: imported for a reference, None for a built-in name or a
    file form; an object label is a one-line MosaicValueError (the object is not stored)."""
    code = decode(setting, value)
    if isinstance(code, (Import, Object)):
        return code.load()
    return None


def is_reference(value: Any) -> bool:
    """True for ``package.module:attribute`` text (user code to import); never for a file form
    (``edges:FILE``, ``assignment:FILE``)."""
    return (
        isinstance(value, str)
        and not value.startswith(tuple(FILE_PREFIXES.values()))
        and bool(_REFERENCE.fullmatch(value))
    )


def import_reference(reference: str, what: str) -> Any:
    """The object ``reference`` (``package.module:attribute``) names; ``what`` names the setting.

    Every failure is one MosaicValueError line: a missing module, a missing attribute, or an
    error raised while importing the module.
    """
    if is_object_label(reference):
        Object(what, reference).load()
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
