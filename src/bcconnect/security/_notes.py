"""What the read path learnt about one request, for its audit record (patients touched, what was withheld).

The API authenticates, calls the view and records the audit event in one task, so a context variable set at
authentication is seen by the view's screening and by the audit write without threading it through every
signature. Outside a request (tests, the CLI) there are no notes and noting is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bcconnect.security._principal import Principal


@dataclass(slots=True)
class AccessNotes:
    """Mutable notes of one request (each request gets its own)."""

    patients: set[str] = field(default_factory=set)
    withheld: set[str] = field(default_factory=set)
    #: who was authenticated, kept even when the request is then refused (403), for the audit record
    principal: Principal | None = None
    #: the request these notes belong to (so a request that never reached authentication cannot pick up
    #: the notes of an earlier request served in the same task)
    owner: object | None = None


_NOTES: ContextVar[AccessNotes | None] = ContextVar("bcconnect_access_notes", default=None)


def start_notes(owner: object | None = None) -> AccessNotes:
    """Begin the notes of a new request (``owner``: the request object) in the current context."""
    notes = AccessNotes(owner=owner)
    _NOTES.set(notes)
    return notes


def current_notes(owner: object | None = None) -> AccessNotes | None:
    """The notes of the request being served, if any (only ``owner``'s when an owner is given)."""
    notes = _NOTES.get()
    if notes is not None and owner is not None and notes.owner is not owner:
        return None
    return notes


def note_access(*, patients: Iterable[str] = (), withheld: Iterable[str] = ()) -> None:
    """Record patients touched (``Patient/<id>``) and reasons data was withheld (``objection``, ``sensitive``)."""
    notes = _NOTES.get()
    if notes is not None:
        notes.patients.update(patients)
        notes.withheld.update(withheld)
