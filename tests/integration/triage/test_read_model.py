"""The triage read model: kept current incrementally it equals a model rebuilt from nothing, its answers equal
the same answers computed from every resource read through the view, and it never shows what the caller's
screen withholds (each leak check is proven on an injected bypass).

Every change here is undone at the end (the synced world is shared by the package's tests).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date, timedelta
from typing import Any

import orjson
import pytest

from bcconnect.identity import merge, settle_persons, unmerge
from bcconnect.security import DEFAULT_POLICY, add_objection, remove_objection
from bcconnect.store import ResourceWrite, Tx, delete_resource, put_resources, read_current
from bcconnect.triage import ReadModel, Referral, Triage, model_snapshot
from bcconnect.triage._model import Hidden
from bcconnect.view import OPEN_ACCESS, AccessContext

from .conftest import SyncedWorld

pytestmark = pytest.mark.anyio

#: a triager without the sensitive-records grant (every type readable)
TRIAGER = AccessContext(user="triager", purpose="directcare", scopes=frozenset({"user/*.rs"}))


async def _stored(synced: SyncedWorld, rtype: str, rid: str) -> tuple[dict[str, Any], str, str | None]:
    """A resource as stored, with the adapter that wrote it and its compartment."""

    def run(tx: Tx) -> tuple[dict[str, Any], str, str | None]:
        found = read_current(tx, rtype, rid)
        assert found is not None
        assert found.body is not None
        row = tx.query_one("SELECT source FROM resources WHERE res_type = ? AND res_id = ?", (rtype, rid))
        assert row is not None
        return orjson.loads(found.body), str(row[0]), found.compartment

    return await synced.store.read(run)


async def _put(synced: SyncedWorld, rtype: str, body: dict[str, Any], source: str, compartment: str | None) -> None:
    write = ResourceWrite(rtype, str(body["id"]), orjson.dumps(body), source, compartment)
    await synced.store.write(lambda tx: put_resources(tx, [write]))


async def _model_equals_rebuild(triage: Triage) -> None:
    """The incrementally refreshed model, row for row, is the one a rebuild from nothing makes."""
    await triage.model.refresh()
    incremental = await triage.view.store.read(model_snapshot)
    await triage.model.rebuild()
    rebuilt = await triage.view.store.read(model_snapshot)
    assert incremental == rebuilt


async def _answers_equal_the_view(triage: Triage, access: AccessContext, as_of: date) -> list[str]:
    """Where the model's answers differ from the ones computed from every resource read through the view."""
    problems = []
    if await triage.summary(access, as_of=as_of) != await triage.summary_from_view(access, as_of=as_of):
        problems.append("summary")

    def rows(found: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [(r.key, r.person, r.trust, r.days_waited, r.pidmas_eligible, r.exclusions, r.resource) for r in found]

    if rows(await triage.waiting_list(access, as_of=as_of)) != rows(
        await triage.waiting_list_from_view(access, as_of=as_of)
    ):
        problems.append("waiting list")
    model = {(o.row.key, o.row.person, o.current_median_weeks) for o in await triage.mutual_aid(access, as_of=as_of)}
    oracle = {
        (o.row.key, o.row.person, o.current_median_weeks)
        for o in await triage.mutual_aid_from_view(access, as_of=as_of)
    }
    if model != oracle:
        problems.append(f"mutual aid: {sorted(model ^ oracle)[:4]}")
    for network in ("ENT", "Orthopaedics", "Urology"):
        items = await triage.worklist(access, network, as_of=as_of, with_context=False)
        want = _oracle_worklist(await triage.referrals(access, triage.config.network(network)), as_of)
        got = [(i.referral.id, tuple(sorted(d.id for d in i.duplicates))) for i in items]
        if got != want:
            problems.append(f"worklist {network}")
    return problems


def _oracle_worklist(referrals: Sequence[Referral], as_of: date) -> list[tuple[str, tuple[str, ...]]]:
    """The worklist straight from the view's referrals: awaiting, ordered, with other trusts' open ones."""
    rank = {"asap": 0, "stat": 0, "urgent": 1, "routine": 2}
    waiting = sorted(
        (r for r in referrals if r.awaiting_triage),
        key=lambda r: (rank.get(r.priority, 3), -((as_of - r.received).days if r.received else 0), r.id),
    )
    return [
        (
            r.id,
            tuple(
                sorted(
                    o.id for o in referrals if o.open and o.patient == r.patient and o.id != r.id and o.trust != r.trust
                )
            ),
        )
        for r in waiting
    ]


def _with_event(episode: dict[str, Any], url: str, code: str, day: date) -> dict[str, Any]:
    event = {"url": url, "extension": [
        {"url": "code", "valueCoding": {"code": code}}, {"url": "date", "valueDate": day.isoformat()}]}  # fmt: skip
    return {**episode, "extension": [*episode.get("extension", []), event]}


async def test_incremental_updates_equal_a_rebuild_and_the_view(synced: SyncedWorld) -> None:
    """New referral, discharge, a clock stopped for active monitoring, a first-appointment DNA, an identity
    merge and an objection: after each, the refreshed model equals a rebuilt one and every answer equals the
    view's."""
    triage = Triage(synced.view)
    as_of = synced.as_of
    await triage.model.rebuild()
    assert await _answers_equal_the_view(triage, OPEN_ACCESS, as_of) == []
    waiting = [r for r in await triage.waiting_list(OPEN_ACCESS, as_of=as_of) if r.resource]
    awaiting = [r for r in await triage.referrals(OPEN_ACCESS) if r.awaiting_triage]
    undo: list[Callable[[], Awaitable[Any]]] = []
    try:
        # a new referral awaiting triage (a second one for a person already on a worklist)
        body, source, compartment = await _stored(synced, "ServiceRequest", awaiting[0].id)
        new = {**body, "id": "triage-model-new-referral", "identifier": [{"system": "urn:test", "value": "new"}]}
        new.pop("meta", None)
        await _put(synced, "ServiceRequest", new, source, compartment)
        undo.append(lambda: synced.store.write(lambda tx: delete_resource(tx, "ServiceRequest", new["id"])))
        await _model_equals_rebuild(triage)
        # discharge (decision not to treat) and active monitoring stop two running clocks
        for row, code in ((waiting[0], "34"), (waiting[1], "31")):
            episode_id = str(row.resource["id"])
            body, source, compartment = await _stored(synced, "EpisodeOfCare", episode_id)
            changed = _with_event(body, triage.config.systems.rtt_event_extension, code, as_of - timedelta(days=1))
            await _put(synced, "EpisodeOfCare", changed, source, compartment)
            undo.append(lambda b=body, s=source, c=compartment: _put(synced, "EpisodeOfCare", b, s, c))
        await _model_equals_rebuild(triage)
        stopped = {r.key for r in await triage.waiting_list(OPEN_ACCESS, as_of=as_of)}
        assert waiting[0].key not in stopped
        assert waiting[1].key not in stopped
        assert await _answers_equal_the_view(triage, OPEN_ACCESS, as_of) == []
        # a booked first appointment not attended
        appointments = await triage._search(OPEN_ACCESS, "Appointment", [("status", "booked")])
        if appointments:
            body, source, compartment = await _stored(synced, "Appointment", str(appointments[0]["id"]))
            await _put(synced, "Appointment", {**body, "status": "noshow"}, source, compartment)
            undo.append(lambda b=body, s=source, c=compartment: _put(synced, "Appointment", b, s, c))
            await _model_equals_rebuild(triage)
        # an identity merge: two people on the waiting list become one person (no model row changes; the
        # answers name the surviving person)
        first, second = waiting[2], next(r for r in waiting[3:] if r.person != waiting[2].person)
        source_a = (await _stored(synced, "EpisodeOfCare", str(first.resource["id"])))[2]
        source_b = (await _stored(synced, "EpisodeOfCare", str(second.resource["id"])))[2]
        assert source_a
        assert source_b

        def do_merge(tx: Tx) -> None:
            merge(tx, source_a, source_b, origin="steward", actor="test")
            settle_persons(tx, patient_ids=[source_a, source_b])

        def do_unmerge(tx: Tx) -> None:
            unmerge(tx, source_a, actor="test")
            settle_persons(tx, patient_ids=[source_a, source_b])

        await synced.store.write(do_merge)
        undo.append(lambda: synced.store.write(do_unmerge))
        await _model_equals_rebuild(triage)
        assert await _answers_equal_the_view(triage, OPEN_ACCESS, as_of) == []
        # an objection: the person leaves every answer (the model's rows stay; the screen decides)
        nhs = next(i["value"] for i in (await _stored(synced, "Patient", waiting[4].person))[0].get("identifier", [])
                   if i.get("system") == "https://fhir.nhs.uk/Id/nhs-number")  # fmt: skip
        await synced.store.write(lambda tx: add_objection(tx, nhs))
        undo.append(lambda: synced.store.write(lambda tx: remove_objection(tx, nhs)))
        await _model_equals_rebuild(triage)
        assert await _answers_equal_the_view(triage, OPEN_ACCESS, as_of) == []
        assert await _answers_equal_the_view(triage, TRIAGER, as_of) == []
    finally:
        for step in reversed(undo):
            await step()
        await triage.model.refresh()


async def _leaks(triage: Triage, access: AccessContext, as_of: date, withheld: set[str], person: str) -> list[str]:
    """What the model's answers show ``access`` that the view withholds from them."""
    problems = await _answers_equal_the_view(triage, access, as_of)
    for network in triage.config.networks:
        for item in await triage.worklist(access, network, as_of=as_of, with_context=False):
            shown = {item.referral.id, *(d.id for d in item.duplicates)}
            if shown & withheld or item.person == person:
                problems.append(f"worklist {network} shows {sorted(shown & withheld) or person}")
    return problems


async def test_the_read_model_never_shows_what_the_screen_withholds(
    synced: SyncedWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A referral and a pathway labelled sensitive, and an objector: a triager without the sensitive grant
    sees none of them in any answer, exactly as the view screens them. Each way round the screen is proven:
    a worklist page read without the caller's screen, and counts that skip the withheld rows, are caught."""
    triage = Triage(synced.view)
    as_of = synced.as_of
    await triage.model.refresh()
    label = dict(zip(("system", "code"), sorted(DEFAULT_POLICY.labels)[0], strict=True))
    awaiting = [r for r in await triage.referrals(OPEN_ACCESS) if r.awaiting_triage and r.tfc]
    running = [r for r in await triage.waiting_list(OPEN_ACCESS, as_of=as_of) if r.resource]
    objector = next(r for r in running[5:] if r.person not in {running[0].person, awaiting[0].patient})
    undo: list[Callable[[], Awaitable[Any]]] = []
    try:
        for rtype, rid in (("ServiceRequest", awaiting[0].id), ("EpisodeOfCare", str(running[0].resource["id"]))):
            body, source, compartment = await _stored(synced, rtype, rid)
            labelled = {**body, "meta": {"security": [label]}}
            await _put(synced, rtype, labelled, source, compartment)
            undo.append(lambda t=rtype, b=body, s=source, c=compartment: _put(synced, t, b, s, c))
        nhs = next(i["value"] for i in (await _stored(synced, "Patient", objector.person))[0].get("identifier", [])
                   if i.get("system") == "https://fhir.nhs.uk/Id/nhs-number")  # fmt: skip
        await synced.store.write(lambda tx: add_objection(tx, nhs))
        undo.append(lambda: synced.store.write(lambda tx: remove_objection(tx, nhs)))
        withheld = {awaiting[0].id}
        # the grant holder sees the labelled ones; the triager does not, and nobody sees the objector
        assert await _leaks(triage, TRIAGER, as_of, withheld, objector.person) == []
        summary = {(s.trust, s.tfc): s.size for s in await triage.summary(TRIAGER, as_of=as_of)}
        full = {(s.trust, s.tfc): s.size for s in await triage.summary(OPEN_ACCESS, as_of=as_of)}
        assert sum(summary.values()) < sum(full.values())

        # bypass 1: the worklist page's referrals read without the caller's screen
        read = Triage._referrals_by_id

        async def unscreened(self: Triage, access: AccessContext, ids: Sequence[str]) -> list[Referral]:
            return await read(self, OPEN_ACCESS, ids)

        with monkeypatch.context() as patch:
            patch.setattr(Triage, "_referrals_by_id", unscreened)
            assert any("worklist" in p for p in await _leaks(triage, TRIAGER, as_of, withheld, objector.person))

        # bypass 2: the counts take every row of the model, withheld or not
        async def nothing_withheld(self: ReadModel, access: AccessContext) -> Hidden:
            return Hidden(frozenset(), frozenset(), frozenset(), None, frozenset())

        with monkeypatch.context() as patch:
            patch.setattr(ReadModel, "withheld", nothing_withheld)
            found = await _leaks(triage, TRIAGER, as_of, withheld, objector.person)
            assert "summary" in found
    finally:
        for step in reversed(undo):
            await step()
        await triage.model.refresh()
