"""The page shell every screen shares: NHS header, navigation, skip link, main landmark."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bcconnect.app._html import Markup, escape, html, tag
from bcconnect.app._style import STYLESHEET_VERSION


@dataclass(frozen=True, slots=True)
class NavItem:
    """A link in the navigation bar (``path`` below the pages' prefix)."""

    label: str
    path: str


SERVICE_NAME = "Black Country shared care record"


def layout(
    title: str,
    body: Markup,
    *,
    prefix: str,
    nav: Sequence[NavItem] = (),
    current: str | None = None,
    user: str | None = None,
    organisation: str | None = None,
) -> Markup:
    """A whole HTML document: ``body`` inside ``<main>``; ``current`` marks the nav item of this page."""
    links = [
        tag(
            "li",
            tag("a", item.label, href=f"{prefix}{item.path}", aria_current="page" if item.path == current else None),
        )
        for item in nav
    ]
    who = None
    if user:
        who = tag(
            "div",
            tag("span", f"{user}" + (f" · {organisation}" if organisation else "")),
            tag(
                "form",
                tag("button", "Sign out", type="submit", class_="secondary"),
                method="post",
                action=f"{prefix}/logout",
            ),
            class_="nhs-header__user",
        )
    header = tag(
        "header",
        tag(
            "div",
            tag("span", "NHS", class_="nhs-logo", aria_hidden="true"),
            tag("a", SERVICE_NAME, href=f"{prefix}/", class_="nhs-header__service"),
            who,
            class_="nhs-header__inner",
        ),
        class_="nhs-header",
        role="banner",
    )
    navigation = tag("nav", tag("ul", links), class_="nhs-nav", aria_label="Primary") if links else None
    return html(
        '<!DOCTYPE html>\n<html lang="en-GB"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>{} – {}</title>"
        '<link rel="stylesheet" href="{}/static/app.css?v={}"></head>'
        '<body><a class="skip-link" href="#main">Skip to main content</a>{}{}'
        '<main id="main" tabindex="-1">{}{}</main></body></html>',
        title,
        SERVICE_NAME,
        prefix,
        STYLESHEET_VERSION,
        header,
        navigation,
        tag("h1", title),
        escape(body),
    )
