"""What a read model kept beside the view needs of it: the change feed, the caller's screen, and person ids.

Triage keeps its open referrals and pathway clocks in its own tables (so a waiting-list summary does not
re-read and re-parse every ServiceRequest, EpisodeOfCare and Appointment on each call). It follows the store
through :func:`changed_resources` (system reads, as stored, never an answer to a caller) and screens every
answer at read time with the same facts the view screens with: :func:`caller_visibility` gives the caller's
screen (objectors, ``patient/`` confinement, readable types, hidden labels) and :func:`visible_keys` decides
single rows by exactly the SQL predicate every search uses. What a caller is finally shown is read through
:class:`~bcconnect.view.View` itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bcconnect.store import (
    StoredResource,
    Tx,
    Visibility,
    alias_members,
    canonical_ids,
    changed_current,
    feed_horizon,
    visible_versions,
)
from bcconnect.view._context import AccessContext
from bcconnect.view._view import View


async def store_time(view: View) -> int:
    """How far a read model may catch up: the change feed's watermark (every version at or below it is
    committed and visible; one committed later has a later ``t``)."""
    return await view.store.read(feed_horizon)


async def changed_resources(
    view: View, resource_type: str, *, after: tuple[int, str], upto: int, limit: int = 2000
) -> list[StoredResource]:
    """Current versions of ``resource_type`` changed after ``after`` (``(t, id)``) up to ``upto``, as stored
    (deletions included, no re-pointing, no screening): for a read model that screens when it answers."""
    return await view.store.read(lambda tx: changed_current(tx, resource_type, after=after, upto=upto, limit=limit))


async def caller_visibility(view: View, access: AccessContext) -> Visibility:
    """The caller's screen as the store applies it (the same object every search of theirs is filtered by)."""
    return await view.store.read(lambda tx: view._screen(tx, access).visibility)


async def visible_keys(
    view: View, access: AccessContext, keys: Sequence[tuple[str, str, int]]
) -> set[tuple[str, str, int]]:
    """Which ``(type, id, version)`` rows the caller may see, by the SQL predicate every search uses."""

    def run(tx: Tx) -> set[tuple[str, str, int]]:
        return visible_versions(tx, list(keys), view._screen(tx, access).visibility)

    return await view.store.read(run)


async def person_members(view: View, patient_ids: Iterable[str]) -> dict[str, tuple[str, list[str]]]:
    """For each Patient id: its person (golden id) and every Patient id of that person (itself when none)."""
    wanted = list(dict.fromkeys(patient_ids))

    def run(tx: Tx) -> dict[str, tuple[str, list[str]]]:
        person_of = canonical_ids(tx, "Patient", wanted)
        members = alias_members(tx, "Patient", set(person_of.values()))
        out = {}
        for pid in wanted:
            person = person_of.get(pid, pid)
            out[pid] = (person, members.get(person) or [pid])
        return out

    return await view.store.read(run)
