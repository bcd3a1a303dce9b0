"""Write a whole world to files, streaming person by person in constant memory.

Layout (the same bytes for the same settings)::

    DIR/manifest.json          settings and counts
    DIR/ground_truth.csv       ods_code,source_patient_id,person_id,noise (person order)
    DIR/rtt_truth.csv          each RTT pathway's true clock at the reference date (ground_truth.RTT_HEADER)
    DIR/referral_truth.csv     each referral's triage state and duplicate (ground_truth.REFERRAL_HEADER)
    DIR/cohort_truth.csv       each person's conditions, distinct emergency stays, A&E attendances (cohort_facts)
    DIR/RL4/<Type>.ndjson      FHIR resources as RL4 serves them, one per line
    DIR/RXK/<Type>.ndjson      the same with RXK's quirks
    DIR/RNA/changes.ndjson     RNA change-feed entries, one per line
    DIR/RBK/messages.hl7       HL7 v2 messages (segments end with CR, messages are separated by LF)
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Final

import orjson

from bcconnect_sandbox.cohort_facts import COHORT_TRUTH_HEADER, cohort_truth_row
from bcconnect_sandbox.dialects.fhir import RESOURCE_TYPE, to_fhir
from bcconnect_sandbox.dialects.hl7 import messages
from bcconnect_sandbox.dialects.rna import ENTITY, to_rna, uk_datetime
from bcconnect_sandbox.dialects.rxk import rxk_quirks
from bcconnect_sandbox.ground_truth import HEADER, REFERRAL_HEADER, RTT_HEADER, noise_of, referral_rows, rtt_rows
from bcconnect_sandbox.population import person_id
from bcconnect_sandbox.settings import SandboxSettings
from bcconnect_sandbox.sources import IdCodec, Record, SourcePatient, static_records, trust_records
from bcconnect_sandbox.state import STATIC_TICKS, dense_person

_BUFFER: Final = 1 << 20


class _Files:
    """Output files opened on first use, closed together."""

    def __init__(self, root: Path, stack: ExitStack) -> None:
        self.root = root
        self.stack = stack
        self._open: dict[Path, IO[bytes]] = {}

    def get(self, *parts: str) -> IO[bytes]:
        path = self.root.joinpath(*parts)
        handle = self._open.get(path)
        if handle is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.stack.enter_context(path.open("wb", buffering=_BUFFER))
            self._open[path] = handle
        return handle


#: how often (in persons) generation reports progress
PROGRESS_EVERY = 100


def generate_to_directory(
    settings: SandboxSettings, out: Path, *, progress: Callable[[int], None] | None = None
) -> dict[str, object]:
    """Write the world of ``settings`` (its starting snapshot) under ``out``; returns the manifest.

    ``progress(persons_written)`` is called every :data:`PROGRESS_EVERY` persons and at the end.
    """
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    epoch = settings.now - settings.base_load_span
    ticks_per_person = settings.ticks_per_person
    codecs = {t: IdCodec(settings.seed, t) for t in settings.trusts}
    with ExitStack() as stack:
        files = _Files(out, stack)
        truth_file = stack.enter_context((out / "ground_truth.csv").open("w", encoding="utf-8", newline=""))
        truth = csv.writer(truth_file, lineterminator="\n")
        truth.writerow(HEADER)
        rtt = csv.writer(
            stack.enter_context((out / "rtt_truth.csv").open("w", encoding="utf-8", newline="")), lineterminator="\n"
        )
        rtt.writerow(RTT_HEADER)
        referral_truth = csv.writer(
            stack.enter_context((out / "referral_truth.csv").open("w", encoding="utf-8", newline="")),
            lineterminator="\n",
        )
        referral_truth.writerow(REFERRAL_HEADER)
        cohort_truth = csv.writer(
            stack.enter_context((out / "cohort_truth.csv").open("w", encoding="utf-8", newline="")),
            lineterminator="\n",
        )
        cohort_truth.writerow(COHORT_TRUTH_HEADER)
        for trust in settings.trusts:
            for k, record in enumerate(static_records(trust)):
                _write(files, counts, trust, record, None, k, epoch)
        for index in range(settings.persons):
            person = dense_person(settings, index)
            rtt.writerows(rtt_rows(person, reference=settings.now.date()))
            referral_truth.writerows(referral_rows(person))
            sent: dict[str, list[Record]] = {}
            for trust in settings.trusts:
                records = trust_records(person, trust, seed=settings.seed, noise=settings.noise, codec=codecs[trust])[
                    : ticks_per_person - 1
                ]
                sent[trust] = records
                patients = {r.id: r.fact for r in records if isinstance(r.fact, SourcePatient)}
                for r in records:
                    # a Consent's fact is its patient too; only patient records are linkage truth
                    if isinstance(r.fact, SourcePatient) and r.kind == "patient":
                        truth.writerow((trust, r.id, person_id(index), noise_of(r.fact)))
                tick0 = STATIC_TICKS + index * ticks_per_person
                for k, record in enumerate(records):
                    owner = patients.get(record.patient_id)
                    _write(files, counts, trust, record, owner, tick0 + k, epoch)
            cohort_truth.writerow(cohort_truth_row(person, sent))
            if progress is not None and ((index + 1) % PROGRESS_EVERY == 0 or index + 1 == settings.persons):
                progress(index + 1)
    manifest: dict[str, object] = {
        "persons": settings.persons,
        "seed": settings.seed,
        "density": settings.density,
        "now": settings.now.isoformat(),
        "trusts": list(settings.trusts),
        "records": dict(sorted(counts.items())),
    }
    (out / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return {**manifest, "seconds": round(time.perf_counter() - started, 3)}


def _write(
    files: _Files, counts: Counter[str], trust: str, record: Record, owner: object, tick: int, epoch: datetime
) -> None:
    """Render one record in its trust's dialect; ``tick`` gives its ``lastUpdated`` (as the server does)."""
    at = epoch + timedelta(milliseconds=tick)
    if trust in {"RL4", "RXK"}:
        resource = to_fhir(record, trust, 1, at)
        if trust == "RXK":
            resource = rxk_quirks(resource)
        files.get(trust, f"{RESOURCE_TYPE[record.kind]}.ndjson").write(orjson.dumps(resource) + b"\n")
        counts[trust] += 1
    elif trust == "RNA" and record.kind in ENTITY:
        change = {
            "seq": tick,
            "entity": ENTITY[record.kind],
            "id": record.id,
            "op": "upsert",
            "modified": uk_datetime(at),
            "data": to_rna(record),
        }
        files.get(trust, "changes.ndjson").write(orjson.dumps(change) + b"\n")
        counts[trust] += 1
    elif trust == "RBK" and isinstance(owner, SourcePatient):
        for message in messages(record, owner, event="new", control=f"RBK{tick:012d}", at=at):
            files.get(trust, "messages.hl7").write(message.encode("utf-8") + b"\n")
            counts[trust] += 1
