"""Data stewardship: the review queue, accept/reject decisions, explanations, identifiers, evaluation.

Every decision is a MANUAL link (never overwritten by the rules) plus a closed review item naming who decided,
when, and the note they gave; the link history keeps the before and after.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bcconnect.errors import ConflictError, ResourceNotFound
from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM, PERSON_ID_SYSTEM, mrn_system
from bcconnect.identity import _db
from bcconnect.identity._decide import LinkSource, LinkState, PairDecision, decide_pair, explain_pair
from bcconnect.identity._evaluate import Metrics, QualityReport, pairwise_metrics, quality_report
from bcconnect.identity._fs import Contribution
from bcconnect.identity._linker import _close_reviews, _follow_redirects, default_rules
from bcconnect.identity._normalise import Demographics
from bcconnect.identity._rules import Rules
from bcconnect.store import Tx


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One open (or decided) question for a steward: is this record that person?"""

    review_id: str
    kind: str
    patient_id: str
    person_id: str
    via_patient_id: str | None
    score: float | None
    rule: str
    status: str
    created_at: str
    decided_by: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Comparison:
    """A record beside another, with the pair decision and each field's contribution."""

    left: Demographics
    right: Demographics
    decision: PairDecision
    contributions: tuple[Contribution, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a record is where it is: its links, their history, and a comparison with each record it is with."""

    record: Demographics
    links: tuple[_db.Link, ...]
    history: tuple[tuple[str, ...], ...]  # (at, action, person, state, rule, actor)
    comparisons: tuple[Comparison, ...]


_REVIEW_COLUMNS = (
    "review_id, kind, patient_id, person_id, via_patient_id, score, rule, status, created_at, decided_by, note"
)


def _review(row: tuple[object, ...]) -> ReviewItem:
    return ReviewItem(
        str(row[0]), str(row[1]), str(row[2]), str(row[3]), None if row[4] is None else str(row[4]),
        None if row[5] is None else float(str(row[5])), str(row[6]), str(row[7]), str(row[8]),
        None if row[9] is None else str(row[9]), None if row[10] is None else str(row[10]),
    )  # fmt: skip


def list_reviews(tx: Tx, *, status: str = "open", limit: int = 100) -> list[ReviewItem]:
    """Review items in a status, oldest first."""
    rows = tx.query(
        f"SELECT {_REVIEW_COLUMNS} FROM identity_review "  # noqa: S608 - constant columns
        "WHERE status = ? ORDER BY created_at, review_id LIMIT ?",
        (status, limit),
    )
    return [_review(r) for r in rows]


def count_reviews(tx: Tx, *, status: str = "open") -> int:
    """How many review items are in a status."""
    row = tx.query_one("SELECT COUNT(*) FROM identity_review WHERE status = ?", (status,))
    return int(row[0]) if row else 0


def count_links(tx: Tx) -> dict[tuple[str, str], int]:
    """How many current links there are, by (rule, state): what the identity metrics report."""
    rows = tx.query("SELECT rule, state, COUNT(*) FROM identity_link GROUP BY rule, state")
    return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}


def get_review(tx: Tx, review_id: str) -> ReviewItem:
    """One review item; ResourceNotFound when there is none with that id."""
    sql = f"SELECT {_REVIEW_COLUMNS} FROM identity_review WHERE review_id = ?"  # noqa: S608 - constant columns
    row = tx.query_one(sql, (review_id,))
    if row is None:
        raise ResourceNotFound(f"no review item {review_id}")
    return _review(row)


def compare_with_person(tx: Tx, record: Demographics, person_id: str, rules: Rules | None = None) -> list[Comparison]:
    """The record side by side with each record of a person (for review and explanation)."""
    rules = rules or default_rules()
    members = _db.load_records(tx, (lk.patient_id for lk in _db.links_to(tx, person_id)))
    out = []
    for other in members:
        if other.patient_id != record.patient_id:
            decision, contributions = explain_pair(record, other, rules)
            out.append(Comparison(record, other, decision, contributions))
    return out


def _decide(tx: Tx, review_id: str) -> tuple[ReviewItem, str]:
    item = get_review(tx, review_id)
    if item.status != "open":
        raise ConflictError(f"review {review_id} is already {item.status}")
    return item, _db.utc_now()


def accept_review(tx: Tx, review_id: str, *, actor: str, note: str | None = None) -> str:
    """Accept: the record (for a POSSIBLE_DUPLICATE, its whole person) joins the proposed person. MANUAL links."""
    item, now = _decide(tx, review_id)
    rules = default_rules()
    current = _db.matched_person(tx, item.patient_id)
    moving = [item.patient_id]
    if item.kind == LinkState.POSSIBLE_DUPLICATE.value and current is not None:
        moving = [lk.patient_id for lk in _db.links_to(tx, current, (LinkState.MATCH,))]
    for pid in moving:
        for link in _db.links_of(tx, pid):
            if link.state is LinkState.MATCH or link.person_id == item.person_id:
                _db.remove_link(tx, link, actor=actor, reason=f"review {review_id} accepted", now=now)
        _db.set_link(tx, _db.Link(pid, item.person_id, LinkState.MATCH, LinkSource.MANUAL, item.score,
                                  "steward-accept", rules.version, now), actor=actor, reason=note)  # fmt: skip
        _follow_redirects(tx, pid, item.person_id, now=now)
    tx.execute(
        "UPDATE identity_review SET status = 'accepted', decided_at = ?, decided_by = ?, note = ? WHERE review_id = ?",
        (now, actor, note, review_id),
    )
    return item.person_id


def reject_review(tx: Tx, review_id: str, *, actor: str, note: str | None = None) -> None:
    """Reject: a MANUAL NO_MATCH between the record and the person; the rules never propose it again."""
    item, now = _decide(tx, review_id)
    rules = default_rules()
    _db.set_link(tx, _db.Link(item.patient_id, item.person_id, LinkState.NO_MATCH, LinkSource.MANUAL, item.score,
                              "steward-reject", rules.version, now), actor=actor, reason=note)  # fmt: skip
    tx.execute(
        "UPDATE identity_review SET status = 'rejected', decided_at = ?, decided_by = ?, note = ? WHERE review_id = ?",
        (now, actor, note, review_id),
    )
    _close_reviews(tx, item.patient_id, item.person_id, status="superseded", now=now, actor=actor)


def explain(tx: Tx, patient_id: str) -> Explanation:
    """Why a source record is linked where it is, field by field."""
    record = _db.load_record(tx, patient_id)
    if record is None:
        raise ResourceNotFound(f"Patient/{patient_id} is not in the patient index")
    links = tuple(_db.links_of(tx, patient_id))
    rows = tx.query(
        "SELECT at, action, person_id, state, rule, actor FROM identity_link_history WHERE patient_id = ? ORDER BY seq",
        (patient_id,),
    )
    history = tuple(tuple(str(v) for v in r) for r in rows)
    person = _db.matched_person(tx, patient_id)
    comparisons = tuple(compare_with_person(tx, record, person)) if person else ()
    return Explanation(record, links, history, comparisons)


def person_redirect(tx: Tx, person_id: str) -> str | None:
    """The person an absorbed person id now lives on as (re-clustering or a merge joined them), or None."""
    row = tx.query_one("SELECT into_person_id FROM identity_person_merge WHERE absorbed_person_id = ?", (person_id,))
    return str(row[0]) if row else None


def person_of(tx: Tx, patient_id: str) -> str | None:
    """The person (golden id) a source record belongs to (MATCH or REDIRECT), or None."""
    return _db.matched_person(tx, patient_id)


def person_patients(tx: Tx, person_id: str) -> list[str]:
    """The source Patient ids that make up a person (MATCH and REDIRECT links)."""
    return [lk.patient_id for lk in _db.links_to(tx, person_id)]


def person_identifiers(tx: Tx, person_id: str) -> list[tuple[str, str]]:
    """Every enterprise identifier of a person: its own id, each NHS number and each trust's MRN."""
    out = [(PERSON_ID_SYSTEM, person_id)]
    for rec in _db.load_records(tx, person_patients(tx, person_id)):
        if rec.nhs_number:
            out.append((NHS_NUMBER_SYSTEM, rec.nhs_number))
        if rec.mrn and rec.ods_code:
            out.append((mrn_system(rec.ods_code), rec.mrn))
    return list(dict.fromkeys(out))


def find_persons(tx: Tx, system: str, value: str) -> list[str]:
    """Persons that hold an identifier (NHS number, a trust's MRN, or the person id itself)."""
    if system == PERSON_ID_SYSTEM:
        row = tx.query_one("SELECT person_id FROM identity_person WHERE person_id = ?", (value,))
        return [str(row[0])] if row else []
    if system == NHS_NUMBER_SYSTEM:
        rows = tx.query("SELECT patient_id FROM identity_record WHERE nhs_number = ?", (value,))
    else:
        rows = tx.query("SELECT patient_id, ods_code FROM identity_record WHERE mrn = ?", (value.strip().upper(),))
        rows = [r for r in rows if r[1] and mrn_system(str(r[1])) == system]
    persons = (person_of(tx, str(r[0])) for r in rows)
    return sorted({p for p in persons if p})


def _truth_ids(tx: Tx) -> dict[tuple[str, str], str]:
    by_key: dict[tuple[str, str], str] = {}
    for pid, ods, source_key, mrn in tx.query("SELECT patient_id, ods_code, source_key, mrn FROM identity_record"):
        by_key.setdefault((str(ods), str(pid)), str(pid))
        if source_key:
            by_key.setdefault((str(ods), str(source_key)), str(pid))
        if mrn:
            by_key.setdefault((str(ods), str(mrn)), str(pid))
    return by_key


def _resolve(by_key: dict[tuple[str, str], str], ods: str, source_id: str) -> str | None:
    return by_key.get((ods, source_id)) or by_key.get((ods, source_id.strip().upper()))


def evaluate(tx: Tx, truth: Iterable[tuple[str, str, str]]) -> Metrics:
    """Pairwise precision/recall of the current links against ``(ods_code, source_patient_id, person_id)`` rows.

    A truth row names a record by the source's id (the last part of ``meta.source``), by its MRN, or by our id.
    """
    by_key = _truth_ids(tx)
    predicted = {
        str(r[0]): str(r[1])
        for r in tx.query("SELECT patient_id, person_id FROM identity_link WHERE state IN ('MATCH', 'REDIRECT')")
    }
    true_map: dict[str, str] = {}
    for ods, source_id, person in truth:
        pid = _resolve(by_key, ods, source_id)
        if pid is not None:
            true_map[pid] = person
    row = tx.query_one("SELECT COUNT(DISTINCT patient_id) FROM identity_review WHERE status = 'open'")
    return pairwise_metrics(predicted, true_map, review_queue=int(row[0]) if row else 0)


def quality(
    tx: Tx, truth: Iterable[tuple[str, str, str, tuple[str, ...]]], rules: Rules | None = None
) -> QualityReport:
    """:func:`evaluate` per noise category and per rule, with the pairs behind every miss.

    ``truth`` rows are ``(ods_code, source_patient_id, person_id, noise categories)`` (the sandbox's ground
    truth); each split is explained by the pair decision between its two records under ``rules``.
    """
    rules = rules or default_rules()
    by_key = _truth_ids(tx)
    predicted: dict[str, str] = {}
    link_rule: dict[str, str] = {}
    for pid, person, rule in tx.query(
        "SELECT patient_id, person_id, rule FROM identity_link WHERE state IN ('MATCH', 'REDIRECT')"
    ):
        predicted[str(pid)] = str(person)
        link_rule[str(pid)] = str(rule)
    true_map: dict[str, str] = {}
    noise: dict[str, tuple[str, ...]] = {}
    for ods, source_id, person, categories in truth:
        pid = _resolve(by_key, ods, source_id)
        if pid is not None:
            true_map[pid] = person
            noise[pid] = categories
    review = {str(r[0]) for r in tx.query("SELECT DISTINCT patient_id FROM identity_review WHERE status = 'open'")}

    def explain_split(a: str, b: str) -> tuple[str, float | None]:
        left, right = _db.load_record(tx, a), _db.load_record(tx, b)
        if left is None or right is None:
            return "?", None
        decision = decide_pair(left, right, rules)
        return decision.rule, decision.score

    return quality_report(predicted, true_map, noise=noise, link_rule=link_rule, review=review, explain=explain_split)


def persons_of(tx: Tx, patient_ids: Iterable[str]) -> dict[str, str]:
    """Source Patient id → person id (MATCH or REDIRECT) for the ids that are linked."""
    ids = list(dict.fromkeys(patient_ids))
    out: dict[str, str] = {}
    for start in range(0, len(ids), 500):  # bounded parameter lists on every backend
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        rows = tx.query(
            "SELECT patient_id, person_id FROM identity_link "  # noqa: S608 - placeholders only
            f"WHERE state IN ('MATCH', 'REDIRECT') AND patient_id IN ({marks})",
            chunk,
        )
        out.update((str(r[0]), str(r[1])) for r in rows)
    return out


def is_person(tx: Tx, person_id: str) -> bool:
    """True when ``person_id`` is a person with at least one source record."""
    row = tx.query_one(
        "SELECT 1 FROM identity_link WHERE person_id = ? AND state IN ('MATCH', 'REDIRECT') LIMIT 1", (person_id,)
    )
    return row is not None
