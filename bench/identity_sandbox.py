"""Linkage quality on the sandbox's own population and identity noise, through the store's linker.

    .venv/bin/python bench/identity_sandbox.py --persons 20000 --noise 1 2 4

Each trust's source Patients come from the sandbox (``make_person`` + ``trust_records`` with the sandbox's
``NoiseSettings`` scaled by ``--noise``: missing and unverified NHS numbers, typos, nicknames, swapped day and
month, house moves, in-trust duplicates half of them already merged, pseudonymous sexual-health
registrations). They are shaped as the mapping shapes Patients and linked trust by trust with
``link_patients`` on a SQLite store; the ground truth is the sandbox's own.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from bcconnect.fhir.constants import (
    NHS_NUMBER_SYSTEM,
    NHS_NUMBER_VERIFICATION_EXTENSION,
    NHS_NUMBER_VERIFICATION_SYSTEM,
    SOURCE_ORG_TAG_SYSTEM,
    mrn_system,
)
from bcconnect.identity import count_reviews, link_patients, load_rules, quality
from bcconnect.store import open_store
from bcconnect_sandbox.population import make_person, person_id
from bcconnect_sandbox.settings import DEFAULT_NOW, NoiseSettings
from bcconnect_sandbox.sources import IdCodec, SourcePatient, trust_records

TRUSTS = ("RL4", "RBK", "RNA", "RXK")


def fhir_patient(p: SourcePatient) -> dict[str, Any]:
    """A sandbox source patient in the shape the mappings give a Patient."""
    identifiers: list[dict[str, Any]] = []
    if p.nhs_number:
        ident: dict[str, Any] = {"system": NHS_NUMBER_SYSTEM, "value": p.nhs_number}
        if p.nhs_status:
            coding = {"system": NHS_NUMBER_VERIFICATION_SYSTEM, "code": p.nhs_status}
            ident["extension"] = [
                {"url": NHS_NUMBER_VERIFICATION_EXTENSION, "valueCodeableConcept": {"coding": [coding]}}
            ]
        identifiers.append(ident)
    identifiers.append({"system": mrn_system(p.trust), "value": p.id})
    out: dict[str, Any] = {
        "resourceType": "Patient",
        "id": p.id,
        "meta": {"tag": [{"system": SOURCE_ORG_TAG_SYSTEM, "code": p.trust}]},
        "identifier": identifiers,
        "active": p.active,
        "name": [{"family": p.family, "given": p.given.split()}],
        "gender": p.sex,
        "birthDate": p.birth_date.isoformat(),
    }
    if p.postcode:
        out["address"] = [{"line": [p.address_line], "city": p.town, "postalCode": p.postcode}]
    if p.phone:
        out["telecom"] = [{"system": "phone", "value": p.phone}]
    if p.replaced_by:
        out["link"] = [{"other": {"reference": f"Patient/{p.replaced_by}"}, "type": "replaced-by"}]
    return out


def sandbox_patients(persons: int, seed: int, noise: NoiseSettings) -> dict[str, list[tuple[SourcePatient, str]]]:
    """Every trust's source patients with their true person id."""
    codecs = {t: IdCodec(seed, t) for t in TRUSTS}
    out: dict[str, list[tuple[SourcePatient, str]]] = {t: [] for t in TRUSTS}
    for index in range(persons):
        person = make_person(seed, index, DEFAULT_NOW, noise)
        for trust in person.trusts:
            for record in trust_records(person, trust, seed=seed, noise=noise, codec=codecs[trust]):
                if isinstance(record.fact, SourcePatient):
                    out[trust].append((record.fact, person_id(index)))
    return out


def scaled(noise: float, base: NoiseSettings | None = None) -> NoiseSettings:
    """``base`` noise (default: the sandbox's) with every rate multiplied by ``noise`` (at most 1)."""
    base = base or NoiseSettings()
    values = {f.name: min(getattr(base, f.name) * noise, 1.0) for f in dataclasses.fields(base)}
    values["merged_at_start"] = base.merged_at_start
    return NoiseSettings(**values)


async def run(args: argparse.Namespace) -> None:
    rules = load_rules()
    if args.match_at is not None:
        rules = dataclasses.replace(rules, match_at=args.match_at)
    if args.review_at is not None:
        rules = dataclasses.replace(rules, review_at=args.review_at)
    if args.review_contradicted is not None:
        rules = dataclasses.replace(rules, review_contradicted=args.review_contradicted == "on")
    for level in args.noise:
        started = time.perf_counter()
        by_trust = sandbox_patients(args.persons, args.seed, scaled(level, NoiseSettings.parse(args.noise_spec)))
        generated = time.perf_counter() - started
        truth = [(t, p.id, person, p.noise) for t, items in by_trust.items() for p, person in items]
        with tempfile.TemporaryDirectory() as tmp:
            async with open_store(f"sqlite:///{Path(tmp) / 'identity.db'}") as store:
                t0 = time.perf_counter()
                for trust in TRUSTS:
                    patients = [fhir_patient(p) for p, _ in by_trust[trust]]
                    for start in range(0, len(patients), args.page):
                        page = patients[start : start + args.page]
                        await store.write(
                            lambda tx, page=page, trust=trust: link_patients(tx, page, ods_code=trust, rules=rules)
                        )
                linking = time.perf_counter() - t0
                report = await store.read(lambda tx, truth=truth: quality(tx, truth, rules))
                reviews = await store.read(lambda tx: count_reviews(tx))
        print(f"noise x{level} seed {args.seed}: {report.overall.summary()} open_reviews={reviews} "
              f"twins_merged={report.twins_merged} (generated {generated:.0f}s, linked {linking:.0f}s)",
              flush=True)  # fmt: skip
        if args.report:
            print("\n".join(report.lines(examples=args.examples)), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--page", type=int, default=500)
    parser.add_argument("--noise", type=float, nargs="+", default=[1.0])
    parser.add_argument("--noise-spec", default="", help="rates over the defaults (name=value,…) before scaling")
    parser.add_argument("--report", action="store_true", help="per-category and per-rule tables, example misses")
    parser.add_argument("--examples", type=int, default=3)
    parser.add_argument("--match-at", type=float, help="override the rules' match threshold (bits)")
    parser.add_argument("--review-at", type=float, help="override the rules' review threshold (bits)")
    parser.add_argument("--review-contradicted", choices=("on", "off"), help="override the rules' review_contradicted")
    anyio.run(run, parser.parse_args())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
