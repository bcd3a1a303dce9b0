"""The view's batch read for a Bulk Data export: many resources of one type, screened and person-centred, fast.

A page of an export is what the same caller's search would show, but read for throughput:

- rows come by an index range (``resources``' primary key, or a Group's members through the patient
  compartment index), never by sorting a whole type;
- the screen is the caller's :class:`~bcconnect.security.Screen`, applied to the whole page at once: objection
  and ``patient/`` confinement by the row's compartment, scopes by type, and sensitivity from
  :func:`~bcconnect.store.sensitive_rows` — the label and context rules of :meth:`Visibility.rows`, found once
  per type from the indexes instead of a correlated check per row (a test proves the two agree on every
  resource of a world with sensitive records);
- a row that needs no redaction is served from its stored bytes: its Patient references re-pointed to the
  golden Patient by a byte substitution that gives exactly what :func:`person_centred` gives by parsing (a test
  compares the two on every resource). Rows of a restricted person, golden Patients and any reference in an
  unusual shape take the parsed path (:meth:`Screen.apply`, :func:`present_goldens`, :func:`person_centred`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from bcconnect.identity import Rules
from bcconnect.security import Screen
from bcconnect.store import (
    ExportRow,
    SensitiveRows,
    StoredResource,
    Tx,
    Visibility,
    alias_members,
    canonical_ids,
    current_t,
    export_rows_by_id,
)
from bcconnect.view._person import SOURCE_REFERENCE_EXTENSION, is_golden, person_centred, present_goldens

#: a Patient reference as stored JSON writes it (orjson: no spaces), and around it, when it is a whole Reference
#: object (``{"reference": …}`` and nothing else), the object's braces
_PATIENT_REFERENCE: Final = re.compile(rb'"reference":"Patient/([^"/\\]+)"')
_ANY_PATIENT_REFERENCE: Final = re.compile(rb'"reference":"Patient/([^"/\\]+)"(\})?')
_EXTENSION_HEAD: Final = b'","extension":[{"url":"' + SOURCE_REFERENCE_EXTENSION.encode() + b'","valueReference":'


def repoint_bytes(body: bytes, person_of: Mapping[bytes, bytes]) -> bytes | None:
    """``body`` with every Patient reference to a person's source record (``person_of``: source id → golden id,
    as bytes) pointing at the golden Patient, the stored reference kept in the source-reference extension —
    byte for byte what :func:`person_centred` writes — or None when a reference to re-point is not a bare
    ``{"reference": …}`` object (the caller parses). One pass over the body.

    >>> repoint_bytes(b'{"subject":{"reference":"Patient/s1"},"x":1}', {b"s1": b"g1"})[:58]
    b'{"subject":{"reference":"Patient/g1","extension":[{"url":"'
    >>> repoint_bytes(b'{"subject":{"reference":"Patient/s1","display":"A"}}', {b"s1": b"g1"}) is None
    True
    >>> body = b'{"subject":{"reference":"Patient/g1"}}'
    >>> repoint_bytes(body, {b"s1": b"g1"}) is body
    True
    """
    done = 0
    unusual = False

    def swap(match: re.Match[bytes]) -> bytes:
        nonlocal done, unusual
        source = match.group(1)
        person = person_of.get(source)
        if person is None:
            return match.group(0)
        # the pattern starts with a literal (so the engine searches for it fast); the opening brace is checked here
        if match.group(2) is None or body[match.start() - 1 : match.start()] != b"{":
            unusual = True  # a Reference with more than ``reference`` in it: re-pointed by the parsed path
            return match.group(0)
        done += 1
        return b'"reference":"Patient/' + person + _EXTENSION_HEAD + b'{"reference":"Patient/' + source + b'"}}]}'

    out = _ANY_PATIENT_REFERENCE.sub(swap, body)
    if unusual:
        return None
    return out if done else body


def owner_of(row: ExportRow) -> str | None:
    """The Patient a row belongs to as the store's screen decides it (its own id for a Patient)."""
    resource = row.resource
    return resource.id if resource.resource_type == "Patient" else resource.compartment


def _visible(row: ExportRow, vis: Visibility, sensitive: SensitiveRows) -> bool:
    """Whether the screen lets the caller see the row: the store predicate's rules (compartment, type,
    sensitivity with its context), decided from the row and the type's sensitivity sets."""
    resource = row.resource
    if resource.body is None or not vis.allows_type(resource.resource_type):
        return False
    owner = owner_of(row)
    if owner is not None and owner in vis.hidden_patients:
        return False
    if vis.only_patients is not None and owner is not None and owner not in vis.only_patients:
        return False
    return not sensitive.hides(row)


