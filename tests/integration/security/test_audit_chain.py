"""The audit trail on a real store: appended, chained, verifiable, tamper-evident, linear under concurrency."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest

from bcconnect.security import (
    AuditRecord,
    append_audit_event,
    build_audit_event,
    count_audit_events,
    search_audit_events,
    verify_audit_chain,
)
from bcconnect.security._audit_codec import pack, unpack
from bcconnect.store import Store, Tx

pytestmark = pytest.mark.anyio


def record(n: int, patient: str = "Patient/p1") -> AuditRecord:
    return AuditRecord(
        recorded=datetime(2026, 11, 22, 20, 0, n % 60, tzinfo=UTC),
        interaction="read",
        status=200,
        method="GET",
        path=f"/fhir/Patient/{patient.split('/')[-1]}",
        user="912345678901",
        organisation="RL4",
        role="R8000",
        purpose="directcare",
        patients=(patient,),
    )


async def append(store: Store, n: int, patient: str = "Patient/p1") -> None:
    rec = record(n, patient)
    event = build_audit_event(rec, event_id=f"evt-{n}")
    await store.write(lambda tx: append_audit_event(tx, event, patients=rec.patients))


async def test_appended_events_form_a_chain_that_verifies(store: Store) -> None:
    """Five appends give five events and an intact chain."""
    for n in range(5):
        await append(store, n)
    report = await store.read(verify_audit_chain)
    assert report.ok, report
    assert report.events == 5


async def test_an_empty_trail_verifies(store: Store) -> None:
    """No events yet is a valid chain of length zero."""
    report = await store.read(verify_audit_chain)
    assert (report.ok, report.events) == (True, 0)


@pytest.mark.parametrize(
    ("tamper", "bad_seq"),
    [
        ("edit event 3: RL4 -> RXK", 3),
        ("DELETE FROM audit_event_patients WHERE seq = 2; DELETE FROM audit_events WHERE seq = 2", 2),
        ("UPDATE audit_events SET hash = prev_hash WHERE seq = 4", 4),
        ("DELETE FROM audit_event_patients WHERE seq = 5; DELETE FROM audit_events WHERE seq = 5", 5),
    ],
)
async def test_tampering_is_detected_at_the_first_changed_event(store: Store, tamper: str, bad_seq: int) -> None:
    """Editing a body, deleting a middle or last event, or rewriting a hash breaks verification there."""
    for n in range(5):
        await append(store, n)

    def run(tx: Tx) -> None:
        if tamper.startswith("edit event 3"):
            # the stored form is deflated: the attacker inflates, edits and deflates it again
            row = tx.query_one("SELECT body_z FROM audit_events WHERE seq = 3")
            assert row is not None
            edited = unpack(bytes(row[0])).replace(b"RL4", b"RXK")
            assert edited != unpack(bytes(row[0]))
            tx.execute("UPDATE audit_events SET body_z = ? WHERE seq = 3", (pack(edited),))
            return
        for statement in tamper.split(";"):
            tx.execute(statement)

    await store.write(run)
    report = await store.read(verify_audit_chain)
    assert not report.ok
    assert report.first_bad_seq == bad_seq


async def test_concurrent_appends_stay_one_linear_chain(store: Store) -> None:
    """Forty appends from concurrent tasks: sequence 1..40 without gaps, and the chain verifies."""
    async with anyio.create_task_group() as tg:
        for n in range(40):
            tg.start_soon(append, store, n)
    report = await store.read(verify_audit_chain)
    assert report.ok, report
    assert report.events == 40
    seqs = await store.read(lambda tx: [r[0] for r in tx.query("SELECT seq FROM audit_events ORDER BY seq")])
    assert seqs == list(range(1, 41))


async def test_events_are_found_by_patient_newest_first(store: Store) -> None:
    """AuditEvent?patient= returns only that patient's events, newest first; the reference form is normalised."""
    await append(store, 1, "Patient/p1")
    await append(store, 2, "Patient/p2")
    await append(store, 3, "Patient/p1")
    found = await store.read(lambda tx: search_audit_events(tx, patient="p1"))
    assert [b'"evt-3"' in f for f in found] == [True, False]
    assert len(found) == 2
    assert await store.read(lambda tx: search_audit_events(tx, patient="Patient/p3")) == []
    assert await store.read(count_audit_events) == 3


async def test_a_failed_request_transaction_leaves_no_audit_gap(store: Store) -> None:
    """An append rolled back with its transaction takes its sequence number with it: the chain stays whole."""
    await append(store, 1)

    def append_then_fail(tx: Tx) -> None:
        append_audit_event(tx, build_audit_event(record(2), event_id="evt-2"), patients=("Patient/p1",))
        raise LookupError("boom")

    with pytest.raises(LookupError):
        await store.write(append_then_fail)
    await append(store, 3)
    report = await store.read(verify_audit_chain)
    assert (report.ok, report.events) == (True, 2)
