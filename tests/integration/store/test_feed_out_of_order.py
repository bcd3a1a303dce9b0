"""The change feed never steps over a version committed out of ``t`` order (PostgreSQL, real transactions).

Writer A draws its ``t`` and keeps its transaction open; writer B draws a later ``t`` and tries to commit; a
feed reader reads up to the feed's watermark and moves its cursor; then A commits. The reader's next page must
still bring A's version. Today writers serialise on the clock row lock, so B waits for A; a store that takes
``t`` from a bare sequence lets B commit first, and a reader that reads up to the newest ``t`` it sees
steps past A for good. The second test injects exactly that store and proves the first one would catch it.
The last two build the lock-free replacement designed in docs/seams.md ("The change feed and its watermark")
against the real server and show the race test accepts it, and that a writer which drew ``t`` and rolled back
does not stall the feed.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import anyio
import orjson
import pytest

from bcconnect.store import ResourceWrite, Store, Tx, open_store, put_resources
from bcconnect.store import _changes as changes_module
from bcconnect.store import _resources as resources_module
from support.postgres_schema import postgres_schema_url

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

#: the feed types these tests follow: triage's feed (``changed_current``) and the cohorts' (``changed_since``)
_TYPE = "Condition"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema (skipped without a test server)."""
    yield from postgres_schema_url()


def _condition(cid: str) -> ResourceWrite:
    body = {
        "resourceType": _TYPE,
        "id": cid,
        "code": {"text": f"condition {cid}"},
        "subject": {"reference": "Patient/p"},
    }
    return ResourceWrite(_TYPE, cid, orjson.dumps(body), source="rl4", compartment="p")


Cursor = tuple[int, str]


def _triage_feed(tx: Tx, after: Cursor) -> list[Cursor]:
    upto = changes_module.feed_horizon(tx)
    return [(r.t, r.id) for r in changes_module.changed_current(tx, _TYPE, after=after, upto=upto)]


def _cohort_feed(tx: Tx, after: Cursor) -> list[Cursor]:
    upto = changes_module.feed_horizon(tx)
    found = changes_module.changed_since(tx, _TYPE, after_t=after[0], after_id=after[1], until_t=upto)
    return [(c.resource.t, c.resource.id) for c in found]


Feed = Callable[[Tx, Cursor], list[Cursor]]


@dataclass
class _Outcome:
    """What the reader saw, page by page, and the ``t`` each writer drew."""

    first_page: list[Cursor]
    second_page: list[Cursor]
    t_a: int
    t_b: int

    @property
    def seen(self) -> set[str]:
        return {rid for _, rid in self.first_page + self.second_page}


async def _lock_waiters(store: Store, application: str) -> int:
    """How many of this store's connections wait on a lock (other sessions on the server are not counted)."""
    row = await store.read(
        lambda tx: tx.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = ? AND wait_event_type = 'Lock'",
            (application,),
        )
    )
    return int(row[0]) if row else 0


async def _race(url: str, feed: Feed) -> _Outcome:
    """A draws ``t`` and holds; B writes; the reader reads a page; A commits; B finishes; the reader reads on."""
    a_drew, a_release = threading.Event(), threading.Event()
    b_done = anyio.Event()
    drawn: dict[str, int] = {}

    def write_a(tx: Tx) -> None:
        put_resources(tx, [_condition("a")])
        row = tx.query_one("SELECT t FROM resources WHERE res_type = ? AND res_id = 'a'", (_TYPE,))
        drawn["a"] = int(row[0]) if row else -1
        a_drew.set()
        if not a_release.wait(timeout=30):
            raise TimeoutError("the test never let writer A commit")

    def write_b(tx: Tx) -> None:
        put_resources(tx, [_condition("b")])
        row = tx.query_one("SELECT t FROM resources WHERE res_type = ? AND res_id = 'b'", (_TYPE,))
        drawn["b"] = int(row[0]) if row else -1

    application = f"feed_race_{secrets.token_hex(4)}"
    async with open_store(f"{url}&application_name={application}", pool_size=6) as store:
        await store.write(lambda tx: put_resources(tx, [_condition("before")]))
        cursor: Cursor = (0, "")
        page = await store.read(lambda tx: feed(tx, cursor))
        assert [rid for _, rid in page] == ["before"], page
        cursor = page[-1]

        async with anyio.create_task_group() as tg:
            tg.start_soon(store.write, write_a)
            with anyio.fail_after(30):
                await anyio.to_thread.run_sync(a_drew.wait)

            async def run_b() -> None:
                await store.write(write_b)
                b_done.set()

            tg.start_soon(run_b)
            # B has committed (a bare sequence) or is queued behind A's lock (the clock row lock): either way
            # the reader now reads while A is in flight
            with anyio.fail_after(30):
                while True:
                    if b_done.is_set() or await _lock_waiters(store, application) > 0:
                        break
                    await anyio.sleep(0.01)
            first = await store.read(lambda tx: feed(tx, cursor))
            if first:
                cursor = first[-1]
            a_release.set()
        second = await store.read(lambda tx: feed(tx, cursor))
    return _Outcome(first, second, drawn["a"], drawn["b"])


