"""Server-rendered web pages under ``/app/`` for triagers and waiting-list managers (and cohorts, operations).

No JavaScript and no CDN: HTML built by escaping helpers, one small stylesheet with an NHS look and feel,
``<details>`` for expandable sections, inline SVG for charts. Same authentication as the FHIR endpoint (a bearer
token in the ``Authorization`` header, or — for a browser — the sign-in form at ``/app/login``, which checks the
token and keeps it in an HttpOnly, SameSite=Strict cookie scoped to ``/app``), and an AuditEvent for every page
view. Pages reach data only through ``triage`` and ``view``, so the information-governance screen applies.

Adding a page (cohorts and ops pages do exactly this)::

    async def render(ctx: PageContext) -> Rendered:
        rows = await my_service.rows(ctx.access, network=ctx.request.param("network"))
        ctx.patients.update(r.patient_id for r in rows)            # goes on the AuditEvent
        return Rendered(table([Column("Name", lambda r: r.name)], rows))

    page = Page("/things", "Things", render, resource_types=("Observation",), nav="Things")
    pages = PagesApp([page], guard=GatePageGuard(gate))           # mount at /app in the server

Helpers: :func:`tag`/:func:`html` (escaped markup), :func:`table`/:class:`Column`, :func:`bar_chart`/:class:`Bar`,
:func:`badge`, :func:`expandable`, :func:`facts`, :func:`url`.
"""

from bcconnect.app._app import (
    TOKEN_COOKIE,
    OpenGuard,
    Page,
    PageContext,
    PageGuard,
    PageRequest,
    PagesApp,
    Rendered,
)
from bcconnect.app._html import Markup, escape, html, join, tag, url
from bcconnect.app._layout import NavItem, layout
from bcconnect.app._ops import ops_pages
from bcconnect.app._security import GatePageGuard
from bcconnect.app._standard import standard_pages
from bcconnect.app._widgets import Bar, Column, badge, bar_chart, expandable, facts, table

__all__ = [
    "TOKEN_COOKIE",
    "Bar",
    "Column",
    "GatePageGuard",
    "Markup",
    "NavItem",
    "OpenGuard",
    "Page",
    "PageContext",
    "PageGuard",
    "PageRequest",
    "PagesApp",
    "Rendered",
    "badge",
    "bar_chart",
    "escape",
    "expandable",
    "facts",
    "html",
    "join",
    "layout",
    "ops_pages",
    "standard_pages",
    "table",
    "tag",
    "url",
]
