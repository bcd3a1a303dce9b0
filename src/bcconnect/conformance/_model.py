"""What a conformance check is, what it records, and what it concludes.

A :class:`Check` is an async function with an id, a title, a specification reference and a severity. It talks
to its target only through the recording client of its :class:`~bcconnect.conformance._context.Context`, so
every result carries the exact requests made and the responses judged. The function returns the reason it
passed; it raises :class:`Failed` (the target deviates) or :class:`NotApplicable` (the target does not offer
what the check needs, e.g. no Observation to search).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bcconnect.conformance._context import Context


class Severity(enum.StrEnum):
    """How much a failure matters: only ``error`` failures make the run fail."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Outcome(enum.StrEnum):
    """What a check concluded."""

    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    #: the target does not offer what the check needs (not a failure, but said plainly)
    NOT_APPLICABLE = "n/a"
    #: the check could not reach a verdict (connection refused, timeout, unreadable answer)
    ERROR = "error"


class Failed(Exception):
    """The target deviates from the specification; the message says how."""


class NotApplicable(Exception):
    """The target does not offer what this check needs; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class Spec:
    """Where the rule a check enforces is written."""

    url: str
    section: str


CheckFunction = Callable[["Context"], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Check:
    """One conformance check: its catalogue entry and the function that runs it."""

    id: str
    title: str
    spec: Spec
    severity: Severity
    run: CheckFunction
    pack: str
    #: how the check judges: the requests it makes and what must hold
    description: str = ""


@dataclass(slots=True)
class Exchange:
    """One request the check made and the answer it got (bodies cut to excerpts, credentials redacted)."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int | None
    response_headers: dict[str, str]
    response_body: str
    elapsed_ms: float
    note: str = ""

    def to_json(self) -> dict[str, object]:
        """A plain dict for the JSON report."""
        return {
            "method": self.method,
            "url": self.url,
            "requestHeaders": self.request_headers,
            "requestBody": self.request_body,
            "status": self.status,
            "responseHeaders": self.response_headers,
            "responseBody": self.response_body,
            "elapsedMs": round(self.elapsed_ms, 1),
            "note": self.note,
        }


@dataclass(slots=True)
class CheckResult:
    """What one check concluded, why, and the exchanges and evidence it judged."""

    check: Check
    outcome: Outcome
    why: str
    exchanges: list[Exchange] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def blocking(self) -> bool:
        """True when this result makes the run fail (an error-severity check that failed or crashed)."""
        return self.check.severity is Severity.ERROR and self.outcome in (Outcome.FAIL, Outcome.ERROR)

    def to_json(self) -> dict[str, object]:
        """A plain dict for the JSON report."""
        return {
            "id": self.check.id,
            "title": self.check.title,
            "description": self.check.description,
            "severity": self.check.severity.value,
            "spec": {"url": self.check.spec.url, "section": self.check.spec.section},
            "outcome": self.outcome.value,
            "why": self.why,
            "evidence": self.evidence,
            "seconds": round(self.seconds, 3),
            "exchanges": [e.to_json() for e in self.exchanges],
        }


@dataclass(slots=True)
class Report:
    """The results of one pack run against one target."""

    pack: str
    target: str
    started: str
    seconds: float
    results: list[CheckResult]
    tool: str = "bcconnect conformance"

    @property
    def passed(self) -> bool:
        """True when no error-severity check failed or crashed."""
        return not any(r.blocking for r in self.results)

    def counts(self) -> dict[str, int]:
        """Results per outcome (every outcome named, zeros included)."""
        found = {o.value: 0 for o in Outcome}
        for r in self.results:
            found[r.outcome.value] += 1
        return found

    def failures(self, severity: Severity | None = None) -> list[CheckResult]:
        """Results that failed or crashed, optionally of one severity."""
        return [
            r
            for r in self.results
            if r.outcome in (Outcome.FAIL, Outcome.ERROR) and (severity is None or r.check.severity is severity)
        ]

    def to_json(self) -> dict[str, object]:
        """A plain dict for the JSON report."""
        return {
            "tool": self.tool,
            "pack": self.pack,
            "target": self.target,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "passed": self.passed,
            "counts": self.counts(),
            "results": [r.to_json() for r in self.results],
        }


class Pack:
    """A named, ordered collection of checks.

    What each check is (id, title, severity, specification reference, description) is data: the pack's
    catalogue file (:mod:`bcconnect.conformance._catalogue_file`). Modules attach one function to each catalogue
    id with the :meth:`check` decorator; :attr:`checks` refuses a catalogue entry left without one.
    """

    def __init__(self, catalogue: PackCatalogue) -> None:
        self.catalogue = catalogue
        self.name = catalogue.name
        self.title = catalogue.title
        self.description = catalogue.description
        self._functions: dict[str, CheckFunction] = {}

    def check(self, id: str) -> Callable[[CheckFunction], CheckFunction]:
        """Register the decorated function as the check the catalogue calls ``id``."""

        def register(run: CheckFunction) -> CheckFunction:
            if id not in self.catalogue.entries:
                raise ValueError(f"check {id!r} is not in the catalogue of pack {self.name} ({self.catalogue.source})")
            if id in self._functions:
                raise ValueError(f"check id {id!r} is registered twice in pack {self.name}")
            self._functions[id] = run
            return run

        return register

    @property
    def checks(self) -> list[Check]:
        """The checks in catalogue order (LookupError when an entry has no function)."""
        missing = [i for i in self.catalogue.entries if i not in self._functions]
        if missing:
            raise LookupError(f"pack {self.name}: no check function for {', '.join(missing)}")
        return [
            Check(e.id, e.title, e.spec, e.severity, self._functions[e.id], self.name, e.description)
            for e in self.catalogue.entries.values()
        ]


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One check as the catalogue describes it."""

    id: str
    title: str
    spec: Spec
    severity: Severity
    description: str


@dataclass(frozen=True, slots=True)
class PackCatalogue:
    """A pack's catalogue: its name, title, description and entries in order; ``source`` names the file."""

    name: str
    title: str
    description: str
    entries: dict[str, CatalogueEntry]
    source: str
