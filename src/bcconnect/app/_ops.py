"""``/app/ops``: the operations page — each adapter's last success, lag, freshness, error rate and breaker; open
quarantine by reason with links to the records; the identity review queue; recent failed syncs.

It shows no clinical content: quarantine appears as reasons, counts and source keys (payloads stay in the store,
for ``bcconnect quarantine show``), review items as record ids and scores.
"""

from __future__ import annotations

from datetime import datetime

from bcconnect.app._app import Page, PageContext, Rendered
from bcconnect.app._html import Markup, join, tag
from bcconnect.app._widgets import Column, badge, facts, table
from bcconnect.errors import ResourceNotFound
from bcconnect.ops import AdapterFacts, FailedRun, OpsService, ReviewItem


def _age(seconds: float | None) -> str:
    """A duration as people read it.

    >>> _age(42), _age(7200), _age(None)
    ('42 s', '2.0 h', '—')
    """
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _when(instant: str | None) -> str:
    if not instant:
        return "never"
    try:
        return datetime.fromisoformat(instant.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return instant


def ops_pages(service: OpsService) -> list[Page]:
    """The operations page and the quarantined-record page it links to."""

    async def overview(ctx: PageContext) -> Rendered:
        data = await service.overview()

        def freshness(a: AdapterFacts) -> Markup:
            if a.freshness is None or a.freshness.age_seconds is None:
                return badge("never synced", "red")
            tone = "red" if a.freshness.stale else "green"
            return join([_age(a.freshness.age_seconds) + " ", badge("stale" if a.freshness.stale else "fresh", tone)])

        def breaker(a: AdapterFacts) -> Markup:
            state = data.breakers.get(a.name)
            if state is None:
                return Markup("not polled by this process")
            return badge(state.replace("_", "-"), {"closed": "green", "half_open": "amber", "open": "red"}[state])

        adapters = table(
            [
                Column("Adapter", lambda a: tag("strong", a.name)),
                Column("Last success", lambda a: _when(a.summary.last_success)),
                Column("Freshness", freshness),
                Column("Lag", lambda a: _age(a.lag_seconds), numeric=True),
                Column("Error rate", lambda a: f"{a.summary.error_rate:.0%} of {a.summary.runs}", numeric=True),
                Column("Quarantined", lambda a: a.summary.quarantine_depth, numeric=True),
                Column("Held", lambda a: a.summary.held, numeric=True),
                Column("Breaker", breaker),
            ],
            data.adapters,
            caption="Adapters",
            empty="No adapter is configured or has run.",
        )
        quarantine = table(
            [
                Column("Records", lambda g: g.count, numeric=True),
                Column("Adapter", lambda g: g.adapter),
                Column("Record type", lambda g: g.record_type),
                Column("Reason", lambda g: badge(g.reason, "amber")),
                Column("Message", lambda g: g.pattern[:140]),
                Column(
                    "First record",
                    lambda g: tag("a", f"#{g.first_id}", href=ctx.href(f"/ops/quarantine/{g.first_id}")),
                ),
            ],
            data.quarantine,
            caption="Open quarantine by reason",
            empty="Nothing is quarantined.",
        )

        def review_kind(r: ReviewItem) -> Markup:
            return badge(r.kind.replace("_", " ").lower(), "blue")

        reviews = table(
            [
                Column("Raised", lambda r: _when(r.created_at)),
                Column("Kind", review_kind),
                Column("Source record", lambda r: r.patient_id),
                Column("Proposed person", lambda r: r.person_id),
                Column("Rule", lambda r: r.rule),
                Column("Score", lambda r: "—" if r.score is None else f"{r.score:.1f}", numeric=True),
            ],
            data.reviews,
            caption=f"Identity review queue ({data.open_reviews} open)",
            empty="The review queue is empty.",
        )

        def failed_status(f: FailedRun) -> Markup:
            return badge(f.status, "red" if f.status == "FAILED" else "amber")

        failed = table(
            [
                Column("Started", lambda f: _when(f.started_at)),
                Column("Adapter", lambda f: f.adapter),
                Column("Result", failed_status),
                Column("Fetched", lambda f: f.fetched, numeric=True),
                Column("Why", lambda f: (f.error or "")[:200]),
            ],
            data.failed_runs,
            caption="Recent failed or degraded syncs",
            empty="No sync has failed recently.",
        )
        summary = facts(
            [
                ("Adapters", len(data.adapters)),
                ("Stale", sum(1 for a in data.adapters if a.freshness is None or a.freshness.stale)),
                ("Open quarantine", sum(g.count for g in data.quarantine)),
                ("Open review items", data.open_reviews),
                ("As of", data.at.strftime("%Y-%m-%d %H:%M:%S UTC")),
            ]
        )
        return Rendered(join([summary, adapters, quarantine, reviews, failed]))

    async def quarantined(ctx: PageContext) -> Rendered:
        raw = ctx.path_params.get("id", "")
        record = await service.quarantined(int(raw)) if raw.isdigit() else None
        if record is None:
            raise ResourceNotFound(f"no quarantined record {raw}")
        entry = record.entry
        body = join(
            [
                facts(
                    [
                        ("Adapter", entry.adapter),
                        ("Source key", entry.source_key),
                        ("Record type", entry.record_type),
                        ("Stage", entry.stage),
                        ("Reason", badge(str(getattr(entry.reason, "value", entry.reason)), "amber")),
                        ("Message", entry.message),
                        ("Mapping", f"{entry.mapping_id or '—'} {entry.mapping_version or ''}".strip()),
                        ("Quarantined", _when(record.created_at)),
                        ("Resolved", _when(record.resolved_at) if record.resolved_at else "open"),
                        ("Replays", record.replay_count),
                    ]
                ),
                tag("h2", "Details"),
                tag("ul", [tag("li", d) for d in entry.details]) if entry.details else tag("p", "None recorded."),
                tag(
                    "p",
                    "The payload is not shown here. An operator with access to the store reads it with ",
                    tag("code", f"bcconnect quarantine show {record.id}"),
                    ", fixes the mapping or the source, and replays it.",
                ),
                tag("p", tag("a", "Back to operations", href=ctx.href("/ops"))),
            ]
        )
        return Rendered(body, title=f"Quarantined record #{record.id}")

    return [
        Page("/ops", "Operations", overview, nav="Operations",
             description="Adapters, quarantine, identity review and failed syncs"),
        Page("/ops/quarantine/{id}", "Quarantined record", quarantined),
    ]  # fmt: skip
