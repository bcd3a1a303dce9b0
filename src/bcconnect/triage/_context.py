"""The cross-site context of one person for a triager: every fact tagged with its trust and how fresh it is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from bcconnect.triage._config import Network, TriageConfig
from bcconnect.triage._records import codes, display, parse_day, trusts_of

Json = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Fact:
    """One fact shown in context: what, when, from which trust(s), and whether that trust's feed is stale."""

    kind: str
    text: str
    day: date | None
    trusts: tuple[str, ...]
    stale: bool = False
    flags: tuple[str, ...] = ()
    value: str = ""
    #: the resource it came from (``Encounter/<id>``), for a link to the FHIR endpoint
    reference: str = ""


@dataclass(frozen=True, slots=True)
class PersonContext:
    """What every trust knows about one person that matters for triaging a referral to ``network``."""

    person: str
    name: str
    nhs_number: str | None
    birth_date: date | None
    ae_attendances: tuple[Fact, ...]
    emergency_admissions: tuple[Fact, ...]
    problems: tuple[Fact, ...]
    results: tuple[Fact, ...]
    procedures: tuple[Fact, ...]
    medications: tuple[Fact, ...]
    contacts: tuple[Fact, ...]
    long_term_conditions: int
    flags: tuple[str, ...]

    def age(self, as_of: date) -> int | None:
        """Age in whole years at ``as_of``."""
        if self.birth_date is None:
            return None
        born = self.birth_date
        return as_of.year - born.year - ((as_of.month, as_of.day) < (born.month, born.day))

    @property
    def trusts(self) -> tuple[str, ...]:
        """Every trust a fact came from, in first-seen order."""
        seen: dict[str, None] = {}
        for group in (self.ae_attendances, self.emergency_admissions, self.problems, self.results, self.contacts):
            for fact in group:
                seen.update(dict.fromkeys(fact.trusts))
        return tuple(seen)


def _name(patient: Json) -> str:
    for name in patient.get("name", []):
        if isinstance(name, Mapping):
            given = " ".join(str(g) for g in name.get("given", []))
            family = str(name.get("family", ""))
            text = f"{given} {family.upper()}".strip()
            if text:
                return text
    return "(name withheld)"


def _nhs_number(patient: Json) -> str | None:
    for ident in patient.get("identifier", []):
        if isinstance(ident, Mapping) and ident.get("system") == "https://fhir.nhs.uk/Id/nhs-number":
            return str(ident.get("value"))
    return None


def _quantity(obs: Json) -> str:
    q = obs.get("valueQuantity")
    if isinstance(q, Mapping) and "value" in q:
        return f"{q['value']:g} {q.get('unit', '')}".strip() if isinstance(q["value"], int | float) else str(q["value"])
    parts = []
    for component in obs.get("component", []):
        cq = component.get("valueQuantity", {}) if isinstance(component, Mapping) else {}
        if isinstance(cq, Mapping) and isinstance(cq.get("value"), int | float):
            parts.append(f"{cq['value']:g}")
    return "/".join(parts)


