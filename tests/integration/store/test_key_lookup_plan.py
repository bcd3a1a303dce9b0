"""A batch of ``(type, id, version)`` keys is looked up by the versions' index, never by a scan of every version.

``visible_versions`` decides one-by-one reads (a golden Patient's sources, a worklist's context) with the screen's
SQL predicate. Asked about a few hundred keys at once, an ``OR`` of key triplets made PostgreSQL scan (or bitmap-OR
its way through) every version — seconds at region size. The keys are now a relation joined to the table; these
tests read the query plan (not a timing) and prove the check catches the old ``OR`` form when it is put back.
"""

# ruff: noqa: S608 - SQL assembled from fixed fragments; every value is a "?" parameter

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import pytest

from bcconnect.store import (
    ResourceWrite,
    Tx,
    Visibility,
    changed_current,
    open_store,
    put_resources,
    visible_versions,
)

pytestmark = pytest.mark.anyio

SENSITIVE = ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "HIV")
VISIBILITY = Visibility(
    hidden_patients=frozenset({"objector"}),
    hidden_labels=frozenset({"|".join(SENSITIVE)}),
    context_params=frozenset({"encounter"}),
)
#: versions of other resources around the keys asked for, so a scan of the table would cost what it does live
PADDING_ROWS = 60_000
KEYS = 300


def _observation(n: int) -> ResourceWrite:
    person = "objector" if n % 10 == 0 else f"p{n % 40}"
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"obs-{n}",
        "status": "final",
        "code": {"text": "result"},
        "subject": {"reference": f"Patient/{person}"},
    }
    if n % 7 == 0:
        body["meta"] = {"security": [{"system": SENSITIVE[0], "code": SENSITIVE[1]}]}
    return ResourceWrite("Observation", body["id"], orjson.dumps(body), source="test", compartment=person)


def _pad(tx: Tx) -> None:
    numbers = "generate_series(1, ?) AS g(n)"
    if tx.dialect == "sqlite":
        numbers = "(WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?) SELECT n FROM g) AS g"
    tx.execute(
        "INSERT INTO resource_versions (vid, res_type, res_id, version, t, last_updated, content_hash, deleted,"
        " body, compartment) SELECT 10000000 + g.n, 'Observation', 'pad-' || g.n, 1, 1, '2026-01-01T00:00:00Z',"
        f" 'x', 0, NULL, 'pad-person' FROM {numbers}",
        [PADDING_ROWS],
    )
    tx.execute("ANALYZE")


class _Recording:
    """A ``Tx`` that keeps every query it runs (to read the plans of exactly what the store emitted)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self.queries: list[tuple[str, list[object]]] = []

    @property
    def dialect(self) -> Any:
        return self.tx.dialect

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        self.queries.append((sql, list(params)))
        return self.tx.query(sql, params)


def _old_or_form(keys: Sequence[tuple[str, str, int]]) -> tuple[str, list[object]]:
    """The look-up as it was: an ``OR`` of key triplets (the violation the plan check must catch)."""
    seen, seen_params = VISIBILITY.rows("v")
    ored = " OR ".join("(v.res_type = ? AND v.res_id = ? AND v.version = ?)" for _ in keys)
    sql = f"SELECT v.res_type, v.res_id, v.version FROM resource_versions v WHERE ({ored}) AND {seen}"
    return sql, [*(x for key in keys for x in key), *seen_params]


def _top_level(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The plan's nodes outside sub-plans (the screen's own EXISTS probes are not the key look-up)."""
    yield node
    for child in node.get("Plans", []):
        if child.get("Parent Relationship") != "SubPlan":
            yield from _top_level(child)


def _key_lookup_problems(tx: Tx, sql: str, params: Sequence[object]) -> list[str]:
    """Why this statement does not look its keys up one index probe each (empty: it does)."""
    if tx.dialect == "postgresql":
        raw = tx.query(f"EXPLAIN (FORMAT JSON) {sql}", params)[0][0]
        plan = orjson.loads(raw) if isinstance(raw, str | bytes) else raw  # the driver may decode it already
        nodes = list(_top_level(plan[0]["Plan"]))
        on_versions = [n for n in nodes if n.get("Relation Name") == "resource_versions"]
        problems = [f"{n['Node Type']} on resource_versions" for n in on_versions if "Index" not in n["Node Type"]]
        problems += ["a BitmapOr over the keys" for n in nodes if n["Node Type"] == "BitmapOr"]
        if len(on_versions) != 1:
            problems.append(f"{len(on_versions)} reads of resource_versions, not one probe per key")
        return problems
    lines = [str(row[3]) for row in tx.query(f"EXPLAIN QUERY PLAN {sql}", params)]
    problems = [line for line in lines if line.startswith("SCAN v") or "MULTI-INDEX OR" in line]
    if not any(line.startswith("SEARCH v USING") and "INDEX" in line for line in lines):
        problems.append("no index search of resource_versions v")
    return problems


