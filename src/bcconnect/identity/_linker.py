"""Linking source Patients to persons inside the ingest transaction, and merges from the feeds.

:func:`link_patients` is called by the ingest pipeline for the Patients of one page, in the page's transaction,
so links commit with the records. Each record gets exactly one MATCH (to the person it joins, or to the person
it founds); POSSIBLE_MATCH / POSSIBLE_DUPLICATE links to other persons open review items. MANUAL links are a
steward's and are never overwritten by the rules. A merge (HL7 A40 or ``Patient.link`` replaced-by) turns the
retired record's links into one REDIRECT to the surviving record's person and remembers the prior links, so an
unmerge can restore them. Clinical records are never rewritten: only links move.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bcconnect.errors import ConflictError
from bcconnect.identity import _db
from bcconnect.identity._blocking import block_keys
from bcconnect.identity._decide import JOIN_BLOCKERS, LinkSource, LinkState, decide_pair
from bcconnect.identity._evaluate import new_person_id
from bcconnect.identity._normalise import Demographics, demographics
from bcconnect.identity._plan import PersonDecision, plan_link
from bcconnect.identity._rules import Rules, load_rules
from bcconnect.store import Tx

_default_rules: Rules | None = None


def default_rules() -> Rules:
    """The packaged rules, read once per process."""
    global _default_rules
    if _default_rules is None:
        _default_rules = load_rules()
    return _default_rules


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    """Where one source record ended up: its person, how (state, rule, score) and whether review is open."""

    patient_id: str
    person_id: str
    state: LinkState
    rule: str
    score: float | None
    review: bool


def _source_key(patient: Mapping[str, Any]) -> str | None:
    source = (patient.get("meta") or {}).get("source")
    return str(source).rstrip("/").rsplit("/", 1)[-1] if source else None


def link_patients(
    tx: Tx, patients: Sequence[Mapping[str, Any]], *, ods_code: str, rules: Rules | None = None
) -> list[LinkOutcome]:
    """Link each source Patient of a page (already written by the store) in the caller's transaction."""
    rules = rules or default_rules()
    records = [demographics(p, ods_code=ods_code) for p in patients]
    keyed = [(r, _keys(r, rules)) for r in records]
    _db.lock_keys(tx, (k for _, keys in keyed for k in keys))
    outcomes = []
    for patient, (record, keys) in zip(patients, keyed, strict=True):
        now = _db.utc_now()
        _db.save_record(tx, record, keys, source_key=_source_key(patient), now=now)
        replaces = [
            str(link["other"]["reference"]).split("/", 1)[1]
            for link in patient.get("link") or ()
            if link.get("type") == "replaces"
            and str((link.get("other") or {}).get("reference", "")).startswith("Patient/")
        ]
        outcomes.append(_link_one(tx, record, rules, now=now))
        for retired in replaces:
            merge(tx, retired, record.patient_id, origin="patient-link", rules=rules)
    return outcomes


def relink_records(tx: Tx, patient_ids: Sequence[str], *, rules: Rules | None = None) -> list[LinkOutcome]:
    """Decide stored records again under ``rules``, as if each trust had sent them again.

    For a rules or weights change: each record's blocking keys are rebuilt and its link re-decided by the same
    path an updated record takes (a steward's link or merge stands; persons the record connects are joined;
    review items that no longer apply are superseded). Unknown ids are skipped.
    """
    rules = rules or default_rules()
    keyed = [(r, _keys(r, rules)) for r in _db.load_records(tx, patient_ids)]
    _db.lock_keys(tx, (k for _, keys in keyed for k in keys))
    outcomes = []
    for record, keys in keyed:
        _db.replace_keys(tx, record.patient_id, keys)
        outcomes.append(_link_one(tx, record, rules, now=_db.utc_now()))
    return outcomes


def _keys(record: Demographics, rules: Rules) -> list[str]:
    # the rules' blocking keys, plus the trust's MRN: the same source record under another id is a candidate
    keys = block_keys(record, rules.blocking)
    if record.mrn and record.ods_code:
        keys.append(f"m:{record.ods_code}:{record.mrn}")
    return keys


