"""Click options generated from the settings' declarations (``config.SETTINGS``), shared by
``run`` and ``sweep``: one option per setting, its help text (with the default, per dataset where
the dataset decides) and its type come from the setting's one declaration."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

import click

from ..settings import FORMS, SETTINGS, Setting

_F = TypeVar("_F", bound=Callable[..., Any])  # a command function, typed as it was

_CLICK_TYPES = {int: click.INT, float: click.FLOAT, str: click.STRING}


def setting_help(s: Setting, demo: Mapping[str, Any] | None = None, note: str = "") -> str:
    """``s.help``, a note, then ``[default: ...]`` (and the demo's value where it differs)."""
    default = s.default_text()
    if demo and s.name in demo and str(demo[s.name]) != default:
        default = f"{default}; the demo without --dataset: {demo[s.name]}"
    parts = [s.help, note]
    if default:
        parts.append(f"[default: {default}]")
    return " ".join(p for p in parts if p)


def setting_options(
    *,
    lists: Collection[str] = (),
    notes: Mapping[str, str] | None = None,
    demo: Mapping[str, Any] | None = None,
    aliases: Mapping[str, tuple[str, ...]] | None = None,
) -> Callable[[_F], _F]:
    """A decorator adding one option per setting, in declaration order.

    Every option's value is None when not given, so a command can tell "unset" from a default.
    Settings named in ``lists`` take comma-list text (the command parses it); booleans are
    ``--x/--no-x`` flags; settings with choices list them. ``notes`` adds a sentence to a
    setting's help, ``demo`` the demo's default, ``aliases`` more flags (``seed``: ``--seeds``).
    """
    notes, aliases = notes or {}, aliases or {}

    def decorate(func: _F) -> _F:
        for s in reversed(SETTINGS.values()):
            note = notes.get(s.name, "")
            flags: tuple[str, ...] = (s.option, *aliases.get(s.name, ()))
            kind: Any
            if s.name in lists:
                kind, metavar = click.STRING, "LIST"
                if s.choices:
                    note = f"Values from: {', '.join(s.choices)}. {note}".strip()
            elif s.kind is bool:
                flags, kind, metavar = (f"{s.option}/--no-{s.option[2:]}",), None, None
            elif s.choices and s.also:  # choices or another form: checked by the config
                forms = [FORMS[form][2] for form in s.also if form != "object"]
                kind, metavar = click.STRING, "|".join((*s.choices, *forms))
            elif s.choices:
                kind, metavar = click.Choice(s.choices), None
            else:
                kind, metavar = _CLICK_TYPES[s.kind], None
            func = click.option(
                *flags,
                s.name,
                type=kind,
                metavar=metavar,
                default=None,
                help=setting_help(s, demo, note),
            )(func)
        return func

    return decorate


def config_option(func: _F) -> _F:
    """``--config FILE``: settings from a TOML file; read (and checked) by the command."""
    return click.option(
        "--config",
        "config_file",
        metavar="FILE",
        default=None,
        help="TOML file of settings (keys as option names, dashes or underscores, optionally "
        "under [run]); command-line options win.",
    )(func)


def given(options: Mapping[str, Any]) -> dict[str, Any]:
    """The setting options the user gave (click leaves the others None)."""
    return {k: v for k, v in options.items() if k in SETTINGS and v is not None}
