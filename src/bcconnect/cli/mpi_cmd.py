"""``bcconnect mpi …``: the patient index for data stewards.

``review list|show|accept|reject`` works the review queue (``show`` puts the records side by side, field by
field, with each field's agreement level and weight); ``explain PATIENT`` says why a record is linked where it
is; ``merge``/``unmerge`` are a steward's merges; ``relink`` decides every stored record again under the current
rules (after a rules or weights change), page by page with a progress bar on a terminal; ``evaluate --truth
ground_truth.csv`` measures pairwise precision, recall, F1 and the review rate against the sandbox's ground
truth, overall, per noise category (the truth file's ``noise`` column) and per rule, with example pairs behind
every split and false merge. Every decision names who made it (``--by``).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import anyio

from bcconnect.cli import common
from bcconnect.cli.progress import Bars
from bcconnect.errors import UsageError
from bcconnect.identity import (
    Comparison,
    Demographics,
    Metrics,
    QualityReport,
    accept_review,
    compare_with_person,
    count_reviews,
    explain,
    get_review,
    index_size,
    list_reviews,
    load_record,
    load_rules,
    merge,
    quality,
    reject_review,
    relink_page,
    unmerge,
)
from bcconnect.store import Tx, open_store

T = TypeVar("T")


def register(subparsers: common.SubParsers[argparse.ArgumentParser]) -> None:
    """Add the ``mpi`` command group."""
    mpi = subparsers.add_parser("mpi", help="the patient index: review queue, explanations, evaluation")
    sub = mpi.add_subparsers(dest="mpi_command", metavar="SUBCOMMAND")
    review = sub.add_parser("review", help="the review queue of possible matches")
    rsub = review.add_subparsers(dest="review_command", metavar="SUBCOMMAND")
    lst = rsub.add_parser("list", help="review items (default: open ones)")
    lst.add_argument("--status", default="open", choices=["open", "accepted", "rejected", "superseded", "resolved"])
    lst.add_argument("--limit", type=int, default=50)
    lst.set_defaults(handler=_review_list)
    show = rsub.add_parser("show", help="a review item with the records side by side")
    show.add_argument("review_id")
    show.set_defaults(handler=_review_show)
    for name, handler, text in (
        ("accept", _review_accept, "link the record to the proposed person (a MANUAL link)"),
        ("reject", _review_reject, "record that the record is not that person (never proposed again)"),
    ):
        cmd = rsub.add_parser(name, help=text)
        cmd.add_argument("review_id")
        cmd.add_argument("--by", required=True, help="who decides (recorded with the decision)")
        cmd.add_argument("--note", help="why (recorded with the decision)")
        cmd.set_defaults(handler=handler)
    exp = sub.add_parser("explain", help="why a source Patient is linked where it is, field by field")
    exp.add_argument("patient", help="source Patient id (Patient/<id> or <id>)")
    exp.set_defaults(handler=_explain)
    mrg = sub.add_parser("merge", help="merge a source record into another (a steward's A40)")
    mrg.add_argument("patient", help="the record that is retired")
    mrg.add_argument("into", help="the record that survives")
    mrg.add_argument("--by", required=True)
    mrg.set_defaults(handler=_merge)
    unm = sub.add_parser("unmerge", help="undo the merge of a source record; its prior links come back")
    unm.add_argument("patient")
    unm.add_argument("--by", required=True)
    unm.set_defaults(handler=_unmerge)
    rel = sub.add_parser(
        "relink", help="decide every stored record again under the current rules (after a rules change)"
    )
    rel.add_argument("--page", type=_page_size, default=500, help="records per transaction (default 500)")
    rel.set_defaults(handler=_relink)
    ev = sub.add_parser(
        "evaluate", help="precision, recall, F1 and review rate against a ground truth file, per noise category"
    )
    ev.add_argument(
        "--truth", required=True, type=Path, help="CSV: ods_code,source_patient_id,person_id[,noise] (synthetic)"
    )
    ev.add_argument("--examples", type=int, default=3, help="example pairs shown behind each rule's misses")
    ev.set_defaults(handler=_evaluate)


def _run(args: argparse.Namespace, fn: Callable[[Tx], T], *, write: bool = False) -> T:
    settings = common.settings_from(args)

    async def go() -> T:
        async with open_store(settings.store_url()) as store:
            return await (store.write(fn) if write else store.read(fn))

    return anyio.run(go)


def _pid(value: str) -> str:
    return value.removeprefix("Patient/")


def _review_list(args: argparse.Namespace) -> int:
    items, total = _run(
        args, lambda tx: (list_reviews(tx, status=args.status, limit=args.limit), count_reviews(tx, status=args.status))
    )
    print(f"{total} {args.status} review item(s)")
    for item in items:
        score = "-" if item.score is None else f"{item.score:.1f}"
        print(f"{item.review_id}  {item.kind:<18} Patient/{item.patient_id} → person {item.person_id}  "
              f"score={score} rule={item.rule} since {item.created_at}")  # fmt: skip
    return 0


_FIELDS: tuple[tuple[str, Callable[[Demographics], object]], ...] = (
    ("trust", lambda d: d.ods_code),
    ("mrn", lambda d: d.mrn),
    ("nhs_number", lambda d: f"{d.nhs_number} ({d.verification or '?'})" if d.nhs_number else None),
    ("given", lambda d: d.given),
    ("family", lambda d: d.family),
    ("birth_date", lambda d: d.birth_date),
    ("sex", lambda d: d.sex),
    ("postcode", lambda d: d.postcode),
    ("phone", lambda d: d.phone),
)


def _side_by_side(comparison: Comparison) -> None:
    left, right = comparison.left, comparison.right
    weights = {c.field: c for c in comparison.contributions}
    d = comparison.decision
    print(f"  Patient/{left.patient_id}  vs  Patient/{right.patient_id}: {d.state.value} by {d.rule}, "
          f"score {d.score:.1f} bits")  # fmt: skip
    print(f"    {'field':<11} {'this record':<26} {'other record':<26} {'level':<18} weight")
    for name, get in _FIELDS:
        c = weights.get(name)
        level, weight = (c.level, f"{c.weight:+.1f}") if c else ("", "")
        a, b = get(left), get(right)
        print(f"    {name:<11} {'-' if a is None else a!s:<26} {'-' if b is None else b!s:<26} {level:<18} {weight}")


def _review_show(args: argparse.Namespace) -> int:
    def read(tx: Tx) -> tuple[str, list[Comparison]]:
        item = get_review(tx, args.review_id)
        record = load_record(tx, item.patient_id)
        comparisons = compare_with_person(tx, record, item.person_id) if record else []
        head = (f"review {item.review_id}: {item.kind} ({item.status}) — is Patient/{item.patient_id} "
                f"person {item.person_id}? rule {item.rule}")  # fmt: skip
        return head, comparisons

    head, comparisons = _run(args, read)
    print(head)
    for comparison in comparisons:
        _side_by_side(comparison)
    return 0


def _review_accept(args: argparse.Namespace) -> int:
    person = _run(args, lambda tx: accept_review(tx, args.review_id, actor=args.by, note=args.note), write=True)
    print(f"accepted: linked to person {person} (MANUAL, by {args.by})")
    return 0


def _review_reject(args: argparse.Namespace) -> int:
    _run(args, lambda tx: reject_review(tx, args.review_id, actor=args.by, note=args.note), write=True)
    print(f"rejected (MANUAL NO_MATCH, by {args.by})")
    return 0


def _explain(args: argparse.Namespace) -> int:
    why = _run(args, lambda tx: explain(tx, _pid(args.patient)))
    print(f"Patient/{why.record.patient_id} ({why.record.ods_code})")
    for link in why.links:
        score = "" if link.score is None else f" score {link.score:.1f}"
        print(f"  {link.state.value:<18} person {link.person_id}  {link.source.value} rule {link.rule}{score} "
              f"(rules {link.rules_version}, {link.updated_at})")  # fmt: skip
    if not why.comparisons:
        print("  no other record is linked to this person")
    for comparison in why.comparisons:
        _side_by_side(comparison)
    print("  history:")
    for at, action, person, state, rule, actor in why.history:
        print(f"    {at}  {action:<6} {state:<18} person {person} rule {rule} by {actor}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    person = _run(
        args, lambda tx: merge(tx, _pid(args.patient), _pid(args.into), origin="manual", actor=args.by), write=True
    )
    print(f"merged: Patient/{_pid(args.patient)} now redirects to person {person}")
    return 0


def _unmerge(args: argparse.Namespace) -> int:
    person = _run(args, lambda tx: unmerge(tx, _pid(args.patient), actor=args.by), write=True)
    print(f"unmerged: Patient/{_pid(args.patient)} is back with person {person}")
    return 0


def _page_size(value: str) -> int:
    try:
        size = int(value)
    except ValueError:
        size = 0
    if not 1 <= size <= 10_000:
        raise argparse.ArgumentTypeError(f"expected a whole number of records from 1 to 10000, got {value!r}")
    return size


def _relink(args: argparse.Namespace) -> int:
    settings = common.settings_from(args)

    async def go() -> int:
        async with open_store(settings.store_url()) as store:
            records, persons = await store.read(index_size)
            reviews = await store.read(lambda tx: count_reviews(tx))
            done = moved = joined = 0
            after: str | None = None
            with Bars("relinking") as bars:
                bars.update("records", completed=0, total=records)
                while True:
                    page = await store.write(partial(relink_page, after=after, limit=args.page))
                    if page.last is None:
                        break
                    done, moved, joined = done + page.records, moved + page.moved, joined + page.joined
                    after = page.last
                    bars.update("records", completed=done, total=max(records, done))
            _, persons_now = await store.read(index_size)
            reviews_now = await store.read(lambda tx: count_reviews(tx))
        # moved: a page's own records whose (settled) person changed; a join also moves the joined person's
        # records, counted as persons joined
        print(f"relinked {done:,} record(s) under rules {load_rules().version}: {moved:,} re-decided to another "
              f"person, {done - moved:,} kept their person; {joined:,} person(s) joined into another")  # fmt: skip
        print(f"persons {persons:,} -> {persons_now:,}; open review items {reviews:,} -> {reviews_now:,}")
        return 0

    return anyio.run(go)


def read_truth(path: Path) -> list[tuple[str, str, str]]:
    """Rows of a ground-truth CSV (``ods_code,source_patient_id,person_id``)."""
    return [(ods, source, person) for ods, source, person, _ in read_truth_with_noise(path)]


def read_truth_with_noise(path: Path) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """Rows of a ground-truth CSV with each record's noise categories (the optional ``noise`` column)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"ods_code", "source_patient_id", "person_id"} - set(reader.fieldnames or ())
            if missing:
                raise UsageError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            return [(r["ods_code"], r["source_patient_id"], r["person_id"], _noise(r.get("noise"))) for r in reader]
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a ground-truth CSV ({exc})") from exc


def _noise(cell: str | None) -> tuple[str, ...]:
    return tuple(filter(None, (cell or "").split(";")))


def _evaluate(args: argparse.Namespace) -> int:
    truth = read_truth_with_noise(args.truth)
    report: QualityReport = _run(args, lambda tx: quality(tx, truth))
    metrics: Metrics = report.overall
    print(f"records matched to the truth file: {metrics.records} of {len(truth)} rows")
    print(f"true pairs {metrics.true_pairs}, linked pairs {metrics.predicted_pairs}, correct {metrics.true_positives}")
    print(f"precision {metrics.precision:.5f}  recall {metrics.recall:.5f}  F1 {metrics.f1:.5f}")
    print(f"review queue {metrics.review_queue} record(s) ({metrics.review_share:.3%} of matched records)")
    print("\n".join(report.lines(examples=args.examples)[2:]))
    return 0