def _link_one(tx: Tx, record: Demographics, rules: Rules, *, now: str) -> LinkOutcome:
    pid = record.patient_id
    links = _db.links_of(tx, pid)
    # a merged record always holds a REDIRECT link: only then (or when a merge arrives) look the merge up
    redirected = any(lk.state is LinkState.REDIRECT for lk in links)
    active_merge = (
        tx.query_one(
            "SELECT target_patient_id, origin FROM identity_merge WHERE patient_id = ? AND status = 'active'", (pid,)
        )
        if redirected or record.replaced_by
        else None
    )
    if record.replaced_by:
        if active_merge is None or active_merge[0] != record.replaced_by:
            if active_merge is not None:
                unmerge(tx, pid, actor=_db.SYSTEM_ACTOR)
            merge(tx, pid, record.replaced_by, origin="patient-link", rules=rules)
        return _outcome(tx, pid)
    if active_merge is not None:
        if active_merge[1] != "patient-link":
            return _outcome(tx, pid)  # an A40 or a steward's merge stands until unmerged explicitly
        unmerge(tx, pid, actor=_db.SYSTEM_ACTOR)  # the feed withdrew its replaced-by link
        links = _db.links_of(tx, pid)
    current = next((lk for lk in links if lk.state is LinkState.MATCH), None)
    if current is not None and current.source is LinkSource.MANUAL:
        return _outcome(tx, pid)
    rejected = {lk.person_id for lk in links if lk.state is LinkState.NO_MATCH and lk.source is LinkSource.MANUAL}
    found = _db.candidates(tx, _keys(record, rules), exclude=pid)
    same_person = next(
        (
            c.person_id
            for c in found
            if record.mrn and (c.record.ods_code, c.record.mrn) == (record.ods_code, record.mrn)
        ),
        None,
    )
    plan = plan_link(record, [c for c in found if c.person_id not in rejected], rules)
    if same_person is not None:
        person, rule, score = same_person, "same-trust-mrn", None
    elif plan.match is not None:
        person, rule, score = plan.match.person_id, plan.match.decision.rule, plan.match.decision.score
    elif current is not None and current.person_id == new_person_id(pid):
        person, rule, score = current.person_id, "new-person", None
    else:
        person, rule, score = new_person_id(pid), "new-person", None
    if person == new_person_id(pid):
        _db.ensure_person(tx, person, founded_by=pid, now=now)  # a person joined already exists
    if current is None or current.person_id != person or current.rule != rule:
        if current is not None and current.person_id != person:
            _db.remove_link(tx, current, actor=_db.SYSTEM_ACTOR, reason=f"relinked by {rule}", now=now)
        _db.set_link(
            tx, _db.Link(pid, person, LinkState.MATCH, LinkSource.AUTO, score, rule, rules.version, now),
            actor=_db.SYSTEM_ACTOR,
        )  # fmt: skip
        if links:  # a record with no links before cannot be a merge target yet
            _follow_redirects(tx, pid, person, now=now)
    flagged = {p.person_id: (p, LinkState.POSSIBLE_MATCH) for p in plan.possible}
    flagged.update({p.person_id: (p, LinkState.POSSIBLE_DUPLICATE) for p in plan.duplicates})
    flagged.pop(person, None)
    if plan.match is not None and plan.match.person_id == person:
        # this record MATCHes other persons too: the evidence says they are one person (whatever order the
        # records came in), so they are joined unless that would break a veto or a steward's decision
        for dup in plan.duplicates:
            if not (plan.match.decision.weak or dup.decision.weak) and _absorb(
                tx, person, dup.person_id, via=pid, rules=rules
            ):
                flagged.pop(dup.person_id, None)
    flags = (LinkState.POSSIBLE_MATCH, LinkState.POSSIBLE_DUPLICATE)
    for stale in links:
        if stale.source is LinkSource.AUTO and stale.state in flags and stale.person_id not in flagged:
            _db.remove_link(tx, stale, actor=_db.SYSTEM_ACTOR, reason="no longer a candidate", now=now)
            _close_reviews(tx, pid, stale.person_id, status="superseded", now=now)
    for other, (decision, state) in flagged.items():
        _flag(tx, pid, other, decision, state, rules, now=now)
    return LinkOutcome(pid, person, LinkState.MATCH, rule, score, bool(flagged))


