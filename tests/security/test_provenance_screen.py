"""Adversarial: a Provenance is screened exactly as the version it describes.

Every probe an attacker could make through Provenance (read by id, ``_id``, ``target=``, ``patient=``,
``recorded=``, ``_summary=count``, ``_revinclude=Provenance:target``) answers the same in the world with the
objector, the restricted person's hidden facts and the sensitive records as in the world without them. Two
injected bypasses of the screen (one per path: reading a version, searching targets) are caught by the same
probes, so the guard can fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bcconnect.store import Visibility
from bcconnect.view import provenance_id
from support.security_world import Endpoint, secured

pytestmark = pytest.mark.anyio

#: resources whose Provenance must stay hidden from an ordinary caller (absent in the clean world)
HIDDEN = (
    ("Condition", "c2-0"),  # the objector's
    ("Patient", "p2"),  # the objector
    ("Encounter", "e-sex"),  # sensitive (SEX)
    ("Condition", "c-hiv"),  # sensitive (HIV)
)


def _pid(rtype: str, rid: str) -> str:
    found = provenance_id(rtype, rid, 1)
    assert found is not None
    return found


async def _answers(endpoint: Endpoint, headers: dict[str, str]) -> dict[str, Any]:
    """What a caller learns through Provenance (statuses, totals, ids): compared across the two worlds."""
    client = endpoint.client
    out: dict[str, Any] = {}

    async def bundle(path: str, params: dict[str, str]) -> tuple[int, Any, list[str]]:
        response = await client.get(path, params=params, headers=headers)
        if response.status_code != 200:
            return response.status_code, None, []
        body = response.json()
        ids = sorted(f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in body.get("entry", []))
        return 200, body.get("total"), ids

    for rtype, rid in HIDDEN:
        pid = _pid(rtype, rid)
        out[f"read {pid}"] = (await client.get(f"/Provenance/{pid}", headers=headers)).status_code
        out[f"vread {pid}"] = (await client.get(f"/Provenance/{pid}/_history/1", headers=headers)).status_code
        out[f"_id {pid}"] = await bundle("/Provenance", {"_id": pid})
        out[f"target {rtype}/{rid}"] = await bundle("/Provenance", {"target": f"{rtype}/{rid}"})
    out["patient p2"] = await bundle("/Provenance", {"patient": "Patient/p2"})
    out["count"] = await bundle("/Provenance", {"_summary": "count"})
    out["count0"] = await bundle("/Provenance", {"_count": "0", "recorded": "ge2000"})
    out["all"] = await bundle("/Provenance", {"_count": "200", "_total": "accurate"})
    out["rev Condition"] = await bundle("/Condition", {"_revinclude": "Provenance:target", "_count": "200"})
    out["rev Encounter"] = await bundle("/Encounter", {"_revinclude": "Provenance:target", "_count": "200"})
    out["rev Patient"] = await bundle("/Patient", {"_revinclude": "Provenance:target", "_count": "200"})
    return out


@pytest.fixture
async def worlds(store_url: str, tmp_path: Path) -> AsyncIterator[tuple[Endpoint, Endpoint]]:
    """The world with everything to hide, and the same world without it (SQLite; PostgreSQL for the first)."""
    clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    async with (
        secured(store_url, tmp_path / "hidden") as hidden,
        secured(clean_url, tmp_path / "clean", parts=()) as clean,
    ):
        yield hidden, clean


def _differences(hidden: dict[str, Any], clean: dict[str, Any]) -> list[str]:
    return [f"{k}: {hidden[k]} != {clean.get(k)}" for k in sorted(hidden) if hidden[k] != clean.get(k)]


async def _leaks(hidden: Endpoint, clean: Endpoint) -> list[str]:
    # each world's tokens come from its own issuer; the same caller in both
    return _differences(await _answers(hidden, hidden.token()), await _answers(clean, clean.token()))


async def test_provenance_tells_nothing_the_screen_withholds(worlds: tuple[Endpoint, Endpoint]) -> None:
    hidden, clean = worlds
    assert await _leaks(hidden, clean) == []
    # the probes do see Provenance: the ordinary patient's records have theirs
    response = await hidden.client.get("/Provenance", params={"_count": "200"}, headers=hidden.token())
    shown = {e["resource"]["target"][0]["reference"].split("/_history")[0] for e in response.json()["entry"]}
    assert {"Condition/c1", "Patient/p1", "Encounter/e1"} <= shown
    assert not shown & {f"{t}/{i}" for t, i in HIDDEN}


async def test_a_sensitive_grant_shows_the_provenance_with_the_label(worlds: tuple[Endpoint, Endpoint]) -> None:
    hidden, _ = worlds
    granted = hidden.token(scopes="user/*.rs bcconnect/sensitive.read")
    response = await hidden.client.get(f"/Provenance/{_pid('Condition', 'c-hiv')}", headers=granted)
    assert response.status_code == 200
    assert {"code": "HIV"}.items() <= response.json()["meta"]["security"][0].items()


async def test_scopes_decide_provenance_and_its_targets(worlds: tuple[Endpoint, Endpoint]) -> None:
    hidden, _ = worlds
    client, pid = hidden.client, _pid("Condition", "c1")
    # without a Provenance scope: no Provenance anywhere, not even through _revinclude
    conditions_only = hidden.token(scopes="user/Condition.rs")
    assert (await client.get(f"/Provenance/{pid}", headers=conditions_only)).status_code in (403, 404)
    response = await client.get(
        "/Condition", params={"_id": "c1", "_revinclude": "Provenance:target"}, headers=conditions_only
    )
    assert [e["resource"]["resourceType"] for e in response.json()["entry"]] == ["Condition"]
    # a Provenance scope without the target's type: the Provenance of a Condition is as unreadable as it
    provenance_only = hidden.token(scopes="user/Provenance.rs")
    assert (await client.get(f"/Provenance/{pid}", headers=provenance_only)).status_code == 404
    both = hidden.token(scopes="user/Provenance.rs user/Condition.rs")
    assert (await client.get(f"/Provenance/{pid}", headers=both)).status_code == 200
    # a patient-confined caller sees their own person's Provenance only
    confined = hidden.token(scopes="patient/*.rs", patient="p1")
    assert (await client.get(f"/Provenance/{pid}", headers=confined)).status_code == 200
    other = _pid("Encounter", "e3")
    assert (await client.get(f"/Provenance/{other}", headers=confined)).status_code == 404
    # SMART v1 scopes name Provenance like any type
    v1 = hidden.token(scopes="patient/Provenance.read patient/Condition.read", patient="p1")
    assert (await client.get(f"/Provenance/{pid}", headers=v1)).status_code == 200
    assert (await client.get(f"/Provenance/{_pid('Encounter', 'e1')}", headers=v1)).status_code == 404


@contextmanager
def _bypass(monkeypatch: pytest.MonkeyPatch, kind: str) -> Iterator[None]:
    """Inject a screen bypass into one of the Provenance paths."""
    import bcconnect.view._provenance_read as reading

    with monkeypatch.context() as patched:
        if kind == "read":
            # a version read without the screen (only golden Patients composed)
            patched.setattr(reading.ProvenanceContext, "visible", lambda self, items: self.present(items))
        else:
            original: Callable[..., Any] = reading.search

            def unscreened(*args: Any, **kwargs: Any) -> Any:
                kwargs["visibility"] = Visibility.everything()
                return original(*args, **kwargs)

            patched.setattr(reading, "search", unscreened)
        yield


@pytest.mark.parametrize("kind", ["read", "search"])
async def test_the_probes_catch_an_injected_bypass(
    worlds: tuple[Endpoint, Endpoint], monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    hidden, clean = worlds
    with _bypass(monkeypatch, kind):
        found = await _leaks(hidden, clean)
    assert found, f"a {kind} bypass went unnoticed"


def test_provenance_ids_are_stable_and_fit_a_fhir_id() -> None:
    from bcconnect.search import registry
    from bcconnect.view._provenance import TYPE_CODES, parse_provenance_id

    uuid = "6afd2973-b5db-52e8-b774-dba32f909c2f"
    assert provenance_id("Observation", uuid, 3) == f"obs-{uuid}-3"
    assert parse_provenance_id(f"obs-{uuid}-3") == ("Observation", uuid, 3)
    for bad in (f"xyz-{uuid}-3", f"obs-{uuid}-", f"obs-{uuid}-03", "obs", f"obs-{uuid}-x"):
        assert parse_provenance_id(bad) is None
    # every served type but Provenance has a code, and no two share one
    assert set(registry().resource_types) - {"Provenance"} <= set(TYPE_CODES)
    assert len(set(TYPE_CODES.values())) == len(TYPE_CODES)
    for rtype in TYPE_CODES:
        made = provenance_id(rtype, uuid, 10**9)
        assert made is not None
        assert len(made) <= 64
