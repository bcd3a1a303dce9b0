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

    @property
    def balanced(self) -> bool:
        """True when every fetched record is accounted for exactly once."""
        return self.fetched == self.new + self.changed + self.unchanged + self.quarantined

    @property
    def ok(self) -> bool:
        """The sync ran to the end of what the source had."""
        return self.error is None

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