@dataclass(frozen=True, slots=True)
class BulkItem:
    """One resource as the export writes it, with the person it belongs to (None: no one's)."""

    resource: StoredResource
    person: str | None


def bulk_items(
    tx: Tx, screen: Screen, rows: Sequence[ExportRow], sensitive: SensitiveRows, rules: Rules
) -> list[BulkItem]:
    """The rows (one type) the caller may see, as served (see the module docstring), in the order given.

    Patient rows: only a person's own Patient (the golden one, or a Patient that belongs to no person); a
    trust's source Patient is left out, as is a golden id retired by a merge.
    """
    vis = screen.visibility
    kept = [row for row in rows if _visible(row, vis, sensitive)]
    wanted: set[str] = set()
    for row in kept:
        body = row.resource.body
        assert body is not None
        owner = owner_of(row)
        if owner is not None:
            wanted.add(owner)
        if b'"Patient/' in body:
            wanted.update(m.decode() for m in _PATIENT_REFERENCE.findall(body))
    canon = canonical_ids(tx, "Patient", wanted) if wanted else {}
    person_of = {i: c for i, c in canon.items() if i != c}
    person_of_bytes = {i.encode(): c.encode() for i, c in person_of.items()}
    fast: dict[int, StoredResource] = {}
    slow: list[tuple[int, StoredResource]] = []
    for position, row in enumerate(kept):
        resource = row.resource
        body = resource.body
        assert body is not None
        if resource.resource_type == "Patient":
            if resource.id in person_of or b'"replaced-by"' in body:
                continue  # a trust's record of a person, or a golden id retired by a merge
            slow.append((position, resource))
            continue
        if vis.is_restricted(owner_of(row)) or (resource.compartment is None and b'"Patient/' in body):
            # a restricted person's whereabouts are redacted; a row without a stored owner is judged by its body
            slow.append((position, resource))
            continue
        served = repoint_bytes(body, person_of_bytes)
        if served is None:
            slow.append((position, resource))
        else:
            fast[position] = resource if served is body else _with_body(resource, served)
    if slow:
        shown = screen.apply([r for _, r in slow], expected_clean=True).resources
        by_key = {(r.resource_type, r.id): r for r in shown}
        parsed_rows = [(p, by_key[(r.resource_type, r.id)]) for p, r in slow if (r.resource_type, r.id) in by_key]
        if parsed_rows:
            composed = _present_goldens(tx, screen, [r for _, r in parsed_rows], rules, sensitive)
            served_rows = person_centred(tx, composed)
            by_key = {(r.resource_type, r.id): r for r in served_rows}
            for position, resource in parsed_rows:
                found = by_key.get((resource.resource_type, resource.id))
                if found is not None:
                    fast[position] = found
    out: list[BulkItem] = []
    for position in sorted(fast):
        resource = fast[position]
        owner = resource.id if resource.resource_type == "Patient" else resource.compartment
        out.append(BulkItem(resource, None if owner is None else canon.get(owner, owner)))
    return out


def _present_goldens(
    tx: Tx, screen: Screen, items: list[StoredResource], rules: Rules, sensitive: SensitiveRows
) -> list[StoredResource]:
    """:func:`present_goldens` for a page of Patients: the sources of every golden Patient read at once and
    screened as the page is (``sensitive`` is the Patient type's), so a person whose sources are all visible
    costs no query of its own (the rest are composed one by one, as a single read composes them)."""
    goldens = [r for r in items if is_golden(r)]
    if not goldens:
        return items
    members = alias_members(tx, "Patient", [g.id for g in goldens])
    source_ids = sorted({m for g in goldens for m in members.get(g.id, ()) if m != g.id})
    current = export_rows_by_id(tx, "Patient", source_ids, current_t(tx))
    visible = {r.resource.id for r in current if _visible(r, screen.visibility, sensitive)}
    live = {r.resource.id for r in current}
    out: list[StoredResource] = []
    for item in items:
        own = [m for m in members.get(item.id, ()) if m != item.id]
        if not is_golden(item) or (own and all(m in visible for m in own if m in live)):
            out.append(item)  # as stored, as present_golden gives it when every source is visible
            continue
        out += present_goldens(tx, [item], rules, lambda found: screen.apply(found).resources)
    return out


def _with_body(resource: StoredResource, body: bytes) -> StoredResource:
    return StoredResource(
        resource.resource_type,
        resource.id,
        resource.version,
        resource.last_updated,
        resource.deleted,
        body,
        resource.t,
        resource.compartment,
    )