def _absorb(tx: Tx, into: str, other: str, *, via: str, rules: Rules) -> bool:
    """Join person ``other`` into ``into``: its AUTO records move, its reviews follow; False when unsafe.

    Unsafe: a steward's link in ``other``, a steward's NO_MATCH between a record and ``into``, two different
    verified NHS numbers, or a pair of records (one from each) that a guard keeps from linking automatically.
    The join is recorded in ``identity_person_merge`` so the absorbed person id redirects to the survivor.
    """
    if into == other:
        return False
    now = _db.utc_now()
    members = _db.links_to(tx, other, (LinkState.MATCH, LinkState.REDIRECT))
    if not members or any(lk.source is LinkSource.MANUAL for lk in members):
        return False
    kept = _db.links_to(tx, into, (LinkState.MATCH, LinkState.REDIRECT))
    moving = _db.load_records(tx, [lk.patient_id for lk in members])
    staying = _db.load_records(tx, [lk.patient_id for lk in kept])
    if len({r.nhs_number for r in (*moving, *staying) if r.nhs_verified}) > 1:
        return False
    for a in moving:
        for b in staying:
            if decide_pair(a, b, rules).rule in JOIN_BLOCKERS:
                return False
    for lk in members:
        if any(x.person_id == into and x.state is LinkState.NO_MATCH for x in _db.links_of(tx, lk.patient_id)):
            return False  # a steward said this record is not that person
    for lk in members:
        if lk.state is not LinkState.MATCH:
            continue  # REDIRECTs follow their surviving record below
        for old in _db.links_of(tx, lk.patient_id):
            if old.state is LinkState.MATCH or old.person_id == into:
                _db.remove_link(tx, old, actor=_db.SYSTEM_ACTOR, reason=f"persons joined via {via}", now=now)
                _close_reviews(tx, lk.patient_id, old.person_id, status="resolved", now=now)
        _db.set_link(tx, _db.Link(lk.patient_id, into, LinkState.MATCH, LinkSource.AUTO, lk.score,
                                  "person-join", rules.version, now), actor=_db.SYSTEM_ACTOR,
                     reason=f"person {other} joined into {into} via {via}")  # fmt: skip
        _follow_redirects(tx, lk.patient_id, into, now=now)
    _follow_person(tx, other, into, now=now)
    _record_person_merge(tx, other, into, via=via, rule="person-join", rules=rules, now=now)
    return True


def _record_person_merge(tx: Tx, other: str, into: str, *, via: str, rule: str, rules: Rules, now: str) -> None:
    """Remember that person ``other`` now lives on as ``into`` (its id redirects there)."""
    tx.execute(
        "INSERT INTO identity_person_merge (absorbed_person_id, into_person_id, via_patient_id, rule, rules_version, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (absorbed_person_id) DO UPDATE SET "
        "into_person_id = excluded.into_person_id, via_patient_id = excluded.via_patient_id, "
        "rule = excluded.rule, rules_version = excluded.rules_version, created_at = excluded.created_at",
        (other, into, via, rule, rules.version, now),
    )
    # persons absorbed into ``other`` earlier now redirect straight to the survivor (no chains to walk)
    tx.execute("UPDATE identity_person_merge SET into_person_id = ? WHERE into_person_id = ?", (into, other))
    # a person that comes back (a split) is no longer absorbed
    tx.execute("DELETE FROM identity_person_merge WHERE absorbed_person_id = ?", (into,))


