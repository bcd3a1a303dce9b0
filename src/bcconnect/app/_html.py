"""Markup that is escaped by construction: :class:`Markup` is trusted HTML, everything else is text.

Pages build HTML from small helpers rather than templates, so escaping cannot be forgotten: any ``str`` put
into :func:`html` or :func:`tag` is escaped; only :class:`Markup` (built by these helpers) passes as is.

>>> str(tag("p", "Fish & chips <3", class_="lede"))
'<p class="lede">Fish &amp; chips &lt;3</p>'
>>> str(html("<b>{}</b>", "<i>"))
'<b>&lt;i&gt;</b>'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape as _escape
from urllib.parse import urlencode

#: elements without content or closing tag
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "col"})


class Markup(str):
    """A string of trusted HTML (already escaped)."""

    __slots__ = ()


def escape(value: object) -> Markup:
    """``value`` as HTML text; Markup passes through unchanged, None becomes empty."""
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("")
    return Markup(_escape(str(value), quote=True))


def _children(children: Iterable[object]) -> str:
    out: list[str] = []
    for child in children:
        if child is None or child is False:
            continue
        if isinstance(child, str | int | float):
            out.append(escape(child))
        elif isinstance(child, Iterable):
            out.append(_children(child))
        else:
            out.append(escape(child))
    return "".join(out)


def join(children: Iterable[object]) -> Markup:
    """Several children as one piece of markup (strings escaped)."""
    return Markup(_children(children))


def attributes(attrs: Mapping[str, object]) -> str:
    """`` name="value"`` pairs: ``class_`` → ``class``, ``aria_label`` → ``aria-label``; True bare, None omitted."""
    out: list[str] = []
    for raw, value in attrs.items():
        if value is None or value is False:
            continue
        name = raw.rstrip("_").replace("_", "-")
        out.append(f" {name}" if value is True else f' {name}="{escape(value)}"')
    return "".join(out)


def tag(name: str, /, *children: object, **attrs: object) -> Markup:
    """One element: ``tag("a", "Worklist", href="/app/worklist")``; strings among ``children`` are escaped."""
    if name in _VOID:
        return Markup(f"<{name}{attributes(attrs)}>")
    return Markup(f"<{name}{attributes(attrs)}>{_children(children)}</{name}>")


def html(template: str, *args: object) -> Markup:
    """``template`` (trusted, ``{}`` placeholders) with every argument escaped."""
    return Markup(template.format(*(escape(a) for a in args)))


def url(path: str, **query: object) -> str:
    """``path`` with a query string built from the keyword arguments whose value is not None or empty."""
    pairs = [(k.rstrip("_"), str(v)) for k, v in query.items() if v is not None and v != ""]
    return f"{path}?{urlencode(pairs)}" if pairs else path
