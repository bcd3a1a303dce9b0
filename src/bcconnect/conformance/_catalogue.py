"""The checks catalogue as Markdown (``conformance/CHECKS.md`` is this text; a test keeps them equal).

The source is each pack's catalogue file (``bcconnect/conformance/packs/<pack>.toml``); this is a view of it.
"""

from __future__ import annotations

from bcconnect.conformance.packs import PACKS


def catalogue_markdown() -> str:
    """Every pack and check: id, severity, title and specification reference."""
    lines = [
        "# Conformance checks",
        "",
        "Generated from the packs' catalogue files, `src/bcconnect/conformance/packs/<pack>.toml` (the one source: "
        "installed with the package, read by the runner); `bcconnect conformance list` prints the same. A test "
        "fails when this file is out of date.",
        "",
    ]
    for pack in PACKS.values():
        lines += [
            f"## `{pack.name}` — {pack.title}",
            "",
            pack.description,
            "",
            "| id | severity | check: what it judges | specification |",
            "| --- | --- | --- | --- |",
        ]
        for c in pack.checks:
            what = f"**{_cell(c.title)}**<br>{_cell(c.description)}"
            lines.append(f"| `{c.id}` | {c.severity.value} | {what} | [{_cell(c.spec.section)}]({c.spec.url}) |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (a ``|`` would end the cell)."""
    return text.replace("|", "\\|")
