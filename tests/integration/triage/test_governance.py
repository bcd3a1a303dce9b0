"""Triage applies the same screen as the FHIR endpoint: an objecting person leaves the worklist and the
waiting list; a token confined to one patient sees only that patient's pathways."""

from __future__ import annotations

import pytest

from bcconnect.security import add_objection, remove_objection
from bcconnect.triage import Triage
from bcconnect.view import OPEN_ACCESS, AccessContext

from .conftest import SyncedWorld

pytestmark = pytest.mark.anyio


async def test_an_objection_withholds_the_person_from_worklist_and_waiting_list(synced: SyncedWorld) -> None:
    """Record an objection for someone on a worklist: they are gone from both answers; withdraw it: back."""
    triage = Triage(synced.view)
    items = []
    for network in triage.config.networks:
        items = await triage.worklist(OPEN_ACCESS, network, as_of=synced.as_of)
        if any(i.context and i.context.nhs_number for i in items):
            break
    target = next(i for i in items if i.context and i.context.nhs_number)
    assert target.context is not None
    nhs_number = target.context.nhs_number
    assert nhs_number is not None
    before = {r.person for r in await triage.waiting_list(OPEN_ACCESS, as_of=synced.as_of)}
    await synced.store.write(lambda tx: add_objection(tx, nhs_number))
    try:
        after_items = await triage.worklist(OPEN_ACCESS, target.network, as_of=synced.as_of)
        assert target.person not in {i.person for i in after_items}
        assert len(after_items) == len(items) - sum(1 for i in items if i.person == target.person)
        waiting = {r.person for r in await triage.waiting_list(OPEN_ACCESS, as_of=synced.as_of)}
        assert target.person not in waiting
        assert waiting == before - {target.person}
    finally:
        await synced.store.write(lambda tx: remove_objection(tx, nhs_number))
    restored = await triage.worklist(OPEN_ACCESS, target.network, as_of=synced.as_of)
    assert target.person in {i.person for i in restored}


async def test_a_patient_confined_caller_sees_only_their_own_pathways(synced: SyncedWorld) -> None:
    """A token limited to one person's record (SMART patient context) gets only that person's rows."""
    triage = Triage(synced.view)
    rows = await triage.waiting_list(OPEN_ACCESS, as_of=synced.as_of)
    person = rows[0].person
    confined = AccessContext(
        user="patient-app", purpose="directcare", patient=person, scopes=frozenset({"patient/*.rs"})
    )
    mine = await triage.waiting_list(confined, as_of=synced.as_of)
    assert mine
    assert {r.person for r in mine} == {person}
