"""Evaluating cohort definitions over the facts read model, in SQL where it can be.

A rule becomes one SQL condition on a person (``cohort_fact_person p``): ``borough``/``practice`` compare
columns; ``age`` compares the birth date with the dates that make the age bounds (no date arithmetic in SQL);
``conditions`` is membership of the persons whose distinct listed sets, counted with ``GROUP BY``, reach the
bound; ``all``/``any``/``not`` are ``AND``/``OR``/``NOT``. Events (emergency stays, A&E attendances) are the one
part worked out in Python: two records whose periods overlap are one event, chained, whichever trusts sent them.
Only a person with enough records starting in the window can reach a minimum (each distinct event in the window
starts with one of its records), so SQL picks those few first and Python chains just their records; the counts
go to a working table the rule's condition then reads.

Every condition is written to be true or false, never NULL, so ``NOT`` means what :class:`Evaluator` means (a
person with no borough is "not in Dudley").
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from bcconnect.cohorts._definitions import CohortDefinition, Definitions, Rule
from bcconnect.cohorts._extract import months_before
from bcconnect.cohorts._facts import to_us
from bcconnect.store import Tx

_CHUNK = 500
#: the SQL selecting the persons whose value of a criterion compares (``op``) with a bound, and its parameters
_Members = Callable[[Rule, str, int], tuple[str, list[object]]]
#: persons not in the objection register (the scratch rows of this computation name the objectors)
_NOT_OBJECTING = (
    "p.person_id NOT IN (SELECT s.person_id FROM cohort_eval_scratch s WHERE s.run_key = ? AND s.kind = 'objector')"
)
_CONDITION_COUNTS = (
    "SELECT m.person_id FROM cohort_fact_condition c"
    " JOIN cohort_fact_patient m ON m.patient_id = c.patient_id"
    " JOIN cohort_code_sets s ON s.code = c.code"
    " WHERE s.set_name IN ({sets}) GROUP BY m.person_id HAVING COUNT(DISTINCT s.set_name) {op} ?"
)


def _marks(items: Sequence[object]) -> str:
    return ",".join("?" * len(items))


def _birth_limit(on: date, years: int) -> str:
    """The latest birth date (as ISO text) of someone at least ``years`` old on ``on``: ISO dates compare as
    text, so ``birth_date <= limit`` is "age >= years" (a 29 February limit in a common year still works)."""
    return f"{max(on.year - years, 0):04d}-{on.month:02d}-{on.day:02d}"


def _distinct_event_count(periods: list[tuple[int, int]], edge: int, as_of: int) -> int:
    """Distinct events (overlapping periods chained) whose first start is in ``(edge, as_of]``."""
    count = 0
    reach: int | None = None
    for start, end in sorted(periods):
        if reach is not None and start < reach:
            reach = max(reach, end)
            continue
        reach = end
        if edge < start <= as_of:
            count += 1
    return count


@dataclass
class _Compiler:
    """Turns rules into SQL conditions for one computation (``as_of``), filling event counts as needed."""

    tx: Tx
    as_of: datetime
    run_key: str

    def __post_init__(self) -> None:
        self._event_leaves: dict[tuple[str, int, int], str] = {}

    def sql(self, rule: Rule) -> tuple[str, list[object]]:
        kind = rule.kind
        if kind in ("all", "any"):
            parts = [self.sql(p) for p in rule.parts]
            joiner = " AND " if kind == "all" else " OR "
            return "(" + joiner.join(s for s, _ in parts) + ")", [v for _, ps in parts for v in ps]
        if kind == "not":
            inner, params = self.sql(rule.parts[0])
            return f"(NOT {inner})", params
        if kind in ("borough", "practice"):
            marks = ",".join("?" * len(rule.names))
            return f"(p.{kind} IS NOT NULL AND p.{kind} IN ({marks}))", list(rule.names)
        if kind == "age":
            on = self.as_of.date()
            conds, params = ["p.birth_date IS NOT NULL"], []
            if rule.minimum is not None:
                conds.append("p.birth_date <= ?")
                params.append(_birth_limit(on, rule.minimum))
            if rule.maximum is not None:
                conds.append("p.birth_date > ?")
                params.append(_birth_limit(on, rule.maximum + 1))
            return "(" + " AND ".join(conds) + ")", params
        if kind == "conditions":
            return self._bounded(rule, self._condition_members)
        return self._bounded(rule, self._event_members)

    def _bounded(self, rule: Rule, members: _Members) -> tuple[str, list[object]]:
        """``value >= min`` as membership of those reaching it; ``value <= max`` as non-membership of those above
        it (a person with no facts has the value 0)."""
        conds: list[str] = []
        params: list[object] = []
        if rule.minimum is not None and rule.minimum > 0:
            sql, ps = members(rule, ">=", rule.minimum)
            conds.append(f"p.person_id IN ({sql})")
            params += ps
        if rule.maximum is not None:
            sql, ps = members(rule, ">", rule.maximum)
            conds.append(f"p.person_id NOT IN ({sql})")
            params += ps
        if not conds:
            return "(1 = 1)", []
        return "(" + " AND ".join(conds) + ")", params

    def _condition_members(self, rule: Rule, op: str, bound: int) -> tuple[str, list[object]]:
        if not rule.names:
            return "SELECT p0.person_id FROM cohort_fact_person p0 WHERE 1 = 0", []
        marks = ",".join("?" * len(rule.names))
        return _CONDITION_COUNTS.format(sets=marks, op=op), [*rule.names, bound]

    def _event_members(self, rule: Rule, op: str, bound: int) -> tuple[str, list[object]]:
        # exact counts are needed only for persons who could pass ``op bound``: enough records in the window
        threshold = bound if op == ">=" else bound + 1
        leaf = self._event_leaf(rule.kind, rule.months, threshold)
        return (
            f"SELECT s.person_id FROM cohort_eval_scratch s WHERE s.run_key = ? AND s.kind = ? AND s.value {op} ?",  # noqa: S608 - op is '>=' or '>'
            [self.run_key, leaf, bound],
        )

    def _event_leaf(self, kind: str, months: int, threshold: int) -> str:
        """The scratch kind holding exact distinct-event counts for every person with at least ``threshold``
        records of ``kind`` starting in the window (anyone else has fewer events than that)."""
        key = (kind, months, threshold)
        found = self._event_leaves.get(key)
        if found is not None:
            return found
        name = f"events:{kind}:{months}:{threshold}"
        self._event_leaves[key] = name
        as_of = to_us(self.as_of)
        edge = to_us(months_before(self.as_of, months))
        candidates = [
            str(r[0])
            for r in self.tx.query(
                "SELECT m.person_id FROM cohort_fact_encounter e"
                " JOIN cohort_fact_patient m ON m.patient_id = e.patient_id"
                " WHERE e.kind = ? AND e.start_us > ? AND e.start_us <= ?"
                " GROUP BY m.person_id HAVING COUNT(*) >= ?",
                (kind, edge, as_of, max(threshold, 1)),
            )
        ]
        rows: list[tuple[object, ...]] = []
        for start in range(0, len(candidates), _CHUNK):
            chunk = candidates[start : start + _CHUNK]
            # the persons' Patient ids first, then their records by Patient id: one join would let the planner
            # walk every record of the kind and probe the persons (SQLite does, without statistics)
            owner = {
                str(r[0]): str(r[1])
                for r in self.tx.query(
                    f"SELECT patient_id, person_id FROM cohort_fact_patient WHERE person_id IN ({_marks(chunk)})",  # noqa: S608 - '?' marks only
                    chunk,
                )
            }
            periods: dict[str, list[tuple[int, int]]] = {}
            patients = sorted(owner)
            for first in range(0, len(patients), _CHUNK):
                some = patients[first : first + _CHUNK]
                # a record that ended by the window's edge cannot join an event that starts inside it
                for patient, begin, end in self.tx.query(
                    "SELECT e.patient_id, e.start_us, e.end_us FROM cohort_fact_encounter e"  # noqa: S608 - '?' marks only
                    f" WHERE e.patient_id IN ({_marks(some)}) AND e.kind = ? AND e.end_us > ?",
                    (*some, kind, edge),
                ):
                    periods.setdefault(owner[str(patient)], []).append((int(begin), int(end)))
            rows += [
                (self.run_key, name, person, _distinct_event_count(found_periods, edge, as_of))
                for person, found_periods in periods.items()
            ]
        if rows:
            self.tx.executemany(
                "INSERT INTO cohort_eval_scratch (run_key, kind, person_id, value) VALUES (?, ?, ?, ?)", rows
            )
        return name


@dataclass(frozen=True, slots=True)
class Evaluated:
    """One cohort's result, its members already in ``cohort_members``."""

    member_count: int
    removed_type1: int
    removed_type2: int


