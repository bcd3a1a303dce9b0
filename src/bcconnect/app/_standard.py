"""The pages ``bcconnect serve`` mounts at ``/app/`` (the start page is built into :class:`PagesApp`)."""

from __future__ import annotations

from bcconnect.app._app import Page
from bcconnect.app._cohort_pages import cohorts_page
from bcconnect.app._triage_pages import triage_pages
from bcconnect.triage import Triage
from bcconnect.view import View


def standard_pages(view: View, *, triage: Triage | None = None) -> list[Page]:
    """Every page of the product, reading through ``view`` (and ``triage`` over it)."""
    return [*triage_pages(triage or Triage(view)), cohorts_page(view)]
