"""Short reads on SQLite run on the calling thread (no worker hop), and that is safe beside a busy writer.

- an inline read runs on the event loop's own thread, and the store counts it;
- while a writer commits as fast as it can (in its worker thread, as every write does), hundreds of inline reads
  never meet "database is locked" and never see half a transaction: each write moves two rows together and every
  read finds them equal;
- a read that goes over the inline budget is interrupted and answered by a worker thread, with the same answer;
- a long read never marked short still goes to a worker thread, and ``:memory:`` (one connection) never reads
  inline.

The torn-read check is proven: with the inline read's BEGIN/COMMIT taken out (each statement its own snapshot) it
fails.
"""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from bcconnect.store import Store, Tx, open_store
from bcconnect.store._sqlite import SqliteBackend

pytestmark = pytest.mark.anyio


def _pair(tx: Tx) -> tuple[int, int, int]:
    # three statements: only the read transaction's one snapshot makes them agree
    a = tx.query_one("SELECT a FROM torn_pair WHERE id = 1")
    log = tx.query_one("SELECT COUNT(*) FROM torn_log")
    b = tx.query_one("SELECT b FROM torn_pair WHERE id = 1")
    assert a is not None
    assert b is not None
    assert log is not None
    return int(a[0]), int(b[0]), int(log[0])


async def _with_pair(store: Store) -> None:
    def setup(tx: Tx) -> None:
        tx.execute("CREATE TABLE torn_pair (id INTEGER PRIMARY KEY, a INTEGER NOT NULL, b INTEGER NOT NULL)")
        tx.execute("CREATE TABLE torn_log (n INTEGER NOT NULL)")
        tx.execute("INSERT INTO torn_pair VALUES (1, 0, 0)")

    await store.write(setup)


async def test_a_short_read_runs_on_the_calling_thread(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        await _with_pair(store)
        here = threading.get_ident()
        ran_on = await store.read(lambda tx: (threading.get_ident(), _pair(tx))[0], short=True)
        assert ran_on == here
        assert store.inline_reads == 1
        elsewhere = await store.read(lambda tx: threading.get_ident())
        assert elsewhere != here, "a read not marked short still goes to a worker thread"


async def test_inline_reads_beside_a_busy_writer_are_never_locked_or_torn(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        await _with_pair(store)
        writes = 0
        stop = anyio.Event()

        def bump(tx: Tx) -> None:
            # a and b move in one transaction, with a log row between them: a torn read sees a != b
            tx.execute("UPDATE torn_pair SET a = a + 1 WHERE id = 1")
            tx.executemany("INSERT INTO torn_log (n) VALUES (?)", [(i,) for i in range(50)])
            tx.execute("UPDATE torn_pair SET b = b + 1 WHERE id = 1")

        async def writer() -> None:
            nonlocal writes
            while not stop.is_set():
                await store.write(bump)
                writes += 1

        seen: list[tuple[int, int, int]] = []
        async with anyio.create_task_group() as group:
            group.start_soon(writer)
            for _ in range(600):
                seen.append(await store.read(_pair, short=True))
                await anyio.lowlevel.checkpoint()
            stop.set()
        assert writes > 10, "the writer must have committed while the reads ran"
        assert all(a == b and log == 50 * a for a, b, log in seen), [s for s in seen if s[0] != s[1]][:5]
        assert len({a for a, _, _ in seen}) > 5, "the reads must have seen the writer's progress"
        assert seen == sorted(seen), "a later read never sees an older state"
        assert store.inline_reads >= 600 - store.inline_handed_over
        assert store.inline_handed_over <= 5, "a WAL reader does not wait for the writer"


async def test_a_read_over_the_budget_is_answered_by_a_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SqliteBackend, "inline_step_budget", 50_000)
    long_sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) SELECT SUM(i) FROM n"
    threads: list[int] = []

    def long_read(tx: Tx) -> int:
        threads.append(threading.get_ident())
        row = tx.query_one(long_sql)
        assert row is not None
        return int(row[0])

    async with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        assert await store.read(long_read, short=True) == 200000 * 200001 // 2
        assert store.inline_handed_over == 1
        assert store.inline_reads == 0
        here = threading.get_ident()
        assert threads[0] == here, "tried inline first"
        assert threads[1] != here, "then answered in a worker thread"
        # the inline connection is fine afterwards: a short read still runs inline
        assert await store.read(lambda tx: tx.query_one("SELECT 7"), short=True) == (7,)
        assert store.inline_reads == 1


async def test_a_memory_store_never_reads_inline() -> None:
    async with open_store("sqlite:///:memory:") as store:
        here = threading.get_ident()
        assert await store.read(lambda tx: threading.get_ident(), short=True) != here
        assert store.inline_reads == 0


async def test_an_inline_read_that_fails_is_not_retried(tmp_path: Path) -> None:
    calls = 0

    def broken(tx: Tx) -> None:
        nonlocal calls
        calls += 1
        tx.query("SELECT * FROM no_such_table")

    async with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        with pytest.raises(Exception, match="no_such_table"):
            await store.read(broken, short=True)
        assert calls == 1, "only a lock or the budget hands a read over; an error is the answer"