def build_context(
    person: str,
    resources: Sequence[Json],
    *,
    network: Network | None,
    config: TriageConfig,
    as_of: date,
    stale_trusts: frozenset[str] = frozenset(),
) -> PersonContext:
    """The context of ``person`` from the resources of their cross-trust record (``$everything``)."""
    year_ago = as_of - timedelta(days=365)
    two_years_ago = as_of - timedelta(days=730)
    patient: Json = {}
    ae: list[Fact] = []
    emergencies: list[Fact] = []
    problems: dict[str, Fact] = {}
    results: dict[str, Fact] = {}
    procedures: list[Fact] = []
    medications: dict[str, Fact] = {}
    contacts: list[Fact] = []
    flags: set[str] = set()
    wanted_results = set(network.context_results) if network else set()
    wanted_procedures = set(network.context_procedures) if network else set()
    surgical = network is not None and network.surgical
    for flag in config.flags if surgical else ():
        wanted_results |= flag.results

    def fact(kind: str, resource: Json, text: str, day: date | None, **extra: Any) -> Fact:
        trusts = trusts_of(resource)
        return Fact(
            kind,
            text,
            day,
            trusts,
            stale=any(t in stale_trusts for t in trusts),
            reference=f"{resource.get('resourceType')}/{resource.get('id')}",
            **extra,
        )

    for resource in resources:
        rtype = resource.get("resourceType")
        if rtype == "Patient":
            if not patient or not resource.get("link"):
                patient = patient or resource
            continue
        if rtype == "Encounter":
            start = parse_day(resource.get("period", {}).get("start"))
            cls = resource.get("class", {}).get("code") if isinstance(resource.get("class"), Mapping) else None
            methods: set[str] = set()
            stay = resource.get("hospitalization")
            # UK Core puts the admission method on hospitalization; some senders put it on the Encounter
            carried = [
                *resource.get("extension", []),
                *(stay.get("extension", []) if isinstance(stay, Mapping) else []),
            ]
            for ext in carried:
                if isinstance(ext, Mapping) and ext.get("url") == config.systems.admission_method_extension:
                    methods |= codes(ext.get("valueCodeableConcept"))
            label = {"EMER": "A&E attendance", "IMP": "Inpatient stay", "AMB": "Outpatient / clinic"}.get(
                str(cls), str(cls or "Contact")
            )
            service = display(resource.get("serviceType")) or display(resource.get("type", []))
            text = f"{label}" + (f" — {service}" if service else "")
            if cls == "EMER" and start and start >= year_ago:
                ae.append(fact("ae", resource, text, start))
            if cls == "IMP" and methods & config.emergency_admission_methods and start and start >= year_ago:
                emergencies.append(fact("emergency", resource, "Emergency admission", start))
            if start and start >= two_years_ago:
                contacts.append(fact("contact", resource, text, start))
        elif rtype == "Condition":
            status = codes(resource.get("clinicalStatus"))
            if status and not status & {"active", "recurrence", "relapse"}:
                continue
            key = next(iter(sorted(codes(resource.get("code")))), display(resource.get("code")))
            day = parse_day(resource.get("onsetDateTime")) or parse_day(resource.get("recordedDate"))
            problems.setdefault(key, fact("problem", resource, display(resource.get("code")), day))
            for flag in config.flags if surgical else ():
                if codes(resource.get("code")) & flag.conditions:
                    flags.add(flag.label)
        elif rtype == "Observation":
            found = codes(resource.get("code"))
            hit = found & wanted_results
            if not hit:
                continue
            day = parse_day(resource.get("effectiveDateTime")) or parse_day(resource.get("issued"))
            key = sorted(hit)[0]
            current = results.get(key)
            if current is None or (day and current.day and day > current.day):
                results[key] = fact("result", resource, display(resource.get("code")), day, value=_quantity(resource))
        elif rtype == "Procedure":
            if codes(resource.get("code")) & wanted_procedures:
                day = parse_day(resource.get("performedDateTime")) or parse_day(
                    resource.get("performedPeriod", {}).get("start")
                )
                procedures.append(fact("procedure", resource, display(resource.get("code")), day))
        elif rtype in ("MedicationRequest", "MedicationStatement"):
            if resource.get("status") not in ("active", None, "on-hold"):
                continue
            concept = resource.get("medicationCodeableConcept")
            med_codes = codes(concept)
            med_flags = tuple(f.label for f in (config.flags if surgical else ()) if med_codes & f.medications)
            flags.update(med_flags)
            day = parse_day(resource.get("authoredOn")) or parse_day(resource.get("dateAsserted"))
            key = next(iter(sorted(med_codes)), display(concept))
            medications.setdefault(key, fact("medication", resource, display(concept), day, flags=med_flags))
    birth = parse_day(patient.get("birthDate"))

    def newest(items: Sequence[Fact]) -> tuple[Fact, ...]:
        return tuple(sorted(items, key=lambda f: f.day or date.min, reverse=True))

    return PersonContext(
        person=person,
        name=_name(patient) if patient else "(not shown)",
        nhs_number=_nhs_number(patient),
        birth_date=birth,
        ae_attendances=newest(ae),
        emergency_admissions=newest(emergencies),
        problems=newest(list(problems.values())),
        results=newest(list(results.values())),
        procedures=newest(procedures),
        medications=newest(list(medications.values())),
        contacts=newest(contacts)[:12],
        long_term_conditions=len(problems),
        flags=tuple(sorted(flags)),
    )