def replace_code_sets(tx: Tx, definitions: Definitions) -> None:
    """The definitions' condition code sets, as the SQL reads them."""
    tx.execute("DELETE FROM cohort_code_sets")
    tx.executemany(
        "INSERT INTO cohort_code_sets (code, set_name) VALUES (?, ?)",
        sorted((code, name) for name, codes in definitions.condition_sets.items() for code in codes),
    )


class SqlEvaluator:
    """Evaluates definitions at ``as_of`` inside one write transaction; :meth:`close` drops its working rows."""

    def __init__(self, tx: Tx, definitions: Definitions, as_of: datetime, objecting: Sequence[str]) -> None:
        self.tx = tx
        self.run_key = secrets.token_hex(8)
        self.compiler = _Compiler(tx, as_of, self.run_key)
        replace_code_sets(tx, definitions)
        tx.executemany(
            "INSERT INTO cohort_eval_scratch (run_key, kind, person_id, value) VALUES (?, 'objector', ?, 0)",
            [(self.run_key, i) for i in sorted(set(objecting))],
        )

    def matching(self, rule: Rule) -> list[str]:
        """Person ids the rule matches (objectors left out), sorted."""
        cond, params = self.compiler.sql(rule)
        rows = self.tx.query(
            f"SELECT p.person_id FROM cohort_fact_person p WHERE {cond} AND {_NOT_OBJECTING}"  # noqa: S608 - built from fixed parts, values bound
            " ORDER BY p.person_id",
            (*params, self.run_key),
        )
        return [str(r[0]) for r in rows]

    def save_members(self, definition: CohortDefinition) -> Evaluated:
        """Replace ``definition``'s members with the persons it matches now, minus the opted-out and objectors.

        The rule is evaluated once, into this computation's working rows; members and the opt-out counts are
        read from those."""
        cond, params = self.compiler.sql(definition.rule)
        group = definition.id
        matched = f"match:{group}"
        self.tx.execute(
            "INSERT INTO cohort_eval_scratch (run_key, kind, person_id, value)"  # noqa: S608 - built from fixed parts, values bound
            f" SELECT ?, ?, p.person_id, 0 FROM cohort_fact_person p WHERE {cond} AND {_NOT_OBJECTING}",
            (self.run_key, matched, *params, self.run_key),
        )
        self.tx.execute("DELETE FROM cohort_members WHERE group_id = ?", (group,))
        self.tx.execute(
            "INSERT INTO cohort_members (group_id, person_id, nhs_number, borough, practice)"
            " SELECT ?, p.person_id, p.nhs_number, p.borough, p.practice"
            " FROM cohort_eval_scratch s JOIN cohort_fact_person p ON p.person_id = s.person_id"
            " WHERE s.run_key = ? AND s.kind = ?"
            " AND NOT EXISTS (SELECT 1 FROM cohort_opt_out o WHERE o.nhs_number = p.nhs_number)",
            (group, self.run_key, matched),
        )
        removed = dict(
            self.tx.query(
                "SELECT o.opt_out_type, COUNT(*) FROM cohort_eval_scratch s"
                " JOIN cohort_fact_person p ON p.person_id = s.person_id"
                " JOIN cohort_opt_out o ON o.nhs_number = p.nhs_number"
                " WHERE s.run_key = ? AND s.kind = ? GROUP BY o.opt_out_type",
                (self.run_key, matched),
            )
        )
        row = self.tx.query_one("SELECT COUNT(*) FROM cohort_members WHERE group_id = ?", (group,))
        type1 = int(removed.get("1", 0))
        type2 = sum(int(v) for k, v in removed.items() if k != "1")
        return Evaluated(int(row[0]) if row else 0, type1, type2)

    def close(self) -> None:
        """Delete this computation's working rows (before its transaction commits)."""
        self.tx.execute("DELETE FROM cohort_eval_scratch WHERE run_key = ?", (self.run_key,))
