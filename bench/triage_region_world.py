"""A synthetic region-sized waiting list written straight into a store (no sandboxes, no adapters, no mapping).

Going through the sandboxes and ingest at 1.3M persons takes hours on this machine, so the triage bench writes
the resources triage reads directly with the store's own write path (``put_resources``: versions, search index
rows, compartments) and the person model's aliases (``set_aliases``), in the shapes the mappings produce:

- **Persons.** The region has ``persons`` people; only those with a referral or pathway carry triage data, so
  only they are written: for each, a source Patient (verified NHS number, birth date for ages 0–95, a name)
  and a golden Patient tagged ``record-kind|golden`` linking to it, with both ids aliased to the person.
- **Referrals.** ``open_referrals`` open e-RS referrals (ServiceRequest: UBRN, priority, Treatment Function
  Code, performer trust ODS, received date) plus 30% as many closed ones. Trusts are skewed (RL4 35%, RXK 30%,
  RNA 20%, RBK 15%), treatment functions follow a Zipf-like skew over the networks' TFCs, priorities are 70%
  routine, 20% urgent, 10% two-week wait. 12% of open referrals await triage (no review outcome); 8% of persons
  have a second open referral in the same network at another trust (the duplicates the worklist flags).
- **Waits.** Each trust × TFC has its own typical wait (mean 8–40 weeks); a referral's wait is exponential
  around it, capped at 110 weeks, so the tail past 52, 65, 78 and 104 weeks exists and differs by provider.
- **Pathways.** Every accepted referral has an EpisodeOfCare (PPI, RTT status 10 at receipt; closed ones a 30
  first definitive treatment); 3% transferred to a second provider keeping the PPI (status 21).
- **Appointments.** 45% of open pathways have one booked 0–20 weeks ahead; 4% have a first appointment the
  patient did not attend (which nullifies a routine or urgent clock).
- **Screen.** 0.5% of referrals carry a sensitivity label; ``objectors`` people object to sharing.
- **The rest of the region** (:func:`write_population`, on by default): every other of the ``persons`` people
  is there too, as a source Patient and a golden Patient aliased to it (the same shapes and ids as above), so
  the store's version, resource, compartment and alias tables are region-sized. Written fast as direct rows
  (``COPY`` on PostgreSQL, ``executemany`` on SQLite) into ``resource_versions``, ``resources``,
  ``patient_compartment`` and ``reference_alias`` only: no search-index rows (they are not found by a Patient
  search; triage never searches Patients), one version each at ``t = 1``, version keys from
  ``POPULATION_VID_BASE`` (far above what the store's own writes reach, so its clock needs no change).

Seeded (``seed``): the same arguments give the same world.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import orjson
from bulk_synthetic import RESOURCE_COLUMNS, VERSION_COLUMNS, insert_rows

from bcconnect.identity import GOLDEN_TAG
from bcconnect.security import DEFAULT_POLICY, add_objection
from bcconnect.store import ResourceWrite, Store, Tx, put_resources, set_aliases
from bcconnect.triage import TriageConfig

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
TRUSTS = (("RL4", 0.35), ("RXK", 0.30), ("RNA", 0.20), ("RBK", 0.15))
SOURCE = {"RL4": "rl4", "RXK": "rxk", "RNA": "rna", "RBK": "rbk"}
PRIORITIES = (("routine", 0.70), ("urgent", 0.20), ("asap", 0.10))
NS = uuid.UUID("5a1d7c3e-8f40-4f39-9a55-7a3f0b1c2d4e")
#: version keys of the population's direct rows start here (the store's own writes count up from 1)
POPULATION_VID_BASE = 1_000_000_000_000
POPULATION_STAMP = "2026-01-01T00:00:00.000Z"
#: persons per transaction of the population's direct rows
POPULATION_BATCH = 20_000


@dataclass(frozen=True, slots=True)
class RegionCounts:
    """What was written (the read model counts open referrals, pathways and waits after its rebuild)."""

    persons_with_data: int
    by_type: dict[str, int]
    objectors: int
    #: persons written as direct rows (a source and a golden Patient each, no referrals)
    population: int = 0

    @property
    def resources(self) -> int:
        """Every resource written (golden Patients included)."""
        return sum(self.by_type.values()) + 2 * self.population


def _id(*parts: object) -> str:
    return str(uuid.uuid5(NS, "/".join(str(p) for p in parts)))


def _nhs_number(n: int) -> str:
    """A valid NHS number (modulus 11 check digit) from a serial number."""
    while True:
        base = f"9{n:08d}"[-9:]
        total = sum(int(d) * (10 - i) for i, d in enumerate(base))
        check = 11 - total % 11
        if check == 11:
            check = 0
        if check != 10:
            return base + str(check)
        n += 1_000_000_00


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([w[0] for w in weighted], [w[1] for w in weighted])[0]


def _tfcs(config: TriageConfig) -> list[tuple[str, float]]:
    codes = [t for n in config.networks.values() for t in n.tfc]
    unique = list(dict.fromkeys(codes))
    return [(t, 1 / (i + 1) ** 0.8) for i, t in enumerate(unique)]


def _data_serials(persons: int, open_referrals: int) -> tuple[int, int]:
    """How many persons have referral data, and the step between their serials (spread across the region)."""
    with_data = min(persons, int(open_referrals / 1.08))
    return with_data, max(1, persons // max(1, with_data))


def _population_rows(
    serials: list[int], vid: int, seed: int
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The direct rows of these persons (versions, resources, compartment, aliases) from version key ``vid``."""
    rng = random.Random(seed)
    versions, resources, compartment, aliases = [], [], [], []
    as_of = date(2026, 12, 1)
    for serial in serials:
        trust = _pick(rng, TRUSTS)
        source_patient, golden = _id("patient", serial), _id("person", serial)
        born = as_of - timedelta(days=rng.randint(0, 95 * 365))
        served = {"versionId": "1", "lastUpdated": POPULATION_STAMP}
        patient = {
            "resourceType": "Patient", "id": source_patient,
            "meta": {**served, "tag": [{"system": ODS, "code": trust}]},
            "identifier": [{"system": NHS, "value": _nhs_number(serial)}], "birthDate": born.isoformat(),
            "name": [{"family": f"Person{serial}", "given": ["Alex"]}], "gender": rng.choice(["male", "female"]),
        }  # fmt: skip
        golden_body = {
            **{k: v for k, v in patient.items() if k != "meta"}, "id": golden,
            "meta": {**served, "tag": [dict(GOLDEN_TAG)]},
            "link": [{"other": {"reference": f"Patient/{source_patient}"}, "type": "seealso"}],
        }  # fmt: skip
        for rid, body, source in ((source_patient, patient, SOURCE[trust]), (golden, golden_body, "identity")):
            digest = f"{vid:016x}"
            versions.append((vid, "Patient", rid, 1, 1, POPULATION_STAMP, digest, 0, orjson.dumps(body), rid))
            resources.append(("Patient", rid, vid, 1, 1, POPULATION_STAMP, digest, rid, source, 0))
            compartment.append((rid, vid, "Patient"))
            vid += 1
        aliases += [("Patient", source_patient, golden), ("Patient", golden, golden)]
    return versions, resources, compartment, aliases