def _follow_person(tx: Tx, other: str, into: str, *, now: str) -> None:
    """Review items and flags that pointed at the absorbed person point at the survivor, or close.

    A review asking "is record R person ``other``?" now asks about ``into``; when R is already in ``into``
    (or ``into`` already has that question open) the item is closed as ``resolved`` by the join.
    """
    members = {lk.patient_id for lk in _db.links_to(tx, into, (LinkState.MATCH, LinkState.REDIRECT))}
    flags = (LinkState.POSSIBLE_MATCH, LinkState.POSSIBLE_DUPLICATE)
    for link in _db.links_to(tx, other, flags):
        _db.remove_link(tx, link, actor=_db.SYSTEM_ACTOR, reason=f"person {other} joined into {into}", now=now)
        already = any(x.person_id == into for x in _db.links_of(tx, link.patient_id))
        if link.patient_id not in members and not already:
            _db.set_link(tx, _db.Link(link.patient_id, into, link.state, link.source, link.score, link.rule,
                                      link.rules_version, now), actor=_db.SYSTEM_ACTOR,
                         reason=f"person {other} joined into {into}")  # fmt: skip
    rows = tx.query(
        "SELECT review_id, patient_id FROM identity_review WHERE person_id = ? AND status = 'open'", (other,)
    )
    for review_id, patient_id in rows:
        duplicate = tx.query_one(
            "SELECT 1 FROM identity_review WHERE patient_id = ? AND person_id = ? AND status = 'open'",
            (patient_id, into),
        )
        if str(patient_id) in members or duplicate is not None:
            tx.execute(
                "UPDATE identity_review SET status = 'resolved', decided_at = ?, decided_by = ?, "
                "note = ? WHERE review_id = ?",
                (now, _db.SYSTEM_ACTOR, f"person {other} joined into {into}", review_id),
            )
        else:
            tx.execute("UPDATE identity_review SET person_id = ? WHERE review_id = ?", (into, review_id))
    # questions about records now inside ``into`` asking whether they are ``into`` are answered
    for patient_id in members:
        _close_reviews(tx, patient_id, into, status="resolved", now=now)


def _flag(tx: Tx, pid: str, person: str, p: PersonDecision, state: LinkState, rules: Rules, *, now: str) -> None:
    link = _db.Link(pid, person, state, LinkSource.AUTO, p.decision.score, p.decision.rule, rules.version, now)
    _db.set_link(tx, link, actor=_db.SYSTEM_ACTOR)
    exists = tx.query_one(
        "SELECT review_id FROM identity_review WHERE patient_id = ? AND person_id = ? AND status = 'open'",
        (pid, person),
    )
    if exists is None:
        tx.execute(
            "INSERT INTO identity_review (review_id, kind, patient_id, person_id, via_patient_id, score, rule, "
            "status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?)",
            (str(uuid.uuid4()), state.value, pid, person, p.via_patient_id, p.decision.score, p.decision.rule, now),
        )


def _close_reviews(tx: Tx, pid: str, person: str, *, status: str, now: str, actor: str | None = None) -> None:
    tx.execute(
        "UPDATE identity_review SET status = ?, decided_at = ?, decided_by = ? "
        "WHERE patient_id = ? AND person_id = ? AND status = 'open'",
        (status, now, actor or _db.SYSTEM_ACTOR, pid, person),
    )


def _outcome(tx: Tx, pid: str) -> LinkOutcome:
    links = _db.links_of(tx, pid)
    main = next((lk for lk in links if lk.state in (LinkState.MATCH, LinkState.REDIRECT)), None)
    if main is None:
        raise ConflictError(f"source record {pid} has no MATCH or REDIRECT link after linking")
    review = any(lk.state in (LinkState.POSSIBLE_MATCH, LinkState.POSSIBLE_DUPLICATE) for lk in links)
    return LinkOutcome(pid, main.person_id, main.state, main.rule, main.score, review)


def _follow_redirects(tx: Tx, target_pid: str, person: str, *, now: str) -> None:
    """Records merged into ``target_pid`` follow it to its new person."""
    rows = tx.query(
        "SELECT patient_id FROM identity_merge WHERE target_patient_id = ? AND status = 'active'", (target_pid,)
    )
    for (retired,) in rows:
        for link in _db.links_of(tx, str(retired)):
            if link.state is LinkState.REDIRECT and link.person_id != person:
                _db.remove_link(tx, link, actor=_db.SYSTEM_ACTOR, reason="merge target relinked", now=now)
                _db.set_link(tx, _db.Link(link.patient_id, person, LinkState.REDIRECT, link.source, None, link.rule,
                                          link.rules_version, now), actor=_db.SYSTEM_ACTOR)  # fmt: skip


