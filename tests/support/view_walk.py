"""The invariant walk: read every resource the view serves and check FHIR's own rules hold between the paths.

It talks to the API only through ``get(path, params) -> (status, json body)``, so the same walk runs in-process
(ASGI), against the running demo over real HTTP, and through a FHIR client library. Checked, for every type:

1. read ⇔ search: every resource that reads is found by ``_id`` and by every listed search parameter for a value
   it holds (values taken from the served resource by the engine's own index extraction); nothing a search
   returns fails to read;
2. every reference in a served resource resolves (read 200), unless it is contained or absolute;
3. ``_include`` / ``_revinclude`` agree with the references as served (all Patient ids of one person counted as
   one Patient, the documented person model), and a chain finds what following the served references finds;
4. from any Patient id of a person, ``$everything`` and ``patient=`` give the same whole record.

Provenance, composed on read, is walked like a stored type: the Provenance of every served resource's version
is read, found by ``_id`` and by each parameter the CapabilityStatement lists for it, its references resolve,
and ``_include=Provenance:target|agent`` / ``_revinclude=Provenance:target`` agree with it.

Values and resources are sampled with a fixed seed (property style: the same examples every run) to keep the
walk fast; reads and ``_id`` searches cover everything. :func:`walk` returns the violations (empty: all hold).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from bcconnect.search import MAX_TIME, MIN_TIME, extract_index, registry
from bcconnect.view import PROVENANCE_SEARCH_PARAMS, provenance_id

Json = dict[str, Any]
Get = Callable[[str, Sequence[tuple[str, str]]], Awaitable[tuple[int, Json]]]
GOLDEN = ("https://bcconnect.nhs.uk/CodeSystem/record-kind", "golden")
#: parameters whose values are not a resource's own (transport, or checked on their own)
_SKIP = frozenset({"_id", "_text", "_content", "_list", "_has", "_type", "_query", "_filter"})


@dataclass
class Served:
    """What the walk saw: every served resource by ``Type/id``, and the persons (each id → its group)."""

    resources: dict[str, Json] = field(default_factory=dict)
    person: dict[str, frozenset[str]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    #: references read outside the walked set (a sample), that answered 200
    also_readable: set[str] = field(default_factory=set)

    def same(self, ref: str) -> frozenset[str]:
        """Every ``Patient/<id>`` of the person ``ref`` names (itself when no person's)."""
        return self.person.get(ref, frozenset({ref}))


async def _all(get: Get, path: str, params: Sequence[tuple[str, str]]) -> tuple[list[str], list[str], int]:
    """Every page of a search: (match refs, include refs, status of the first page)."""
    matches: list[str] = []
    included: list[str] = []
    status, bundle = await get(path, params)
    while status == 200:
        for entry in bundle.get("entry") or ():
            res = entry.get("resource") or {}
            ref = f"{res.get('resourceType')}/{res.get('id')}"
            mode = (entry.get("search") or {}).get("mode", "match")
            if res.get("resourceType") == "OperationOutcome":
                continue
            (matches if mode == "match" else included).append(ref)
        following = next((link["url"] for link in bundle.get("link") or () if link.get("relation") == "next"), None)
        if not following:
            break
        status, bundle = await get(following, ())
    return matches, included, status


def _escaped(text: str) -> str:
    """A value as a search parameter value (``\\``, ``,``, ``|``, ``$`` escaped)."""
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")


def _instant(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _values(resource: Json) -> dict[str, list[list[tuple[str, str]]]]:
    """Per parameter, query strings (each a list of ``(name, value)`` ANDed) that must find ``resource``."""
    rows = extract_index(resource)
    out: dict[str, list[list[tuple[str, str]]]] = {}
    for param, system, code, *_ in rows.tokens:
        if code is not None:
            value = f"{_escaped(system)}|{_escaped(code)}" if system else _escaped(code)
            out.setdefault(param, []).append([(param, value)])
    for param, _norm, exact in rows.strings:
        if exact.strip():
            out.setdefault(param, []).append([(param, _escaped(exact))])
    for param, low, high in rows.dates:
        bounds = []
        if low > MIN_TIME:
            bounds.append((param, f"ge{_instant(low)}"))
        if high < MAX_TIME:
            bounds.append((param, f"lt{_instant(high)}"))
        if bounds:
            out.setdefault(param, []).append(bounds)
    for param, target_type, target_id, _url in rows.references:
        if target_type and target_id:
            out.setdefault(param, []).append([(param, f"{target_type}/{target_id}")])
    for param, _s, _c, value in rows.quantities:
        out.setdefault(param, []).append([(param, format(Decimal(repr(value)), "f"))])
    for param, uri in rows.uris:
        out.setdefault(param, []).append([(param, _escaped(uri))])
    return out


def _references(node: Any) -> Iterable[tuple[str, str]]:
    """``(element path, reference)`` of every literal reference inside a JSON value."""
    stack: list[tuple[str, Any]] = [("", node)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            ref = value.get("reference")
            if isinstance(ref, str):
                yield path, ref
            stack += [(f"{path}.{k}", v) for k, v in value.items() if k != "reference"]
        elif isinstance(value, list):
            stack += [(path, v) for v in value]


def _is_golden(resource: Json) -> bool:
    return any((t.get("system"), t.get("code")) == GOLDEN for t in (resource.get("meta") or {}).get("tag") or ())


def listed_params(rtype: str) -> set[str]:
    """The search parameters the CapabilityStatement lists for ``rtype`` (Provenance offers a few)."""
    listed = set(registry().params(rtype))
    return listed & set(PROVENANCE_SEARCH_PARAMS) if rtype == "Provenance" else listed


def _provenance_ids(served: Served) -> list[str]:
    """The Provenance of each served resource's version."""
    out = []
    for ref, body in sorted(served.resources.items()):
        rtype, rid = ref.split("/")
        version = (body.get("meta") or {}).get("versionId")
        made = provenance_id(rtype, rid, int(version)) if rtype != "Provenance" and version else None
        if made:
            out.append(made)
    return out


async def collect(get: Get, ids: dict[str, list[str]]) -> Served:
    """Read every ``Type/id`` the store holds, then the Provenance of each; keep what is served (200) and check
    ``_id`` search ⇔ read."""
    served = Served()
    await _collect(get, ids, served)
    await _collect(get, {"Provenance": _provenance_ids(served)}, served)
    for ref, body in served.resources.items():
        if ref.startswith("Patient/") and _is_golden(body):
            members = {
                link["other"]["reference"]
                for link in body.get("link") or ()
                if link.get("type") == "seealso" and "reference" in (link.get("other") or {})
            }
            group = frozenset({ref, *members})
            for member in group:
                served.person[member] = group
    return served


async def _collect(get: Get, ids: dict[str, list[str]], served: Served) -> None:
    for rtype, wanted in sorted(ids.items()):
        for rid in wanted:
            status, body = await get(f"/{rtype}/{rid}", ())
            if status == 200:
                served.resources[f"{rtype}/{rid}"] = body
            elif status not in (404, 410):
                served.violations.append(f"read {rtype}/{rid}: {status}")
        readable = [rid for rid in wanted if f"{rtype}/{rid}" in served.resources]
        for i in range(0, len(readable), 50):
            chunk = readable[i : i + 50]
            found, _, status = await _all(get, f"/{rtype}", [("_id", ",".join(chunk)), ("_count", "100")])
            missing = {f"{rtype}/{r}" for r in chunk} - set(found)
            extra = set(found) - {f"{rtype}/{r}" for r in chunk}
            if status != 200 or missing or extra:
                served.violations.append(
                    f"{rtype}?_id=…: status {status}, missing {sorted(missing)[:3]}, extra {sorted(extra)[:3]}"
                )


def check_references(served: Served, readable: Callable[[str], bool]) -> None:
    """Every literal reference in a served resource resolves."""
    for ref, body in served.resources.items():
        for path, target in _references(body):
            if target.startswith("#") or "://" in target:
                continue
            if not readable(target):
                served.violations.append(f"{ref}{path} → {target} does not resolve")


def check_patient_links(served: Served) -> None:
    """A source Patient's ``refer`` link names the golden Patient whose ``seealso`` links name it back."""
    for ref, body in served.resources.items():
        if not ref.startswith("Patient/") or _is_golden(body):
            continue
        refer = [link["other"]["reference"] for link in body.get("link") or () if link.get("type") == "refer"]
        if ref in served.person and refer != [next(r for r in served.person[ref] if _is_golden(served.resources[r]))]:
            served.violations.append(f"{ref}: refer link {refer} does not name its golden Patient")


async def check_search_values(get: Get, served: Served, rng: random.Random, per_param: int = 2) -> None:
    """Each listed parameter, for values sampled resources hold, finds them (and returns only readable ones)."""
    by_type: dict[str, list[str]] = {}
    for ref in sorted(served.resources):
        by_type.setdefault(ref.split("/")[0], []).append(ref)
    for rtype, refs in sorted(by_type.items()):
        listed = listed_params(rtype)
        candidates: dict[str, list[tuple[str, list[tuple[str, str]]]]] = {}
        for ref in refs:
            for param, queries in _values(served.resources[ref]).items():
                if param in listed and param not in _SKIP:
                    candidates.setdefault(param, []).extend((ref, q) for q in queries)
        for _param, options in sorted(candidates.items()):
            for ref, query in rng.sample(options, min(per_param, len(options))):
                found, _, status = await _all(get, f"/{rtype}", [*query, ("_count", "1000")])
                if status != 200 or ref not in found:
                    served.violations.append(f"{rtype}?{query}: status {status}, {ref} not found")
                unreadable = []
                for other in [f for f in found if f not in served.resources and f not in served.also_readable][:20]:
                    if (await get(f"/{other}", ()))[0] == 200:
                        served.also_readable.add(other)
                    else:
                        unreadable.append(other)
                if unreadable:
                    served.violations.append(f"{rtype}?{query} returned unreadable {unreadable[:3]}")


def _reference_params(source_type: str) -> list[str]:
    reg = registry()
    listed = listed_params(source_type)
    return sorted(code for code, p in reg.params(source_type).items() if p.type.value == "reference" and code in listed)


def _served_targets(served: Served, ref: str, param: str) -> set[str]:
    rows = extract_index(served.resources[ref]).references
    return {f"{t}/{i}" for p, t, i, _ in rows if p == param and t and i}


async def check_includes(get: Get, served: Served, rng: random.Random, samples: int = 2) -> None:
    """``_include`` returns exactly the served targets; ``_revinclude`` exactly the served referrers."""
    types = sorted({r.split("/")[0] for r in served.resources})
    by_type = {t: sorted(r for r in served.resources if r.startswith(f"{t}/")) for t in types}
    for source_type in types:
        for param in _reference_params(source_type):
            holders = [r for r in by_type[source_type] if _served_targets(served, r, param)]
            for ref in rng.sample(holders, min(samples, len(holders))):
                expected = _served_targets(served, ref, param) & set(served.resources)
                _, included, status = await _all(
                    get, f"/{source_type}", [("_id", ref.split("/")[1]), ("_include", f"{source_type}:{param}")]
                )
                if status != 200 or set(included) != expected:
                    served.violations.append(
                        f"{ref} _include={source_type}:{param}: got {sorted(included)[:4]},"
                        f" served refs {sorted(expected)[:4]}"
                    )
                # revinclude from one target of this reference: every served referrer of its person, no other
                target = sorted(_served_targets(served, ref, param))[0]
                if target not in served.resources or (source_type == "Provenance" and param != "target"):
                    continue
                # Patient.link is matched as served; every other reference to any id of a person is to the person
                literal = (source_type, param) == ("Patient", "link")
                group = frozenset({target}) if literal else served.same(target)
                want = {r for r in by_type[source_type] if _served_targets(served, r, param) & group}
                _, included, status = await _all(
                    get,
                    f"/{target.split('/')[0]}",
                    [("_id", target.split("/")[1]), ("_revinclude", f"{source_type}:{param}")],
                )
                got = set(included)
                if status != 200 or got != want:
                    served.violations.append(
                        f"{target} _revinclude={source_type}:{param}: {len(got)} included, {len(want)} served referrers"
                        f" (missing {sorted(want - got)[:2]}, extra {sorted(got - want)[:2]})"
                    )


async def check_chains(get: Get, served: Served, rng: random.Random, samples: int = 4) -> None:
    """``S?param:Patient.identifier=v`` finds the resources whose served reference leads to a holder of ``v``."""
    patients = [r for r in served.resources if r.startswith("Patient/")]
    for source_type in ("Encounter", "Condition", "Observation"):
        sources = sorted(r for r in served.resources if r.startswith(f"{source_type}/"))
        for person in rng.sample(patients, min(samples, len(patients))):
            idents = [i for i in served.resources[person].get("identifier") or () if i.get("system") and i.get("value")]
            if not idents or not sources:
                continue
            ident = idents[0]
            holders = {
                p
                for p in patients
                if any(
                    (i.get("system"), i.get("value")) == (ident["system"], ident["value"])
                    for i in served.resources[p].get("identifier") or ()
                )
            }
            group = set().union(*(served.same(h) for h in holders))
            expected = {r for r in sources if _served_targets(served, r, "subject") & group}
            found, _, status = await _all(
                get,
                f"/{source_type}",
                [("subject:Patient.identifier", f"{ident['system']}|{ident['value']}"), ("_count", "1000")],
            )
            if status != 200 or set(found) != expected:
                served.violations.append(
                    f"{source_type}?subject:Patient.identifier={ident['value']}: {len(found)} found,"
                    f" {len(expected)} served"
                )


async def check_whole_person(get: Get, served: Served, rng: random.Random, samples: int = 3) -> None:
    """From any Patient id of a person, ``$everything`` and ``patient=`` give the same whole record."""
    persons = sorted(set(served.person.values()), key=lambda g: sorted(g))
    for group in rng.sample(persons, min(samples, len(persons))):
        answers: dict[str, tuple[set[str], set[str]]] = {}
        for pid in sorted(group):
            everything, _, status = await _all(get, f"/{pid}/$everything", [("_count", "1000")])
            encounters, _, status2 = await _all(get, "/Encounter", [("patient", pid), ("_count", "1000")])
            if status != 200 or status2 != 200:
                served.violations.append(f"{pid}: $everything {status}, Encounter?patient= {status2}")
            answers[pid] = (set(everything), set(encounters))
        expected_encounters = {
            r for r in served.resources if r.startswith("Encounter/") and _served_targets(served, r, "subject") & group
        }
        for pid, (everything, encounters) in answers.items():
            if encounters != expected_encounters:
                served.violations.append(
                    f"Encounter?patient={pid}: {len(encounters)} found,"
                    f" {len(expected_encounters)} served for the person"
                )
            if not expected_encounters <= everything:
                served.violations.append(f"{pid}/$everything lacks {sorted(expected_encounters - everything)[:2]}")
        if len({frozenset(e) for e, _ in answers.values()}) > 1:
            served.violations.append(f"$everything differs between the ids of one person {sorted(group)}")


async def walk(get: Get, ids: dict[str, list[str]], *, seed: int = 7) -> list[str]:
    """Run every check; the violations found (empty when every invariant holds)."""
    rng = random.Random(seed)
    served = await collect(get, ids)

    async def readable_ref(ref: str) -> bool:
        return ref in served.resources or (await get(f"/{ref}", ()))[0] == 200

    unresolved = set()
    for body in served.resources.values():
        for _, target in _references(body):
            if not target.startswith("#") and "://" not in target and target not in served.resources:
                unresolved.add(target)
    resolved = {t for t in sorted(unresolved) if await readable_ref(t)}
    check_references(served, lambda t: t in served.resources or t in resolved)
    check_patient_links(served)
    await check_search_values(get, served, rng)
    await check_includes(get, served, rng)
    await check_chains(get, served, rng)
    await check_whole_person(get, served, rng)
    return served.violations


def parse(body: bytes) -> Json:
    """JSON bytes as a dict (an empty dict for an empty body)."""
    if not body:
        return {}
    found: Json = orjson.loads(body)
    return found
