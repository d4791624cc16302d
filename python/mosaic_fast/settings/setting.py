"""One setting's declaration (:class:`Setting`), and the checks and parsing generated from it."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..data.specs import dataset_names, dataset_spec
from ..errors import MosaicValueError
from ..user_code import decode

# per_dataset key of the value for a user's own data (a module:loader dataset or Python objects).
OTHER_DATA = "other data"
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True}
_BOOL_WORDS |= {"false": False, "no": False, "off": False, "0": False}
_NONE_WORDS = ("none", "null")


def form_of(value: Any) -> str | None:
    """The form (a key of :data:`FORMS`) of a setting's text other than a plain name, or None."""
    if not isinstance(value, str):
        return None
    if re.fullmatch(r"cuda:\d+", value):
        return "cuda-index"
    return decode("", value).form


# Forms a setting may accept besides its choices: form -> (test, words for messages, metavar).
# User code and files are decoded by mosaic_fast.user_code.decode.
FORMS: dict[str, tuple[Any, str, str]] = {
    "reference": (
        lambda v: form_of(v) == "reference",
        "a module:attribute reference",
        "MODULE:ATTR",
    ),
    "edges-file": (lambda v: form_of(v) == "edges-file", "edges:FILE", "edges:FILE"),
    "object": (lambda v: form_of(v) == "object", "a Python object given to Experiment", "<OBJECT>"),
    "cuda-index": (lambda v: form_of(v) == "cuda-index", "cuda:N (a GPU's index)", "cuda:N"),
    "assignment-file": (
        lambda v: form_of(v) == "assignment-file",
        "assignment:FILE",
        "assignment:FILE",
    ),
}