@pytest.mark.parametrize("feed", [_triage_feed, _cohort_feed], ids=["changed_current", "changed_since"])
async def test_a_version_committed_after_a_later_one_is_still_read(pg_url: str, feed: Feed) -> None:
    """The reader's two pages together hold both versions, though A drew the earlier ``t`` and held it."""
    outcome = await _race(pg_url, feed)
    assert outcome.t_a < outcome.t_b, "the race did not happen: A must draw its t before B"
    assert outcome.seen == {"a", "b"}, outcome


@pytest.fixture
def bare_sequence(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Inject the violation: ``t`` from a sequence with no lock held to commit, and a feed that reads up to the
    newest committed ``t`` (no watermark)."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE bare_t")
        conn.execute("CREATE SEQUENCE bare_vid INCREMENT BY 1000")

    def next_time(tx: Tx, versions: int) -> tuple[int, int]:
        assert versions < 1000
        row = tx.query_one("SELECT nextval('bare_t'), nextval('bare_vid')")
        assert row is not None
        return int(row[0]), int(row[1])

    def newest_t(tx: Tx) -> int:
        row = tx.query_one("SELECT coalesce(max(t), 0) FROM resources")
        return int(row[0]) if row else 0

    monkeypatch.setattr(resources_module, "lock_clock", lambda tx: None)
    monkeypatch.setattr(resources_module, "next_time", next_time)
    monkeypatch.setattr(changes_module, "feed_horizon", newest_t)
    return pg_url


@pytest.mark.parametrize("feed", [_triage_feed, _cohort_feed], ids=["changed_current", "changed_since"])
async def test_the_race_test_catches_a_bare_sequence(bare_sequence: str, feed: Feed) -> None:
    """Against the injected store the same race loses A: B commits first, the reader moves past it, and A
    arrives below the cursor — what the test above would fail on."""
    outcome = await _race(bare_sequence, feed)
    assert outcome.t_a < outcome.t_b
    assert [rid for _, rid in outcome.first_page] == ["b"]
    assert outcome.seen == {"b"}, outcome


@pytest.fixture
def inflight_watermark(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The replacement designed in docs/seams.md, built against the real server: no lock held to commit; ``t``
    drawn in its own committed statement that also records ``(t, writer's xid)`` as in flight; the writer
    deletes that row in its own transaction; the feed stops below the lowest in-flight ``t`` not aborted."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE inflight_t (t BIGINT PRIMARY KEY, xid xid8 NOT NULL)")
    drawer = psycopg.connect(pg_url, autocommit=True)
    drawing = threading.Lock()

    def next_time(tx: Tx, versions: int) -> tuple[int, int]:
        xid = tx.query_one("SELECT pg_current_xact_id()::text")
        assert xid is not None
        with drawing:
            row = drawer.execute(
                "WITH d AS (UPDATE store_clock SET t = t + 1, vid = vid + %s WHERE id = 1 RETURNING t, vid),"
                " i AS (INSERT INTO inflight_t (t, xid) SELECT t, %s::xid8 FROM d)"
                " SELECT t, vid FROM d",
                (versions, xid[0]),
            ).fetchone()
        assert row is not None
        tx.execute("DELETE FROM inflight_t WHERE t = ?", (row[0],))  # visible exactly when this writer commits
        return int(row[0]), int(row[1]) - versions + 1

    def watermark(tx: Tx) -> int:
        row = tx.query_one(
            "SELECT coalesce((SELECT min(t) - 1 FROM inflight_t WHERE pg_xact_status(xid) IS DISTINCT FROM"
            " 'aborted'), (SELECT t FROM store_clock WHERE id = 1))"
        )
        return int(row[0]) if row else 0

    monkeypatch.setattr(resources_module, "lock_clock", lambda tx: None)
    monkeypatch.setattr(resources_module, "next_time", next_time)
    monkeypatch.setattr(changes_module, "feed_horizon", watermark)
    try:
        yield pg_url
    finally:
        drawer.close()


@pytest.mark.parametrize("feed", [_triage_feed, _cohort_feed], ids=["changed_current", "changed_since"])
async def test_the_designed_watermark_passes_without_the_lock(inflight_watermark: str, feed: Feed) -> None:
    """Without the clock lock B commits before A (its version is in the store while A is in flight), yet the
    reader's first page stops below A's ``t`` and its second brings both."""
    outcome = await _race(inflight_watermark, feed)
    assert outcome.t_a < outcome.t_b
    assert outcome.first_page == [], "the watermark must stop below A's t while A is in flight"
    assert outcome.seen == {"a", "b"}, outcome


async def test_an_aborted_writer_does_not_stall_the_designed_watermark(inflight_watermark: str) -> None:
    """A writer that draws ``t`` and rolls back leaves its in-flight row behind; the feed must move past it."""

    def draw_and_fail(tx: Tx) -> None:
        put_resources(tx, [_condition("lost")])
        raise RuntimeError("the writer fails after drawing t")

    async with open_store(inflight_watermark) as store:
        with pytest.raises(RuntimeError):
            await store.write(draw_and_fail)
        await store.write(lambda tx: put_resources(tx, [_condition("after")]))
        page = await store.read(lambda tx: _triage_feed(tx, (0, "")))
        left = await store.read(lambda tx: tx.query_one("SELECT count(*) FROM inflight_t"))
    assert [rid for _, rid in page] == ["after"]
    assert left == (1,), "the aborted writer's row stays (swept later); the feed moved past it regardless"
