"""Every record of a dense sandbox world maps in its trust's mapping set, and every result lands on LOINC."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

from bcconnect.hl7v2 import parse_message
from bcconnect.mapping import MappingContext, load_mapping_set
from bcconnect_sandbox.density import ANALYTES, PANELS
from bcconnect_sandbox.generate import generate_to_directory
from bcconnect_sandbox.settings import SandboxSettings

ROOT = Path(__file__).resolve().parents[3]
SETS = {"RL4": "rl4-fhir", "RXK": "rxk-fhir", "RNA": "rna-json", "RBK": "rbk-hl7v2"}
LOINC = "http://loinc.org"


def _records(world: Path) -> list[tuple[str, str, str, bytes]]:
    out = []
    for trust in ("RL4", "RXK"):
        for path in sorted((world / trust).glob("*.ndjson")):
            for line in path.read_bytes().splitlines():
                doc = orjson.loads(line)
                out.append((trust, doc["resourceType"], f"{doc['resourceType']}/{doc['id']}", line))
    for line in (world / "RNA" / "changes.ndjson").read_bytes().splitlines():
        change = orjson.loads(line)
        out.append(("RNA", change["entity"], f"{change['entity']}/{change['id']}", orjson.dumps(change["data"])))
    for raw in (world / "RBK" / "messages.hl7").read_bytes().split(b"\n"):
        if raw.strip():
            message = parse_message(raw)
            out.append(("RBK", message.message_type, f"RBK|{message.control_id}", raw))
    return out


def test_every_dense_record_maps_and_every_added_result_is_loinc_coded(tmp_path: Path) -> None:
    generate_to_directory(SandboxSettings(persons=25, seed=9), tmp_path)
    sets = {t: load_mapping_set(ROOT / "mappings" / s) for t, s in SETS.items()}
    added = {a[0].code for analytes in ANALYTES.values() for a in analytes} | {p.code for p in PANELS.values()}
    seen: Counter[str] = Counter()
    for trust, record_type, key, payload in _records(tmp_path):
        context = MappingContext(trust, f"https://{trust.lower()}.example", key, "2026-11-22T10:00:00Z")
        for resource in sets[trust].map(record_type, payload, context=context).resources:
            if resource["resourceType"] not in {"Observation", "DiagnosticReport"}:
                continue
            codings = resource["code"]["coding"]
            loinc = [c["code"] for c in codings if c.get("system") == LOINC]
            assert loinc, f"{trust} {key}: no LOINC coding in {codings}"
            if loinc[0] in added:
                seen[trust] += 1
            if loinc[0] in {"8867-4", "59408-5", "29463-7"} and resource["resourceType"] == "Observation":
                assert resource["category"][0]["coding"][0]["code"] == "vital-signs", (trust, key)
    assert set(seen) == set(SETS), seen  # the added results reach every dialect's mapping