def merge(
    tx: Tx, patient_id: str, target_patient_id: str, *, origin: str, actor: str = _db.SYSTEM_ACTOR,
    rules: Rules | None = None,
) -> str:  # fmt: skip
    """Merge source record ``patient_id`` into ``target_patient_id`` (A40, replaced-by, or a steward).

    The retired record's links are saved and replaced by one REDIRECT to the target's person; returns that
    person's id. A target not linked yet founds its person now (it may arrive in a later page).
    """
    rules = rules or default_rules()
    now = _db.utc_now()
    if patient_id == target_patient_id:
        raise ConflictError(f"cannot merge Patient/{patient_id} into itself")
    active = tx.query_one(
        "SELECT target_patient_id FROM identity_merge WHERE patient_id = ? AND status = 'active'", (patient_id,)
    )
    if active is not None and active[0] == target_patient_id:
        return _db.matched_person(tx, patient_id) or new_person_id(target_patient_id)  # a resent A40
    if active is not None:
        unmerge(tx, patient_id, actor=actor)
    person = _db.matched_person(tx, target_patient_id)
    if person is None:
        person = new_person_id(target_patient_id)
        _db.ensure_person(tx, person, founded_by=target_patient_id, now=now)
        _db.set_link(tx, _db.Link(target_patient_id, person, LinkState.MATCH, LinkSource.AUTO, None,
                                  "merge-target", rules.version, now), actor=actor)  # fmt: skip
    prior = _db.links_of(tx, patient_id)
    saved = json.dumps([
        [lk.person_id, lk.state.value, lk.source.value, lk.score, lk.rule, lk.rules_version] for lk in prior
    ])  # fmt: skip
    for link in prior:
        _db.remove_link(tx, link, actor=actor, reason=f"merged ({origin})", now=now)
        _close_reviews(tx, patient_id, link.person_id, status="superseded", now=now)
    source = LinkSource.AUTO if actor == _db.SYSTEM_ACTOR else LinkSource.MANUAL
    _db.set_link(tx, _db.Link(patient_id, person, LinkState.REDIRECT, source, None, f"merge-{origin}",
                              rules.version, now), actor=actor)  # fmt: skip
    tx.execute(
        "INSERT INTO identity_merge (merge_id, patient_id, target_patient_id, origin, prior_links, status, actor, "
        "created_at) VALUES (?, ?, ?, ?, ?, 'active', ?, ?)",
        (str(uuid.uuid4()), patient_id, target_patient_id, origin, saved, actor, now),
    )
    _follow_redirects(tx, patient_id, person, now=now)
    for old in {lk.person_id for lk in prior if lk.state is LinkState.MATCH and lk.person_id != person}:
        if not _db.links_to(tx, old):
            # the merge emptied the retired record's person: what pointed at it now points at the survivor
            _follow_person(tx, old, person, now=now)
            _record_person_merge(tx, old, person, via=patient_id, rule=f"merge-{origin}", rules=rules, now=now)
    return person


def unmerge(tx: Tx, patient_id: str, *, actor: str) -> str:
    """Undo the active merge of a record: its prior links come back; returns the person it is MATCHed to."""
    now = _db.utc_now()
    row = tx.query_one(
        "SELECT merge_id, prior_links FROM identity_merge WHERE patient_id = ? AND status = 'active'", (patient_id,)
    )
    if row is None:
        raise ConflictError(f"Patient/{patient_id} has no active merge to undo")
    for link in _db.links_of(tx, patient_id):
        _db.remove_link(tx, link, actor=actor, reason="unmerge", now=now)
    restored_person = new_person_id(patient_id)
    for person_id, state, source, score, rule, version in json.loads(row[1]):
        restored = _db.Link(patient_id, person_id, LinkState(state), LinkSource(source), score, rule, version, now)
        _db.set_link(tx, restored, actor=actor, reason="restored by unmerge")
        if restored.state is LinkState.MATCH:
            restored_person = person_id
    if not any(lk.state is LinkState.MATCH for lk in _db.links_of(tx, patient_id)):
        _db.ensure_person(tx, restored_person, founded_by=patient_id, now=now)
        _db.set_link(tx, _db.Link(patient_id, restored_person, LinkState.MATCH, LinkSource.AUTO, None,
                                  "new-person", "unmerge", now), actor=actor)  # fmt: skip
    tx.execute(
        "UPDATE identity_merge SET status = 'undone', undone_at = ?, undone_by = ? WHERE merge_id = ?",
        (now, actor, row[0]),
    )
    _follow_redirects(tx, patient_id, restored_person, now=now)
    return restored_person
