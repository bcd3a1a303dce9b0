"""Held resources: a clinical resource whose Patient is missing is kept back (never served) and released in the
transaction that writes its Patient — on a later page, or after a quarantined Patient is replayed."""

from __future__ import annotations

import orjson
import pytest

from bcconnect.adapters import Page, RawRecord
from bcconnect.config import AdapterConfig, SourceKind
from bcconnect.fhir.constants import source_system
from bcconnect.fhir.ids import resource_id
from bcconnect.ingest import process_page, replay_quarantined
from bcconnect.ingest._held import count_held, list_held
from bcconnect.mapping import load_mapping_set
from bcconnect.store import Store, list_quarantine, open_store, read_current

from .conftest import MAPPINGS

pytestmark = pytest.mark.anyio

GOLDEN = MAPPINGS / "rl4-fhir" / "golden"
CONFIG = AdapterConfig(name="rl4", ods_code="RL4", kind=SourceKind.FHIR_API, mapping_set="rl4-fhir")


def _record(resource: dict[str, object]) -> RawRecord:
    key = f"{resource['resourceType']}/{resource['id']}"
    return RawRecord(str(resource["resourceType"]), key, orjson.dumps(resource), "1", "2026-11-01T10:00:00Z")


def _golden(name: str) -> dict[str, object]:
    loaded: dict[str, object] = orjson.loads((GOLDEN / name).read_bytes())
    return loaded


@pytest.fixture
async def store(store_url: str) -> Store:  # type: ignore[misc]
    async with open_store(store_url) as opened:
        yield opened


async def test_a_condition_before_its_patient_is_held_then_released(store: Store) -> None:
    mapping_set = load_mapping_set(MAPPINGS / "rl4-fhir")
    patient = _golden("patient-verified.json")
    condition = _golden("condition.json")
    condition["subject"] = {"reference": f"Patient/{patient['id']}"}
    system = source_system("RL4")
    condition_id = resource_id(system, "Condition", f"Condition/{condition['id']}")

    first = await process_page(
        Page((_record(condition),), (), "c1"), config=CONFIG, store=store, mapping_set=mapping_set
    )
    assert (first.new, first.held, first.resources_written) == (1, 1, 0)
    assert await store.read(lambda tx: read_current(tx, "Condition", condition_id)) is None  # never served
    held = await store.read(lambda tx: list_held(tx, adapter="rl4"))
    assert [(h.resource_type, h.id, h.source_key) for h in held] == [
        ("Condition", condition_id, f"Condition/{condition['id']}")
    ]

    second = await process_page(
        Page((_record(patient),), (), "c2"), config=CONFIG, store=store, mapping_set=mapping_set
    )
    assert (second.held, second.released) == (0, 1)
    served = await store.read(lambda tx: read_current(tx, "Condition", condition_id))
    assert served is not None
    assert served.body is not None
    assert await store.read(lambda tx: count_held(tx, "rl4")) == 0


async def test_a_quarantined_patient_holds_its_records_until_replayed(store: Store) -> None:
    mapping_set = load_mapping_set(MAPPINGS / "rl4-fhir")
    patient = _golden("patient-verified.json")
    broken = {**patient, "identifier": []}  # no MRN: the RL4 mapping quarantines it
    condition = _golden("condition.json")
    condition["subject"] = {"reference": f"Patient/{patient['id']}"}
    page = Page((_record(broken), _record(condition)), (), "c1")
    counts = await process_page(page, config=CONFIG, store=store, mapping_set=mapping_set)
    assert (counts.quarantined, counts.quarantined_patients, counts.held) == (1, 1, 1)

    [entry] = await store.read(lambda tx: list_quarantine(tx, adapter="rl4"))
    result = await replay_quarantined(
        entry.id, config=CONFIG, store=store, mapping_set=mapping_set, payload=orjson.dumps(patient)
    )
    assert result.resolved, result.message
    assert await store.read(lambda tx: count_held(tx, "rl4")) == 0
    condition_id = resource_id(source_system("RL4"), "Condition", f"Condition/{condition['id']}")
    assert await store.read(lambda tx: read_current(tx, "Condition", condition_id)) is not None