async def test_a_few_hundred_keys_are_index_probes_and_the_old_or_form_is_caught(store_url: str) -> None:
    async with open_store(store_url) as store:
        await store.write(lambda tx: put_resources(tx, [_observation(n) for n in range(KEYS)]))
        await store.write(_pad)

        def check(tx: Tx) -> None:
            keys = [("Observation", f"obs-{n}", 1) for n in range(KEYS)] + [("Observation", "absent", 1)]
            recording = _Recording(tx)
            visible = visible_versions(recording, keys, VISIBILITY)  # type: ignore[arg-type]
            assert recording.queries
            for sql, params in recording.queries:
                assert _key_lookup_problems(tx, sql, params) == [], sql[:300]
            # the same answer as the OR form gives, and the screen's answer: objectors and labels withheld
            old_sql, old_params = _old_or_form(keys)
            assert visible == {(str(r[0]), str(r[1]), int(r[2])) for r in tx.query(old_sql, old_params)}
            expected = {("Observation", f"obs-{n}", 1) for n in range(KEYS) if n % 10 and n % 7}
            assert visible == expected
            # the guard can fail: the old OR of triplets is caught
            assert _key_lookup_problems(tx, old_sql, old_params) != []

        await store.read(check)


def _feed_problems(tx: Tx, sql: str, params: Sequence[object]) -> list[str]:
    """Why the change feed's page does not read its ``(t, id)`` range straight off the (type, t, id) index."""
    if tx.dialect == "postgresql":
        raw = tx.query(f"EXPLAIN (FORMAT JSON) {sql}", params)[0][0]
        plan = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
        nodes = list(_top_level(plan[0]["Plan"]))
        on_resources = [n for n in nodes if n.get("Relation Name") == "resources"]
        problems = ["a BitmapOr over the cursor's two cases" for n in nodes if n["Node Type"] == "BitmapOr"]
        problems += [
            f"{n['Node Type']} on resources without the (t, id) range in its index condition"
            for n in on_resources
            if "ROW(t, res_id)" not in n.get("Index Cond", "")
        ]
        return problems
    lines = [str(row[3]) for row in tx.query(f"EXPLAIN QUERY PLAN {sql}", params)]
    problems = [line for line in lines if "MULTI-INDEX OR" in line or line.startswith("SCAN r")]
    if not any("resources_type_time" in line and "(t,res_id)>" in line for line in lines):
        problems.append("the (t, id) range is not an index condition: " + " / ".join(lines))
    return problems


async def test_the_change_feed_reads_its_cursor_range_off_the_index_and_the_old_or_form_is_caught(
    store_url: str,
) -> None:
    async with open_store(store_url) as store:
        await store.write(lambda tx: put_resources(tx, [_observation(n) for n in range(KEYS)]))
        await store.write(_pad_resources)

        def check(tx: Tx) -> None:
            recording = _Recording(tx)
            first = changed_current(recording, "Observation", limit=10)  # type: ignore[arg-type]
            after = (first[-1].t, first[-1].id)
            page = changed_current(recording, "Observation", after=after, upto=10**9, limit=50)  # type: ignore[arg-type]
            assert page
            assert all((r.t, r.id) > after for r in page)
            sql, params = recording.queries[-1]
            assert _feed_problems(tx, sql, params) == [], sql
            # the guard can fail: the cursor as an OR of its two cases is caught
            old = sql.replace("(r.t, r.res_id) > (?, ?)", "(r.t > ? OR (r.t = ? AND r.res_id > ?))")
            assert old != sql
            old_params = [params[0], after[0], after[0], after[1], *params[3:]]
            assert _feed_problems(tx, old, old_params) != []

        await store.read(check)


def _pad_resources(tx: Tx) -> None:
    """Current rows of other resources beside the feed's, so reading every row of the type would cost."""
    _pad(tx)
    tx.execute(
        "INSERT INTO resources (res_type, res_id, vid, version, t, last_updated, content_hash, compartment, source,"
        " deleted) SELECT res_type, res_id, vid, version, t, last_updated, content_hash, compartment, 'test', 0"
        " FROM resource_versions WHERE vid > 10000000"
    )
    tx.execute("ANALYZE")
