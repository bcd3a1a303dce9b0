"""The pages ``bcconnect serve`` mounts at ``/app/`` (the start page is built into :class:`PagesApp`)."""

from __future__ import annotations

from bcconnect.app._app import Page
from bcconnect.view import View


def standard_pages(view: View) -> list[Page]:
    """Every page of the product, reading through ``view``."""
    return []
