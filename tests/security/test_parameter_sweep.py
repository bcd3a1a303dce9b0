"""The sweep: for every search parameter the CapabilityStatement advertises, a hidden fact never changes a count
or a match.

Two worlds are served side by side: one holding a hidden fact (an objector's whole record, a restricted
patient's address/telecom/GP/places, sensitive records) and one without it. Every query is built from the
hidden resources' own index values (what an attacker would probe for), plus ``:missing``, ``_sort``, chains
into Patient, every ``_include`` and ``_revinclude``; each must answer the same total and the same ids in both
worlds. A difference is a leak.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from bcconnect.search import extract_index
from support.security_world import ALL_PARTS, Endpoint, secured, total, world

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

#: at most this many probe values per parameter (the first, which are the most specific, are kept)
PROBES_PER_PARAM = 3
#: Patient parameters used at the end of chains (patient.<param>=value)
#: the sweep asks thousands of questions in seconds; the rate limit is not what it tests
UNTHROTTLED = {"rate_limit_per_second": 1_000_000.0, "rate_limit_burst": 1_000_000}
CHAINED_PATIENT_PARAMS = ("identifier", "address-postalcode", "phone", "general-practitioner", "family", "email")


def _day(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%Y-%m-%d")


def probe_values(resources: list[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(type, param) → query values taken from the resources' own index rows."""
    found: dict[tuple[str, str], list[str]] = {}

    def add(rtype: str, param: str, value: str) -> None:
        values = found.setdefault((rtype, param), [])
        if value and value not in values and len(values) < PROBES_PER_PARAM:
            values.append(value)

    for resource in resources:
        rtype = str(resource["resourceType"])
        rows = extract_index(resource)
        for param, system, code, *_ in rows.tokens:
            add(rtype, param, f"{system}|{code}" if system else str(code))
        for param, norm, exact in rows.strings:
            add(rtype, param, exact[:4] or norm)
        for param, low, _high in rows.dates:
            add(rtype, param, f"ge{_day(low)}")
        for param, target_type, target_id, _written in rows.references:
            if target_type and target_id:
                add(rtype, param, f"{target_type}/{target_id}")
        for param, _system, _code, value in rows.quantities:
            add(rtype, param, f"{value:g}")
        for param, uri in rows.uris:
            add(rtype, param, uri)
    return found


def _hidden_resources(part: str) -> list[dict[str, Any]]:
    """The resources (as written in the world holding the fact) that differ from the world without it."""
    without = {(w.resource_type, w.id): w.body for w in world(ALL_PARTS - {part})}
    return [orjson.loads(w.body) for w in world(ALL_PARTS) if without.get((w.resource_type, w.id)) != w.body]


def queries(capability: dict[str, Any], part: str) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """Every query of the sweep for one hidden part: (path, params)."""
    hidden = _hidden_resources(part)
    probes = probe_values(hidden)
    hidden_types = {str(r["resourceType"]) for r in hidden}
    patient_probes = [(p, v) for p in CHAINED_PATIENT_PARAMS for v in probes.get(("Patient", p), [])]
    for entry in capability["rest"][0]["resource"]:
        rtype = entry["type"]
        if rtype == "AuditEvent":
            continue
        path = f"/{rtype}"
        yield path, []
        for param in entry.get("searchParam", []):
            name, kind = param["name"], param["type"]
            for value in probes.get((rtype, name), []):
                yield path, [(name, value)]
            if rtype in hidden_types:
                yield path, [(f"{name}:missing", "true")]
                yield path, [(f"{name}:missing", "false")]
                yield path, [("_sort", name)]
                yield path, [("_sort", f"-{name}")]
            if kind == "reference" and name in ("patient", "subject"):
                for chained, value in patient_probes:
                    yield path, [(f"{name}.{chained}", value)]
        for include in entry.get("searchInclude", []):
            yield path, [("_include", include)]
        for revinclude in entry.get("searchRevInclude", []):
            yield path, [("_revinclude", revinclude)]


async def _answer(endpoint: Endpoint, path: str, params: list[tuple[str, str]], headers: dict[str, str]) -> object:
    response = await endpoint.client.get(path, params=[*params, ("_count", "200")], headers=headers)
    if response.status_code != 200:
        return response.status_code, response.json().get("issue", [{}])[0].get("code")
    entries = [f"{e['resource']['resourceType']}/{e['resource'].get('id')}" for e in response.json().get("entry", [])]
    return total(response), entries


@pytest.mark.parametrize(
    ("part", "scopes"),
    [
        ("objector", "user/*.rs"),
        ("sensitive", "user/*.rs"),
        # a restricted patient's whereabouts are hidden from everyone, the sensitive grant included
        ("restricted-hidden", "user/*.rs bcconnect/sensitive.read"),
    ],
)
async def test_no_parameter_lets_a_hidden_fact_change_a_count_or_a_match(
    tmp_path: Path, part: str, scopes: str
) -> None:
    """Same total, same ids, same _summary=count for every query in both worlds."""
    async with (
        secured(f"sqlite:///{tmp_path / 'with.db'}", tmp_path / "a", **UNTHROTTLED) as holding,
        secured(
            f"sqlite:///{tmp_path / 'without.db'}", tmp_path / "b", parts=ALL_PARTS - {part}, **UNTHROTTLED
        ) as lacking,
    ):
        capability = (await holding.client.get("/metadata")).json()
        differences, asked = [], 0
        mine, theirs = holding.token(scopes), lacking.token(scopes)
        for path, params in queries(capability, part):
            asked += 1
            seen = await _answer(holding, path, params, mine)
            expected = await _answer(lacking, path, params, theirs)
            if seen != expected:
                differences.append((path, params, seen, expected))
        assert asked > 300, "the sweep must cover the capability statement"
        assert differences == [], f"{len(differences)} of {asked} queries leak: {differences[:5]}"


async def test_the_sweep_can_find_a_leak(tmp_path: Path) -> None:
    """Guard for the guard: with the sensitive grant the sensitive records are visible, and the sweep sees it."""
    async with (
        secured(f"sqlite:///{tmp_path / 'with.db'}", tmp_path / "a", **UNTHROTTLED) as holding,
        secured(
            f"sqlite:///{tmp_path / 'without.db'}", tmp_path / "b", parts=ALL_PARTS - {"sensitive"}, **UNTHROTTLED
        ) as lacking,
    ):
        capability = (await holding.client.get("/metadata")).json()
        granted = "user/*.rs bcconnect/sensitive.read"
        leaks = 0
        mine, theirs = holding.token(granted), lacking.token(granted)
        for path, params in queries(capability, "sensitive"):
            if await _answer(holding, path, params, mine) != await _answer(lacking, path, params, theirs):
                leaks += 1
            if leaks > 10:
                break
        assert leaks > 10
