"""The store contract: the same behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import orjson
import pytest

from bcconnect.errors import ConflictError, ReasonCode, StoreError
from bcconnect.store import (
    QuarantineEntry,
    ResourceWrite,
    Tx,
    Visibility,
    WriteCounts,
    add_quarantine,
    current_t,
    delete_resource,
    get_cursor,
    get_quarantine,
    history,
    land_raw,
    list_quarantine,
    mark_replayed,
    open_store,
    put_resources,
    read_current,
    read_version,
    resolve_quarantine,
    set_cursor,
)

pytestmark = pytest.mark.anyio


def patient(pid: str, family: str = "Smith", **extra: object) -> ResourceWrite:
    body = {"resourceType": "Patient", "id": pid, "name": [{"family": family}], **extra}
    return ResourceWrite("Patient", pid, orjson.dumps(body), source="rl4", compartment=pid)


async def test_migrations_are_applied_once_and_listed(store_url: str) -> None:
    """Opening twice applies nothing new; status lists 0001 as applied."""
    async with open_store(store_url) as store:
        assert await store.upgrade() == []
        status = await store.migration_status()
    assert status[0].number == 1
    assert all(s.applied_at for s in status)


async def test_put_counts_new_changed_unchanged(store_url: str) -> None:
    """Same content is a no-op; changed content makes version 2."""
    async with open_store(store_url) as store:
        first = await store.write(lambda tx: put_resources(tx, [patient("a"), patient("b")]))
        again = await store.write(lambda tx: put_resources(tx, [patient("a"), patient("b", "Jones")]))
        current = await store.read(lambda tx: read_current(tx, "Patient", "b"))
    assert first == WriteCounts(new=2)
    assert again == WriteCounts(changed=1, unchanged=1)
    assert current is not None
    assert current.version == 2
    body = orjson.loads(current.body or b"")
    assert body["meta"]["versionId"] == "2"
    assert body["meta"]["lastUpdated"] == current.last_updated
    assert body["name"] == [{"family": "Jones"}]
    assert list(body)[:3] == ["resourceType", "id", "meta"]


async def test_incoming_meta_version_does_not_make_a_change(store_url: str) -> None:
    """A source's own versionId/lastUpdated are store-owned fields, not content."""
    async with open_store(store_url) as store:
        await store.write(lambda tx: put_resources(tx, [patient("a", meta={"versionId": "9"})]))
        counts = await store.write(lambda tx: put_resources(tx, [patient("a", meta={"versionId": "10"})]))
    assert counts == WriteCounts(unchanged=1)


async def test_vread_history_and_delete(store_url: str) -> None:
    """Every version stays readable; a delete is a tombstone version; deleting twice is a no-op."""
    async with open_store(store_url) as store:
        await store.write(lambda tx: put_resources(tx, [patient("a")]))
        await store.write(lambda tx: put_resources(tx, [patient("a", "Jones")]))
        deleted = await store.write(lambda tx: delete_resource(tx, "Patient", "a"))
        again = await store.write(lambda tx: delete_resource(tx, "Patient", "a"))

        def reads(tx: Tx) -> tuple[Any, ...]:
            return (
                read_current(tx, "Patient", "a"),
                read_version(tx, "Patient", "a", 1),
                read_version(tx, "Patient", "a", 9),
                history(tx, "Patient", "a", visibility=Visibility.everything()),
                read_current(tx, "Patient", "nope"),
            )

        current, v1, missing, versions, absent = await store.read(reads)
    assert deleted == 3
    assert again is None
    assert current.deleted
    assert current.body is None
    assert orjson.loads(v1.body)["name"] == [{"family": "Smith"}]
    assert missing is None
    assert absent is None
    assert [v.version for v in versions] == [3, 2, 1]


async def test_logical_time_increases_only_when_something_changes(store_url: str) -> None:
    """t counts write transactions that changed data; each version records its t."""
    async with open_store(store_url) as store:
        t0 = await store.read(current_t)
        await store.write(lambda tx: put_resources(tx, [patient("a")]))
        t1 = await store.read(current_t)
        await store.write(lambda tx: put_resources(tx, [patient("a")]))
        t2 = await store.read(current_t)
        stored = await store.read(lambda tx: read_current(tx, "Patient", "a"))
    assert t1 == t0 + 1
    assert t2 == t1
    assert stored is not None
    assert stored.t == t1


async def test_a_failing_write_rolls_back(store_url: str) -> None:
    """An exception inside fn leaves nothing behind."""
    async with open_store(store_url) as store:

        def boom(tx: Tx) -> None:
            put_resources(tx, [patient("a")])
            raise RuntimeError("stop")

        with pytest.raises(RuntimeError):
            await store.write(boom)
        assert await store.read(lambda tx: read_current(tx, "Patient", "a")) is None


async def test_database_errors_are_translated(store_url: str) -> None:
    """A uniqueness violation is a ConflictError; bad SQL is a StoreError; both chain the driver error."""
    async with open_store(store_url) as store:
        await store.write(lambda tx: set_cursor(tx, "rl4", "c1"))
        with pytest.raises(ConflictError) as conflict:
            await store.write(
                lambda tx: tx.execute(
                    "INSERT INTO cursors (adapter, cursor, updated_at) VALUES (?, ?, ?)", ("rl4", "x", "y")
                )
            )
        with pytest.raises(StoreError) as bad:
            await store.read(lambda tx: tx.query("SELECT nope FROM nowhere"))
    assert conflict.value.__cause__ is not None
    assert bad.value.__cause__ is not None


