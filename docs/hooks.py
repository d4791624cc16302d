"""MkDocs hook: the settings reference (docs/reference/settings.md) is generated from the settings'
declarations (``mosaic_fast.settings.SETTINGS``), so it cannot fall behind them."""

from __future__ import annotations

PLACEHOLDER = "<!-- settings-table -->"


def settings_table() -> str:
    """Markdown table of every setting: name, default, meaning, and its three flags."""
    from mosaic_fast.settings import SETTINGS

    rows = [
        "| setting | default | meaning | results | resume | axis |",
        "|---|---|---|---|---|---|",
    ]
    for s in SETTINGS.values():
        meaning = s.help
        if s.choices:
            meaning += " Choices: " + ", ".join(f"`{c}`" for c in s.choices) + "."
        default = s.default_text() or "none"
        cells = [
            f"`{s.name}`",
            default.replace("|", "\\|"),
            meaning.replace("|", "\\|"),
            "yes" if s.changes_results else "no",
            "yes" if s.resumable else "no",
            "axis" if s.axis else "",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs' signature)
    if PLACEHOLDER in markdown:
        return markdown.replace(PLACEHOLDER, settings_table())
    return markdown
