"""Small building blocks for pages: tables, badges, expandable sections, inline SVG bar charts.

Every chart carries its numbers twice: drawn (SVG with ``role="img"`` and a text alternative) and as a table a
screen reader or a keyboard user can read, so nothing is available only as a picture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from bcconnect.app._html import Markup, escape, join, tag

Row = TypeVar("Row")


@dataclass(frozen=True)  # no slots: ``Column[T](…)`` sets ``__orig_class__`` on the instance
class Column(Generic[Row]):
    """One table column: its heading and how a row shows in it (``numeric`` right-aligns)."""

    heading: str
    cell: Callable[[Row], object]
    numeric: bool = False


def table(
    columns: Sequence[Column[Row]], rows: Iterable[Row], *, caption: str | None = None, empty: str = "Nothing to show."
) -> Markup:
    """A data table with a header row (``scope="col"``); ``empty`` is shown when there are no rows."""
    head = tag("tr", [tag("th", c.heading, scope="col", class_="num" if c.numeric else None) for c in columns])
    body = [tag("tr", [tag("td", c.cell(row), class_="num" if c.numeric else None) for c in columns]) for row in rows]
    if not body:
        body = [tag("tr", tag("td", empty, colspan=str(len(columns)), class_="muted"))]
    return tag(
        "table",
        tag("caption", caption) if caption else None,
        tag("thead", head),
        tag("tbody", body),
        class_="nhs-table",
    )


def badge(text: str, tone: str = "grey") -> Markup:
    """A short status label (``tone``: red, amber, blue, green, grey); the text carries the meaning."""
    return tag("strong", text, class_=f"tag tag--{tone}")


def expandable(summary: object, body: object, *, open_: bool = False, id_: str | None = None) -> Markup:
    """A ``<details>`` section: keyboard-operable (Enter/Space on the summary) without any script."""
    return tag("details", tag("summary", summary), tag("div", body, class_="details__body"), open=open_, id=id_)


def facts(pairs: Iterable[tuple[str, object]]) -> Markup:
    """A definition list of label → value."""
    return tag("dl", [join([tag("dt", k), tag("dd", v)]) for k, v in pairs], class_="facts")


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a chart: its label, value and (optional) colour from the palette."""

    label: str
    value: float
    colour: str = "#005eb8"


#: the palette bars are drawn in, in order (NHS blue, dark blue, aqua green, warm yellow, dark grey, purple)
PALETTE = ("#005eb8", "#003087", "#00a499", "#ffb81c", "#425563", "#330072")


def bar_chart(
    title: str,
    bars: Sequence[Bar],
    *,
    unit: str = "",
    value_format: Callable[[float], str] = lambda v: f"{v:g}",
    width: int = 560,
    bar_height: int = 22,
    target: float | None = None,
    target_label: str = "",
) -> Markup:
    """A horizontal bar chart as inline SVG in a ``<figure>``, with the numbers also in a visually hidden table.

    ``target`` draws a dashed vertical line (e.g. the 92% standard) labelled ``target_label``.
    """
    label_width, gap, top = 170, 6, 8
    plot = width - label_width - 70
    most = max([b.value for b in bars] + [target or 0.0, 1e-9])
    height = top * 2 + len(bars) * (bar_height + gap)
    parts: list[str] = []
    for i, b in enumerate(bars):
        y = top + i * (bar_height + gap)
        length = max(0.0, b.value) / most * plot
        text = f"{value_format(b.value)}{unit}"
        parts.append(
            f'<text x="{label_width - 8}" y="{y + bar_height * 0.7:.1f}" text-anchor="end" font-size="13">'
            f"{escape(b.label)}</text>"
            f'<rect x="{label_width}" y="{y}" width="{length:.1f}" height="{bar_height}" fill="{escape(b.colour)}">'
            f"<title>{escape(b.label)}: {escape(text)}</title></rect>"
            f'<text x="{label_width + length + 6:.1f}" y="{y + bar_height * 0.7:.1f}" font-size="13">'
            f"{escape(text)}</text>"
        )
    if target is not None:
        x = label_width + target / most * plot
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}" stroke="#d5281b" stroke-width="2" '
            f'stroke-dasharray="5,4"/><text x="{x + 4:.1f}" y="{height - 2}" font-size="12" fill="#d5281b">'
            f"{escape(target_label)}</text>"
        )
    summary = "; ".join(f"{b.label} {value_format(b.value)}{unit}" for b in bars)
    svg = Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}: {escape(summary)}">{"".join(parts)}</svg>'
    )
    numbers = table(
        [Column[Bar]("Label", lambda b: b.label), Column[Bar]("Value", lambda b: f"{value_format(b.value)}{unit}")],
        bars,
        caption=title,
    )
    return tag("figure", tag("figcaption", title), svg, tag("div", numbers, class_="visually-hidden"), class_="chart")