async def write_population(store: Store, *, persons: int, open_referrals: int, seed: int = 16) -> int:
    """Write every person of the region without referral data as direct rows (see the module docstring)."""
    with_data, step = _data_serials(persons, open_referrals)
    data = {k * step for k in range(with_data)}
    serials = [s for s in range(persons) if s not in data]
    vid = POPULATION_VID_BASE
    for start in range(0, len(serials), POPULATION_BATCH):
        versions, resources, compartment, aliases = _population_rows(
            serials[start : start + POPULATION_BATCH], vid, seed + start
        )
        vid += len(versions)

        def write(tx: Tx, v: Any = versions, r: Any = resources, c: Any = compartment, a: Any = aliases) -> None:
            insert_rows(tx, "resource_versions", VERSION_COLUMNS, v)
            insert_rows(tx, "resources", RESOURCE_COLUMNS, r)
            insert_rows(tx, "patient_compartment", ("patient_id", "vid", "res_type"), c)
            insert_rows(tx, "reference_alias", ("res_type", "member_id", "canonical_id"), a)

        await store.write(write)
    return len(serials)


def generate(
    config: TriageConfig, *, persons: int, open_referrals: int, as_of: date, seed: int = 15
) -> Iterator[tuple[list[ResourceWrite], list[tuple[str, str]], list[str]]]:
    """Batches of (resources, (golden id, source id) aliases, NHS numbers of objectors) for one chunk of persons."""
    rng = random.Random(seed)
    systems = config.systems
    tfcs = _tfcs(config)
    tfc_weights = tuple(tfcs)
    mean_weeks = {(t, c): rng.uniform(8, 40) for t, _ in TRUSTS for c, _ in tfcs}
    with_data, step = _data_serials(persons, open_referrals)
    batch: list[ResourceWrite] = []
    aliases: list[tuple[str, str]] = []
    objecting: list[str] = []
    written_open = 0
    for k in range(with_data):
        serial = k * step
        trust = _pick(rng, TRUSTS)
        source_patient = _id("patient", serial)
        golden = _id("person", serial)
        nhs = _nhs_number(serial)
        born = as_of - timedelta(days=rng.randint(0, 95 * 365))
        patient = {
            "resourceType": "Patient", "id": source_patient, "meta": {"tag": [{"system": ODS, "code": trust}]},
            "identifier": [{"system": NHS, "value": nhs}], "birthDate": born.isoformat(),
            "name": [{"family": f"Person{serial}", "given": ["Alex"]}], "gender": rng.choice(["male", "female"]),
        }  # fmt: skip
        golden_body = {
            **{k2: v for k2, v in patient.items() if k2 != "meta"}, "id": golden,
            "meta": {"tag": [dict(GOLDEN_TAG)]},
            "link": [{"other": {"reference": f"Patient/{source_patient}"}, "type": "seealso"}],
        }  # fmt: skip
        batch.append(ResourceWrite("Patient", source_patient, orjson.dumps(patient), SOURCE[trust], source_patient))
        batch.append(ResourceWrite("Patient", golden, orjson.dumps(golden_body), "identity", golden))
        aliases.append((golden, source_patient))
        tfc = _pick(rng, tfc_weights)
        referrals = [(trust, tfc)]
        if rng.random() < 0.08:
            other = _pick(rng, tuple(t for t in TRUSTS if t[0] != trust))
            referrals.append((other, tfc))
        for n, (where, code) in enumerate(referrals):
            batch += _referral(rng, systems, source_patient, serial, n, where, code, mean_weeks, as_of)
            written_open += 1
        if rng.random() < 0.3:  # a closed pathway from an earlier referral
            batch += _referral(rng, systems, source_patient, serial, 9, trust, tfc, mean_weeks, as_of, closed=True)
        if rng.random() < 0.001:
            objecting.append(nhs)
        if len(batch) >= 5000:
            yield batch, aliases, objecting
            batch, aliases, objecting = [], [], []
    if batch:
        yield batch, aliases, objecting