async def test_body_must_match_type_and_id(store_url: str) -> None:
    """A write whose body names another resource is refused."""
    async with open_store(store_url) as store:
        wrong = ResourceWrite("Patient", "a", b'{"resourceType":"Patient","id":"b"}', source="rl4")
        with pytest.raises(StoreError, match="Patient/a"):
            await store.write(lambda tx: put_resources(tx, [wrong]))


@dataclass(frozen=True)
class Raw:
    record_type: str
    source_key: str
    payload: bytes
    version: str | None = None
    last_updated: str | None = None
    deleted: bool = False

    @property
    def content_hash(self) -> str:
        import hashlib

        return hashlib.sha256(self.payload).hexdigest()


async def test_land_raw_reports_unchanged_records(store_url: str) -> None:
    """A record with the same hash as the landed copy is unchanged; a new payload or a delete is not."""
    async with open_store(store_url) as store:
        first = await store.write(
            lambda tx: land_raw(tx, "rl4", [Raw("Patient", "P/1", b"a"), Raw("Patient", "P/2", b"b")])
        )
        second = await store.write(
            lambda tx: land_raw(
                tx,
                "rl4",
                [
                    Raw("Patient", "P/1", b"a"),
                    Raw("Patient", "P/2", b"c"),
                    Raw("Patient", "P/1", b"a", deleted=True),
                ],
            )
        )
        other_source = await store.write(lambda tx: land_raw(tx, "rbk", [Raw("Patient", "P/1", b"a")]))
    assert first == [False, False]
    assert second == [True, False, False]
    assert other_source == [False]


async def test_cursor_round_trip(store_url: str) -> None:
    """A cursor is absent, then the last value set."""
    async with open_store(store_url) as store:
        assert await store.read(lambda tx: get_cursor(tx, "rl4")) is None
        await store.write(lambda tx: set_cursor(tx, "rl4", '{"since":"a"}'))
        await store.write(lambda tx: set_cursor(tx, "rl4", '{"since":"b"}'))
        assert await store.read(lambda tx: get_cursor(tx, "rl4")) == '{"since":"b"}'


async def test_quarantine_lifecycle(store_url: str) -> None:
    """Add, list open, replay count, resolve; resolved records leave the open list."""
    entry = QuarantineEntry(
        adapter="rl4",
        source_key="Patient/1",
        record_type="Patient",
        stage="validation",
        reason=ReasonCode.VALIDATION,
        message="NHS number check digit is wrong",
        payload=b"{}",
        details=("Patient.identifier[0]",),
        mapping_id="rl4-fhir",
        mapping_version="1",
    )
    async with open_store(store_url) as store:
        qid = await store.write(lambda tx: add_quarantine(tx, entry))
        await store.write(lambda tx: add_quarantine(tx, entry))
        count = await store.write(lambda tx: mark_replayed(tx, qid))
        assert await store.write(lambda tx: resolve_quarantine(tx, qid)) is True
        assert await store.write(lambda tx: resolve_quarantine(tx, qid)) is False
        open_ones = await store.read(lambda tx: list_quarantine(tx, adapter="rl4"))
        everything = await store.read(lambda tx: list_quarantine(tx, include_resolved=True))
        got = await store.read(lambda tx: get_quarantine(tx, qid))
    assert count == 1
    assert [r.id for r in open_ones] == [qid + 1]
    assert len(everything) == 2
    assert got is not None
    assert got.entry == entry
    assert got.resolved_at is not None
    assert got.replay_count == 1


async def test_reads_run_while_a_write_is_open(store_url: str) -> None:
    """A reader sees the last committed state while a writer holds its transaction open."""
    async with open_store(store_url) as store:
        await store.write(lambda tx: put_resources(tx, [patient("a")]))
        started, release = anyio.Event(), anyio.Event()
        token = anyio.lowlevel.current_token()

        def slow_write(tx: Tx) -> None:
            put_resources(tx, [patient("a", "Changed")])
            anyio.from_thread.run_sync(started.set, token=token)
            anyio.from_thread.run(release.wait, token=token)

        async with anyio.create_task_group() as tg:
            tg.start_soon(store.write, slow_write)
            await started.wait()
            seen = await store.read(lambda tx: read_current(tx, "Patient", "a"))
            release.set()
        after = await store.read(lambda tx: read_current(tx, "Patient", "a"))
    assert seen is not None
    assert seen.version == 1
    assert after is not None
    assert after.version == 2


async def test_read_transactions_are_read_only(store_url: str) -> None:
    """A write attempted inside read() fails with StoreError (read-only snapshot) on every backend."""
    async with open_store(store_url) as store:
        with pytest.raises(StoreError):
            await store.read(lambda tx: set_cursor(tx, "rl4", "x"))
        if store.dialect == "postgresql":
            level = await store.read(lambda tx: tx.query_one("SHOW transaction_isolation"))
            assert level == ("repeatable read",)


async def test_versions_remember_their_compartment(store_url: str) -> None:
    """Each stored version says which source Patient it belongs to (for the audit trail)."""
    async with open_store(store_url) as store:
        await store.write(lambda tx: put_resources(tx, [patient("a")]))
        stored = await store.read(lambda tx: read_current(tx, "Patient", "a"))
    assert stored is not None
    assert stored.compartment == "a"


async def test_concurrent_writers_of_one_resource_both_succeed(store_url: str) -> None:
    """Writers are serialised: two transactions creating the same resource make versions 1 and 2."""
    async with open_store(store_url) as store:
        async with anyio.create_task_group() as tg:
            for family in ("Ng", "Li"):
                tg.start_soon(store.write, partial(put_resources, writes=[patient("same", family)]))
        versions = await store.read(lambda tx: history(tx, "Patient", "same", visibility=Visibility.everything()))
    assert [v.version for v in versions] == [2, 1]
