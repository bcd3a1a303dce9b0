"""What the worker-thread hop costs a PostgreSQL read, against psycopg's native async connection.

    .venv/bin/python bench/pg_async_hop.py --url postgresql://… [--queries 3000] [--concurrency 4]

The store runs every PostgreSQL read as a synchronous psycopg call in a worker thread (``anyio.to_thread``), like
its SQLite reads before they ran inline. psycopg 3's ``AsyncConnection`` (and ``psycopg_pool``'s async pool) wait
on the socket in the event loop itself: no thread. This runs the same point read (one primary-key lookup in a
small table it creates and drops) both ways, from ``--concurrency`` tasks, and prints the CPU time per query of
this process (the client side: driver, hop, event loop; the server's own work is not in it) and the wall time.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import anyio
import anyio.to_thread
import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

SQL = "SELECT id, body FROM hop_bench WHERE id = %s"


async def threaded(url: str, queries: int, concurrency: int) -> tuple[float, float]:
    pool = ConnectionPool(url, min_size=concurrency, max_size=concurrency, open=True)
    limiter = anyio.CapacityLimiter(concurrency)

    def one(key: int) -> Any:
        with pool.connection() as conn:
            return conn.execute(SQL, (key,)).fetchone()

    try:
        return await _drive(lambda key: anyio.to_thread.run_sync(one, key, limiter=limiter), queries, concurrency)
    finally:
        pool.close()


async def native(url: str, queries: int, concurrency: int) -> tuple[float, float]:
    async with AsyncConnectionPool(url, min_size=concurrency, max_size=concurrency, open=False) as pool:

        async def one(key: int) -> Any:
            async with pool.connection() as conn:
                return await (await conn.execute(SQL, (key,))).fetchone()

        return await _drive(one, queries, concurrency)


async def _drive(call: Any, queries: int, concurrency: int) -> tuple[float, float]:
    left = list(range(queries))

    async def worker() -> None:
        while left:
            assert await call(left.pop() % 1000 + 1) is not None

    cpu, wall = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(worker)
    return (time.process_time() - cpu) / queries * 1000, (time.perf_counter() - wall) / queries * 1000


async def main(args: argparse.Namespace) -> None:
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS hop_bench (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        conn.execute("TRUNCATE hop_bench")
        conn.execute("INSERT INTO hop_bench SELECT i, repeat('x', 400) FROM generate_series(1, 1000) i")
    try:
        print(f"load average {os.getloadavg()[0]:.1f}; {args.queries} point reads, {args.concurrency} tasks")
        print("| round | path | CPU ms/query | wall ms/query |\n| ---: | --- | ---: | ---: |")
        for round_no in range(1, args.rounds + 1):
            for name, run in (("sync psycopg in a worker thread", threaded), ("psycopg async, no thread", native)):
                cpu, wall = await run(args.url, args.queries, args.concurrency)
                print(f"| {round_no} | {name} | {cpu:.3f} | {wall:.3f} |", flush=True)
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute("DROP TABLE hop_bench")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    anyio.run(main, parser.parse_args())