def _referral(
    rng: random.Random,
    systems: Any,
    patient: str,
    serial: int,
    n: int,
    trust: str,
    tfc: str,
    mean_weeks: dict[tuple[str, str], float],
    as_of: date,
    *,
    closed: bool = False,
) -> list[ResourceWrite]:
    rid = _id("referral", serial, n)
    waited = min(110 * 7, int(rng.expovariate(1 / (mean_weeks[(trust, tfc)] * 7))))
    received = as_of - timedelta(days=waited + (rng.randint(30, 300) if closed else 0))
    priority = _pick(rng, PRIORITIES)
    awaiting = not closed and rng.random() < 0.12
    subject = {"reference": f"Patient/{patient}"}
    tag = {"tag": [{"system": ODS, "code": trust}]}
    meta: dict[str, Any] = dict(tag)
    if rng.random() < 0.005:
        system, code = sorted(DEFAULT_POLICY.labels)[0]
        meta["security"] = [{"system": system, "code": code}]
    sr: dict[str, Any] = {
        "resourceType": "ServiceRequest", "id": rid, "meta": meta, "status": "completed" if closed else "active",
        "intent": "order", "priority": priority, "subject": subject,
        "identifier": [{"system": systems.ubrn, "value": f"{serial:09d}{n:03d}"}],
        "performerType": {"coding": [{"system": systems.treatment_function, "code": tfc}]},
        "performer": [{"identifier": {"system": ODS, "value": trust}}],
        "authoredOn": received.isoformat(), "occurrenceDateTime": received.isoformat(),
        "code": {"text": "Referral"},
    }  # fmt: skip
    if not awaiting:
        sr["extension"] = [{"url": systems.review_outcome_extension, "valueCoding": {"code": "accepted"}}]
    out = [ResourceWrite("ServiceRequest", rid, orjson.dumps(sr), SOURCE[trust], patient)]
    if awaiting:
        return out
    ppi = f"{serial:010d}{n:02d}"
    events = [("10", received, trust)]
    parts = [(trust, received)]
    if not closed and rng.random() < 0.03:
        moved = received + timedelta(days=max(1, waited // 2))
        other = "RL4" if trust != "RL4" else "RNA"
        events.append(("21", moved, trust))
        parts.append((other, moved))
    if closed:
        events.append(("30", received + timedelta(days=waited), trust))
    for i, (where, start) in enumerate(parts):
        eid = _id("episode", serial, n, i)
        current = i == len(parts) - 1
        eoc = {
            "resourceType": "EpisodeOfCare", "id": eid, "meta": {"tag": [{"system": ODS, "code": where}]},
            "status": "finished" if closed or not current else "active",
            "identifier": [{"system": systems.ppi[0], "value": ppi}], "patient": subject,
            "managingOrganization": {"identifier": {"system": ODS, "value": where}},
            "type": [{"coding": [{"system": systems.treatment_function, "code": tfc}]}],
            "period": {"start": start.isoformat()}, "referralRequest": [{"reference": f"ServiceRequest/{rid}"}],
            "extension": [
                {"url": systems.rtt_event_extension, "extension": [
                    {"url": "code", "valueCoding": {"code": code}}, {"url": "date", "valueDate": day.isoformat()}]}
                for code, day, _ in events
            ],
        }  # fmt: skip
        out.append(ResourceWrite("EpisodeOfCare", eid, orjson.dumps(eoc), SOURCE[where], patient))
    if not closed:
        roll = rng.random()
        status, when = None, None
        if roll < 0.45:
            status, when = "booked", as_of + timedelta(days=rng.randint(0, 140))
        elif roll < 0.49:
            status, when = "noshow", received + timedelta(days=rng.randint(7, max(8, waited)))
        if status and when:
            aid = _id("appointment", serial, n)
            appt = {
                "resourceType": "Appointment", "id": aid, "meta": {"tag": [{"system": ODS, "code": trust}]},
                "status": status, "start": f"{when.isoformat()}T09:30:00+00:00",
                "basedOn": [{"reference": f"ServiceRequest/{rid}"}],
                "participant": [{"actor": subject, "status": "accepted"}],
            }  # fmt: skip
            out.append(ResourceWrite("Appointment", aid, orjson.dumps(appt), SOURCE[trust], patient))
    return out


async def build(
    store: Store, config: TriageConfig, *, persons: int, open_referrals: int, as_of: date, population: bool = True
) -> RegionCounts:
    """Write the region into ``store`` (one transaction per batch) and return what was written; ``population``:
    the persons without referrals too (as direct rows, first, so the store's own writes follow them)."""
    rest = await write_population(store, persons=persons, open_referrals=open_referrals) if population else 0
    counts = {"Patient": 0, "ServiceRequest": 0, "EpisodeOfCare": 0, "Appointment": 0}
    objectors = 0
    for batch, aliases, objecting in generate(config, persons=persons, open_referrals=open_referrals, as_of=as_of):

        def write(tx: Tx, batch: list[ResourceWrite] = batch, aliases: list[tuple[str, str]] = aliases) -> None:
            put_resources(tx, batch)
            for golden, source in aliases:
                set_aliases(tx, "Patient", golden, [source])

        await store.write(write)
        for nhs in objecting:
            await store.write(lambda tx, nhs=nhs: add_objection(tx, nhs))
        objectors += len(objecting)
        for w in batch:
            counts[w.resource_type] += 1

    return RegionCounts(counts["Patient"] // 2, counts, objectors, rest)
