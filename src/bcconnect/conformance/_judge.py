"""The request-and-judge steps checks share: expect a status (and an OperationOutcome, or a Bundle), find
what a search matches, and collect every deviation before failing once with all of them named.

A check reads as the rule it enforces::

    answer = await ctx.get("Patient/no-such-id")
    expect_outcome(answer, 404, "reading an unknown id")
    findings = await judge_matches(ctx, "Patient", "Patient/p1", [("birthdate", "gt1970", False)])
    return findings.verdict("every comparison behaved as a range")
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from bcconnect.conformance._context import Answer, Context, require
from bcconnect.conformance._fhir import entries, is_operation_outcome, keys, search
from bcconnect.conformance._model import Failed

#: how many deviations a failure names before it says how many more there were
SHOWN_FINDINGS = 20


class Findings:
    """Deviations a check collects while it probes; :meth:`verdict` fails once, naming them all."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, text: str) -> None:
        """Record one deviation."""
        self.items.append(text)

    def expect(self, condition: object, text: str) -> bool:
        """Record ``text`` unless ``condition`` holds; whether it held."""
        if not condition:
            self.add(text)
        return bool(condition)

    def __bool__(self) -> bool:
        return bool(self.items)

    def verdict(self, passed: str, *, lead: str = "") -> str:
        """``passed`` when nothing was found; otherwise :class:`Failed` with ``lead`` and the deviations."""
        if not self.items:
            return passed
        shown = "; ".join(self.items[:SHOWN_FINDINGS])
        more = len(self.items) - SHOWN_FINDINGS
        raise Failed(f"{lead}{shown}" + (f" (and {more} more)" if more > 0 else ""))


def _statuses(status: int | Collection[int]) -> tuple[int, ...]:
    return (status,) if isinstance(status, int) else tuple(status)


def expect_status(answer: Answer, status: int | Collection[int], what: str) -> None:
    """Fail unless ``answer`` has (one of) ``status``; ``what`` names the request in the message."""
    wanted = _statuses(status)
    require(
        answer.status in wanted,
        f"{what} answered HTTP {answer.status}, expected {' or '.join(map(str, wanted))}",
    )


def expect_outcome(answer: Answer, status: int | Collection[int], what: str) -> None:
    """Fail unless ``answer`` has ``status`` and carries an OperationOutcome (FHIR http.html 3.1.0.4)."""
    expect_status(answer, status, what)
    ok, why = is_operation_outcome(answer)
    require(ok, f"{what}: the {answer.status} carries no OperationOutcome ({why})")


def expect_bundle(answer: Answer, what: str, bundle_type: str = "searchset") -> dict[str, Any]:
    """The Bundle of type ``bundle_type`` that ``answer`` must be (200), else :class:`Failed`."""
    expect_status(answer, 200, what)
    bundle = answer.json()
    require(
        isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle" and bundle.get("type") == bundle_type,
        f"{what} did not answer a {bundle_type} Bundle",
    )
    return bundle  # type: ignore[no-any-return]


async def matched(ctx: Context, resource_type: str, params: Iterable[tuple[str, str]], **kwargs: Any) -> list[str]:
    """``Type/id`` of each match entry a search (that must succeed) returns."""
    return keys(entries(await search(ctx, resource_type, params, **kwargs)))


async def judge_matches(
    ctx: Context,
    resource_type: str,
    target: str,
    cases: Sequence[tuple[str, str, bool]],
    *,
    scope: Sequence[tuple[str, str]] = (),
    about: str = "",
) -> Findings:
    """Search once per ``(parameter, value, wanted)`` case (with the ``scope`` parameters added) and record
    each case where ``target`` (``Type/id``) is found when it should not be, or missed when it should be."""
    findings = Findings()
    for param, value, wanted in cases:
        found = target in await matched(ctx, resource_type, [(param, value), *scope])
        findings.expect(
            found == wanted,
            f"{param}={value} {'missed' if wanted else 'found'} {target}{f' ({about})' if about else ''}",
        )
    return findings
