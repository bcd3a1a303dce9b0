"""HL7 v2 ordering at full precision: an A02 (transfer) and an A03 (discharge) sent in the same second apply in
send order whatever order they arrive in — by MSH-7's fraction, then MSH-13, then the control id as a number."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from bcconnect.adapters import Page, RawRecord, hl7_record
from bcconnect.config import AdapterConfig, SourceKind
from bcconnect.fhir.constants import source_system
from bcconnect.fhir.ids import resource_id
from bcconnect.ingest import process_page
from bcconnect.mapping import load_mapping_set
from bcconnect.store import Store, open_store, read_current

from .conftest import MAPPINGS

pytestmark = pytest.mark.anyio

CONFIG = AdapterConfig(name="rbk", ods_code="RBK", kind=SourceKind.HL7V2, mapping_set="rbk-hl7v2")
PID = (
    "PID|1||WK495105144^^^RBK^MR~9991442820^^^NHS^NH||JONES^Christine||19650714|F|||"
    "78 Church Road^^Walsall^^WS3 8TQ^GBR^H||07194025654^PRN^CP|||||||||A||||||||||01"
)
VISIT = "WK495105144-E0"


def _message(event: str, *, sent: str, control_id: str, sequence: str = "", ward: str = "WARD7") -> RawRecord:
    discharge = "20261029000005" if event == "A03" else ""
    segments = [
        f"MSH|^~\\&|CAREFLOW|RBK|BCCONNECT|BCC|{sent}||ADT^{event}^ADT_{event}|{control_id}|P|2.4|{sequence}||AL|NE|GBR",
        f"EVN|{event}|{sent}",
        PID,
        f"PV1|1|I|{ward}^^^RBK|2C|||||||||||||||{VISIT}|||||||||||||||||||||||||20240525143500|{discharge}",
    ]
    _, record = hl7_record("\r".join(segments).encode())
    assert isinstance(record, RawRecord)
    return record


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        yield opened


async def _apply(store: Store, *records: RawRecord) -> dict[str, object]:
    mapping_set = load_mapping_set(MAPPINGS / "rbk-hl7v2")
    for number, record in enumerate(records):  # one page each: the arrival order is the list order
        await process_page(Page((record,), (), f"c{number}"), config=CONFIG, store=store, mapping_set=mapping_set)
    encounter_id = resource_id(source_system("RBK"), "Encounter", VISIT)
    stored = await store.read(lambda tx: read_current(tx, "Encounter", encounter_id))
    assert stored is not None
    assert stored.body is not None
    body: dict[str, object] = orjson.loads(stored.body)
    return body


@pytest.mark.parametrize(
    ("a02", "a03"),
    [
        # same second, no MSH-13: the control id counts (MSG10 after MSG9, though "MSG10" < "MSG9" as text)
        ({"sent": "20261029000005", "control_id": "MSG9"}, {"sent": "20261029000005", "control_id": "MSG10"}),
        # same second, MSH-13 sequence numbers decide even when the control ids say the opposite
        (
            {"sent": "20261029000005", "control_id": "Z1", "sequence": "41"},
            {"sent": "20261029000005", "control_id": "A1", "sequence": "42"},
        ),
        # MSH-7 to 1/10 000 s: the fraction decides before anything else
        ({"sent": "20261029000005.0001", "control_id": "MSG2"}, {"sent": "20261029000005.0002", "control_id": "MSG1"}),
    ],
    ids=["control-id-as-number", "msh-13-sequence", "sub-second-msh-7"],
)
async def test_a_same_second_discharge_is_not_undone_by_the_transfer_before_it(
    store: Store, a02: dict[str, str], a03: dict[str, str]
) -> None:
    admit = _message("A01", sent="20261029000004", control_id="MSG0")
    transfer = _message("A02", ward="WARD9", **a02)
    discharge = _message("A03", **a03)
    encounter = await _apply(store, admit, discharge, transfer)  # the older transfer arrives last
    assert encounter["status"] == "finished"


async def test_in_order_delivery_still_applies_both(store: Store) -> None:
    """The guard must not freeze the Encounter: a transfer then a discharge, in order, both apply."""
    admit = _message("A01", sent="20261029000004", control_id="MSG0")
    transfer = _message("A02", sent="20261029000005", control_id="MSG9", ward="WARD9")
    encounter = await _apply(store, admit, transfer)
    assert encounter["status"] == "in-progress"
    assert "WARD9" in str(encounter["type"])
    discharge = _message("A03", sent="20261029000005", control_id="MSG10")
    encounter = await _apply(store, discharge)
    assert encounter["status"] == "finished"
