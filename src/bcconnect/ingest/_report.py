"""What one sync of one adapter did, in numbers that must balance."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SyncReport:
    """Counts of one adapter's sync. ``fetched = new + changed + unchanged + quarantined`` always holds.

    - ``new``: a source key never landed before;
    - ``changed``: landed before with other content (deletes of known records count here);
    - ``unchanged``: same content as landed, a duplicate delivery, or an out-of-order older version;
    - ``quarantined``: could not be parsed, mapped or validated (kept with the reason, never dropped).

    Beside the balance: ``quarantined_patients`` (quarantined records that map to a Patient), ``held``
    (resources kept back because their Patient is missing or quarantined) and ``released`` (held resources
    served once their Patient arrived). A run that reached the end is ``OK`` unless :meth:`judge` found these
    past the adapter's thresholds, then ``DEGRADED``; a run that stopped early is ``FAILED``.
    """

    adapter: str
    fetched: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    quarantined: int = 0
    deleted: int = 0
    pages: int = 0
    resources_written: int = 0
    error: str | None = None
    duration_seconds: float = 0.0
    unmapped_record_types: dict[str, int] = field(default_factory=dict)
    quarantined_patients: int = 0
    held: int = 0
    released: int = 0
    #: why the run is DEGRADED (one line), or None
    degraded: str | None = None
    #: resource types the source offers that the mapping set does not map, with the source's counts
    offered_not_mapped: dict[str, int | None] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        """True when every fetched record is accounted for exactly once."""
        return self.fetched == self.new + self.changed + self.unchanged + self.quarantined

    @property
    def ok(self) -> bool:
        """The sync ran to the end of what the source had."""
        return self.error is None

    @property
    def not_mapped_line(self) -> str | None:
        """``offered, not mapped: Basic (3), Questionnaire (?)`` — types the source has that nothing maps."""
        if not self.offered_not_mapped:
            return None
        listed = ", ".join(
            f"{name} ({count if count is not None else '?'})" for name, count in sorted(self.offered_not_mapped.items())
        )
        return f"offered, not mapped: {listed}"

    @property
    def status(self) -> str:
        """``OK``, ``DEGRADED`` (ran to the end, but past a quality threshold) or ``FAILED``."""
        if self.error is not None:
            return "FAILED"
        return "DEGRADED" if self.degraded else "OK"

    def judge(self, *, max_patients_quarantined: int, max_quarantine_rate: float, max_held_rate: float) -> None:
        """Set :attr:`degraded` to one line naming the first threshold this run passed (None if none)."""
        reasons: list[str] = []
        if self.quarantined_patients > max_patients_quarantined:
            reasons.append(
                f"{self.quarantined_patients} Patient record(s) quarantined (limit {max_patients_quarantined})"
            )
        if self.fetched and self.quarantined / self.fetched > max_quarantine_rate:
            reasons.append(
                f"{self.quarantined} of {self.fetched} records quarantined"
                f" ({self.quarantined / self.fetched:.1%} > {max_quarantine_rate:.1%})"
            )
        if self.held and (not self.fetched or self.held / self.fetched > max_held_rate):
            reasons.append(
                f"{self.held} resources held waiting for their Patient (limit {max_held_rate:.1%} of fetched)"
            )
        self.degraded = "; ".join(reasons) or None

    def add(self, other: PageCounts) -> None:
        """Fold one committed page's counts into the run."""
        self.pages += 1
        self.fetched += other.fetched
        self.new += other.new
        self.changed += other.changed
        self.unchanged += other.unchanged
        self.quarantined += other.quarantined
        self.deleted += other.deleted
        self.resources_written += other.resources_written
        self.quarantined_patients += other.quarantined_patients
        self.held += other.held
        self.released += other.released

    def as_dict(self) -> dict[str, object]:
        """The report as plain values (for logs and JSON output)."""
        return {
            "adapter": self.adapter,
            "fetched": self.fetched,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "quarantined": self.quarantined,
            "deleted": self.deleted,
            "pages": self.pages,
            "resources_written": self.resources_written,
            "balanced": self.balanced,
            "quarantined_patients": self.quarantined_patients,
            "held": self.held,
            "released": self.released,
            "status": self.status,
            "degraded": self.degraded,
            "offered_not_mapped": dict(self.offered_not_mapped),
            "error": self.error,
            "duration_seconds": round(self.duration_seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class PageCounts:
    """Counts of one committed page."""

    fetched: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    quarantined: int = 0
    deleted: int = 0
    resources_written: int = 0
    quarantined_patients: int = 0
    held: int = 0
    released: int = 0
