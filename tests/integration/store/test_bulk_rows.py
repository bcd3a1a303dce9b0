"""Bulk upserts and updates (``upsert_rows``, ``update_rows``): COPY through a staging table on PostgreSQL,
``executemany`` on SQLite — the same rows either way, below and above the COPY threshold, twice in one
transaction, and again after a rolled-back transaction took the staging table away."""

from __future__ import annotations

from functools import partial

import anyio
import pytest

from bcconnect.errors import StoreError
from bcconnect.store import Tx, open_store, update_rows, upsert_rows
from bcconnect.store._tx import COPY_MIN_ROWS

pytestmark = pytest.mark.anyio

COLUMNS = ("res_type", "res_id", "source_time")


def _times(tx: Tx) -> dict[str, str]:
    return {r[0]: r[1] for r in tx.query("SELECT res_id, source_time FROM source_times WHERE res_type = 'X'")}


def _upsert(rows: list[tuple[str, str, str]], tx: Tx, *, newer_only: bool = False) -> None:
    upsert_rows(
        tx,
        "source_times",
        COLUMNS,
        rows,
        key=("res_type", "res_id"),
        update=("source_time",),
        where="excluded.source_time > source_times.source_time" if newer_only else None,
    )


@pytest.mark.parametrize("size", [3, COPY_MIN_ROWS * 3])
async def test_upsert_inserts_updates_and_honours_its_condition(store_url: str, size: int) -> None:
    async with open_store(store_url) as store:
        first = [("X", f"r{i}", "2020") for i in range(size)]
        await store.write(partial(_upsert, first))
        assert await store.read(_times) == {f"r{i}": "2020" for i in range(size)}

        # newer wins, older is ignored (the WHERE of the conflict action), new keys are inserted
        mixed = [("X", f"r{i}", "2021" if i % 2 else "2019") for i in range(size + 2)]
        await store.write(partial(_upsert, mixed, newer_only=True))
        expected = {f"r{i}": ("2021" if i % 2 else "2020") for i in range(size)}
        expected.update({f"r{i}": ("2021" if i % 2 else "2019") for i in range(size, size + 2)})
        assert await store.read(_times) == expected

        # two batches in one transaction: the second must not see the first's staged rows again
        def twice(tx: Tx) -> None:
            _upsert([("X", f"r{i}", "2030") for i in range(size)], tx)
            _upsert(
                [*[("X", f"r{i}", "2025") for i in range(size)], *[("X", f"s{i}", "2031") for i in range(size)]], tx
            )

        await store.write(twice)
        times = await store.read(_times)
        assert [times[f"r{i}"] for i in range(size)] == ["2025"] * size
        assert [times[f"s{i}"] for i in range(size)] == ["2031"] * size


async def test_a_rolled_back_batch_leaves_nothing_and_the_next_one_works(store_url: str) -> None:
    """On PostgreSQL the staging table made in a rolled-back transaction is gone; the next batch makes it again."""
    size = COPY_MIN_ROWS * 2

    def fails(tx: Tx) -> None:
        _upsert([("X", f"r{i}", "2020") for i in range(size)], tx)
        raise StoreError("the page failed after its rows were staged")

    async with open_store(store_url, pool_size=2) as store:
        with pytest.raises(StoreError):
            await store.write(fails)
        assert await store.read(_times) == {}
        for _ in range(3):  # every pooled writer connection, whichever the pool hands out
            await store.write(partial(_upsert, [("X", f"r{i}", "2022") for i in range(size)]))
        assert await store.read(_times) == {f"r{i}": "2022" for i in range(size)}


@pytest.mark.parametrize("size", [2, COPY_MIN_ROWS * 2])
async def test_update_rows_sets_one_column_by_key(store_url: str, size: int) -> None:
    async with open_store(store_url) as store:
        await store.write(partial(_upsert, [("X", f"r{i}", "2020") for i in range(size + 1)]))

        def update(tx: Tx) -> None:
            # source_times has no single-column key: address rows by res_id, which is unique among these
            update_rows(tx, "source_times", "res_id", "source_time", [(f"20{i:02d}", f"r{i}") for i in range(size)])

        await store.write(update)
        times = await store.read(_times)
        assert times == {**{f"r{i}": f"20{i:02d}" for i in range(size)}, f"r{size}": "2020"}


async def test_concurrent_writers_each_use_their_own_staging_table(store_url: str) -> None:
    """Staging tables are per connection (temporary): concurrent writers never see each other's rows."""
    size = COPY_MIN_ROWS * 2
    async with open_store(store_url, pool_size=4) as store:
        async with anyio.create_task_group() as group:
            for writer in range(4):
                rows = [("X", f"w{writer}-{i}", f"20{writer:02d}") for i in range(size)]
                group.start_soon(store.write, partial(_upsert, rows))
        times = await store.read(_times)
    assert len(times) == 4 * size
    assert all(when == f"20{int(rid[1]):02d}" for rid, when in times.items())
