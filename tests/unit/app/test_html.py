"""The pages' HTML helpers: escaping by construction, charts that carry their numbers as text too."""

from __future__ import annotations

from bcconnect.app import Bar, Column, Markup, bar_chart, html, table, tag, url


def test_text_is_escaped_and_markup_is_not() -> None:
    """A hostile string becomes text; markup built by the helpers passes through once, unescaped."""
    hostile = '<script>alert("x")</script>'
    built = tag("p", hostile, tag("b", "ok"), title=hostile)
    assert "<script>" not in built
    assert "&lt;script&gt;" in built
    assert "<b>ok</b>" in built
    assert 'title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"' in built
    assert html("<i>{}</i>", Markup("<b>x</b>")) == "<i><b>x</b></i>"


def test_attribute_names_and_flags() -> None:
    """``class_`` and ``aria_label`` become ``class``/``aria-label``; True is a bare flag, None is omitted."""
    assert tag("input", required=True, aria_label="Go", class_="x", hidden=None) == (
        '<input required aria-label="Go" class="x">'
    )


def test_url_drops_empty_values() -> None:
    """Filters left blank do not clutter a link."""
    assert url("/app/worklist", network="ENT", trust="", q=None) == "/app/worklist?network=ENT"


def test_table_shows_rows_and_an_empty_message() -> None:
    """Rows become cells (numeric right-aligned); no rows gives the empty message, not an empty table body."""
    columns = [Column[tuple[str, int]]("Trust", lambda r: r[0]), Column[tuple[str, int]]("Size", lambda r: r[1], True)]
    full = table(columns, [("RL4", 3)], caption="Sizes")
    assert '<td class="num">3</td>' in full
    assert "<caption>Sizes</caption>" in full
    assert "Nothing to show." in table(columns, [])


def test_bar_chart_has_a_text_alternative_and_a_data_table() -> None:
    """The SVG is labelled with every value and a table repeats them for screen readers."""
    chart = bar_chart("Waiting", [Bar("RL4", 10), Bar("RNA <b>", 5)], unit=" wk", target=8, target_label="target")
    assert 'role="img"' in chart
    assert "RL4 10 wk; RNA &lt;b&gt; 5 wk" in chart
    assert chart.count("<rect") == 2
    assert "<table" in chart
    assert "stroke-dasharray" in chart