@dataclass(frozen=True)
class Setting:
    """One setting's declaration. ``name``, ``kind``, ``nullable`` and ``default`` come from the
    dataclass field; everything else from :func:`setting`."""

    help: str
    # True: None is filled by ExperimentConfig.resolved() from the dataset's spec
    # (mosaic_fast.data.specs.DatasetSpec.defaults), else with ``other_data``.
    per_dataset: bool = False
    # The value for data without a spec (a user's own) and for specs that leave the setting out.
    other_data: Any = None
    # (other setting, value): per_dataset applies only while that setting has that value.
    per_dataset_when: tuple[str, Any] | None = None
    # The registered datasets' names are read live (mosaic_fast.data.specs.DATASETS).
    choices: Sequence[str] | None = None
    # Forms accepted besides the choices (keys of FORMS): user code, files.
    also: tuple[str, ...] = ()
    # Bounds: value >= at_least, value > above, value < below. Floats must also be finite.
    at_least: float | None = None
    above: float | None = None
    below: float | None = None
    # What users write for None on the command line and in TOML (which has no null).
    none_alias: Any = None
    # False: runs differing only in this setting repeat one experiment (NON_RESULT_SETTINGS).
    changes_results: bool = True
    # True: may differ between an interrupted run and its resumption (RESUMABLE_SETTINGS).
    resumable: bool = False
    # True: a sweep takes a comma list of values for it, one cell per value.
    axis: bool = False
    name: str = ""
    kind: type = object
    nullable: bool = False
    default: Any = None

    @property
    def option(self) -> str:
        """The command-line flag: ``--local-steps`` for ``local_steps``."""
        return "--" + self.name.replace("_", "-")

    @property
    def expected(self) -> str:
        word = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
        return word[self.kind]

    def dataset_default(self, dataset: str) -> Any:
        """The value a per-dataset setting left unset takes for ``dataset``."""
        spec = dataset_spec(dataset)
        return self.other_data if spec is None else spec.defaults.get(self.name, self.other_data)

    def per_dataset_defaults(self) -> dict[str, Any]:
        """Every registered dataset's value (then :data:`OTHER_DATA`'s, if any); {} unless
        ``per_dataset``."""
        if not self.per_dataset:
            return {}
        values = {name: self.dataset_default(name) for name in dataset_names()}
        if self.other_data is not None:
            values[OTHER_DATA] = self.other_data
        return {name: value for name, value in values.items() if value is not None}

    def coerce(self, value: Any) -> Any:
        """A value from TOML, JSON or Python, as this setting's type (ints become floats for
        float settings; ``none_alias`` becomes None). MosaicValueError names a wrong type."""
        if value is None and self.nullable:
            return None
        if self.none_alias is not None and _same(value, self.none_alias):
            return None
        if self.kind is float and _is_int(value):
            return float(value)
        if self._has_type(value):
            return value
        raise MosaicValueError(f"{self.name}={value!r} must be {self.expected}")

    def parse(self, text: str) -> Any:
        """A value from command-line text (``--set``, comma lists): ``none``/``null`` for None
        where allowed, ``true``/``false`` for booleans."""
        text = text.strip()
        if self.nullable and text.lower() in _NONE_WORDS:
            return None
        try:
            if self.kind is bool:
                return _BOOL_WORDS[text.lower()]
            if self.kind is str:
                return text
            return self.coerce(self.kind(text))
        except (KeyError, ValueError):
            raise MosaicValueError(f"{self.name}={text!r} must be {self.expected}") from None

    def check(self, value: Any) -> None:
        """MosaicValueError (one line, naming the value) unless ``value`` is valid on its own."""
        why = self.problem(value)
        if why is not None:
            raise MosaicValueError(f"{self.name}={value!r} {why}")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not valid on its own (``must be at least 1``), or None."""
        if value is None and self.nullable:
            return None
        if not self._has_type(value):
            return f"must be {self.expected}"
        if self.choices is not None and value not in self.choices:
            if form_of(value) in self.also:
                return None
            # Object labels come from the Python API only: not worth naming to CLI users.
            extra = "".join(f", or {FORMS[form][1]}" for form in self.also if form != "object")
            return f"is not one of {', '.join(self.choices)}{extra}"
        if self.kind is float and not math.isfinite(value):
            return "must be a finite number"
        if self.kind in (int, float) and not self._in_bounds(value):
            # A number standing for None (test_samples 0 = the whole test set) is allowed too.
            alias = self.none_alias
            also = f", or {alias}" if isinstance(alias, (int, float)) and self.nullable else ""
            return f"must be {self.bounds}{also}"
        return None

    def _has_type(self, value: Any) -> bool:
        if self.kind is float:
            return _is_int(value) or isinstance(value, float)
        return _is_int(value) if self.kind is int else type(value) is self.kind

    def _in_bounds(self, value: float) -> bool:
        return (
            (self.at_least is None or value >= self.at_least)
            and (self.above is None or value > self.above)
            and (self.below is None or value < self.below)
        )

    @property
    def bounds(self) -> str:
        """The bounds in words: ``at least 1``, ``positive``, ``in [0, 1)``."""
        if self.below is not None:
            low = f"[{self.at_least:g}" if self.at_least is not None else f"({self.above:g}"
            return f"in {low}, {self.below:g})"
        if self.above == 0:
            return "positive"
        if self.above is not None:
            return f"greater than {self.above:g}"
        return "non-negative" if self.at_least == 0 else f"at least {self.at_least:g}"

    def default_text(self) -> str:
        """The default for help texts, including per-dataset defaults."""
        by_dataset = self.per_dataset_defaults()
        if by_dataset:
            by_value: dict[Any, list[str]] = {}
            for dataset, value in by_dataset.items():
                by_value.setdefault(value, []).append(dataset)
            if len(by_value) == 1:
                text = _shown(next(iter(by_value)))
            else:
                text = "; ".join(f"{_shown(v)} for {', '.join(ds)}" for v, ds in by_value.items())
            if self.per_dataset_when is not None:
                other, value = self.per_dataset_when
                text += f" when {other} is {value}"
            return text
        if self.kind is bool:
            return "on" if self.default else "off"
        return "" if self.default is None else _shown(self.default)


def setting(default: Any, *, help: str, **declaration: Any) -> Any:
    """Declare an ExperimentConfig field: its default plus the :class:`Setting` metadata."""
    return dataclasses.field(
        default=default, metadata={"setting": Setting(help=help, **declaration)}
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return format(value, "g")
    return str(value)
