"""The triage pages: the network worklist with cross-site context, a person's timeline, the waiting list.

They read only through :class:`~bcconnect.triage.Triage` (itself reading through the view), so what the
FHIR endpoint would withhold is withheld here too; every person shown goes on the page view's AuditEvent.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from bcconnect.app._app import Page, PageContext, Rendered
from bcconnect.app._html import Markup, html, join, tag
from bcconnect.app._widgets import PALETTE, Bar, Column, badge, bar_chart, expandable, facts, table
from bcconnect.errors import InvalidRequest
from bcconnect.triage import (
    LONG_WAIT_WEEKS,
    TRIAGE_READS,
    Fact,
    MutualAid,
    PathwayRow,
    Triage,
    WaitSummary,
    WorklistItem,
    display,
    parse_day,
    person_name,
    summarise,
    today,
    trusts_of,
)

_PRIORITY_TONE = {"asap": "red", "urgent": "amber", "routine": "blue"}
#: weeks-waited bands of the distribution chart (upper bounds; the last is open)
_BANDS = ((18, "0–18"), (40, "18–40"), (52, "40–52"), (65, "52–65"), (78, "65–78"), (104, "78–104"), (None, "104+"))


def _as_of(ctx: PageContext) -> date:
    raw = ctx.request.param("as-of")
    if not raw:
        return today()
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"as-of: {raw!r} is not a date (YYYY-MM-DD)") from None


def _select(name: str, label: str, options: Sequence[tuple[str, str]], chosen: str | None) -> Markup:
    return tag(
        "div",
        tag("label", label, for_=name),
        tag(
            "select",
            [tag("option", text, value=value, selected=value == (chosen or "")) for value, text in options],
            id=name,
            name=name,
        ),
    )


def _trust_badges(trusts: Iterable[str], stale: bool = False) -> Markup:
    return join([*(badge(t, "blue") for t in trusts), badge("stale feed", "amber") if stale else None])


def _fact_rows(items: Sequence[Fact], empty: str, *, value: bool = False) -> Markup:
    columns = [
        Column[Fact]("Date", lambda f: f.day.isoformat() if f.day else "—"),
        Column[Fact]("What", lambda f: join([f.text, *(badge(x, "red") for x in f.flags)])),
        *([Column[Fact]("Value", lambda f: f.value)] if value else []),
        Column[Fact]("Trust", lambda f: _trust_badges(f.trusts, f.stale)),
    ]
    return table(columns, items, empty=empty)


def _context_body(ctx: PageContext, item: WorklistItem) -> Markup:
    person = item.context
    parts: list[object] = []
    if item.duplicates:
        parts.append(
            tag(
                "div",
                tag("h3", "Possible duplicate referral"),
                tag(
                    "ul",
                    [
                        tag(
                            "li",
                            f"Open {d.reason_text or 'referral'} at ",
                            badge(d.trust, "blue"),
                            f" received {d.received.isoformat() if d.received else 'unknown'} (UBRN {d.ubrn or '—'})",
                        )
                        for d in item.duplicates
                    ],
                ),
                class_="panel warning",
            )
        )
    if item.route:
        parts.append(tag("p", badge("Routing", "amber"), " ", item.route))
    if person is None:
        return join(parts)
    age = person.age(_as_of(ctx))
    parts.append(
        facts(
            [
                ("NHS number", person.nhs_number or "not known"),
                ("Age", age if age is not None else "not known"),
                ("Long-term conditions", person.long_term_conditions),
                ("Flags", join(badge(f, "red") for f in person.flags) if person.flags else "none"),
                ("Known to", _trust_badges(person.trusts)),
            ]
        )
    )
    parts += [
        tag(
            "h3",
            f"A&E attendances and emergency admissions, last 12 months ({len(person.ae_attendances)} / "
            f"{len(person.emergency_admissions)})",
        ),
        _fact_rows([*person.emergency_admissions, *person.ae_attendances], "None in the last 12 months."),
        tag("h3", "Recent contacts across the trusts"),
        _fact_rows(person.contacts, "No contacts in the last two years."),
        tag("h3", "Active problems"),
        _fact_rows(person.problems, "No active problems recorded."),
        tag("h3", "Relevant results and investigations"),
        _fact_rows([*person.results, *person.procedures], "No relevant results.", value=True),
        tag("h3", "Current medications"),
        _fact_rows(person.medications, "No current medications recorded."),
        tag("p", tag("a", "Open the timeline across all trusts", href=ctx.href(f"/person/{item.person}"))),
    ]
    return join(parts)


def worklist_page(triage: Triage) -> Page:
    """``/worklist``: referrals awaiting triage in one network, across the four trusts."""

    async def render(ctx: PageContext) -> Rendered:
        config = triage.config
        network = ctx.request.param("network")
        trust = ctx.request.param("trust")
        priority = ctx.request.param("priority")
        form = tag(
            "form",
            _select("network", "Clinical network", [("", "Choose…"), *((n, n) for n in config.networks)], network),
            _select("trust", "Trust", [("", "All trusts"), *config.trusts.items()], trust),
            _select(
                "priority",
                "Priority",
                [("", "All"), ("asap", "Two-week wait"), ("urgent", "Urgent"), ("routine", "Routine")],
                priority,
            ),
            _keep_as_of(ctx),
            tag("div", tag("button", "Show worklist", type="submit")),
            method="get",
            action=ctx.href("/worklist"),
            class_="filters",
            aria_label="Worklist filters",
        )
        if not network:
            return Rendered(
                html("{}{}", form, tag("p", "Choose a clinical network to see its referrals awaiting triage."))
            )
        items = await triage.worklist(
            ctx.access,
            network,
            trust=trust,
            priority=priority if priority in _PRIORITY_TONE else None,
            as_of=_as_of(ctx),
        )
        ctx.patients.update(i.person for i in items)
        counts = Counter(i.referral.priority for i in items)
        lede = tag(
            "p",
            f"{len(items)} referral{'s' if len(items) != 1 else ''} awaiting triage — ",
            f"{counts['asap']} two-week wait, {counts['urgent']} urgent, {counts['routine']} routine. ",
            "Open a referral for what every trust knows about the person.",
            class_="lede",
        )
        rows = []
        for n, item in enumerate(items):
            person = item.context
            summary = join(
                [
                    badge(item.priority_label, _PRIORITY_TONE.get(item.referral.priority, "grey")),
                    f" {item.days_waiting} days · ",
                    badge(item.referral.trust, "blue"),
                    f" · {item.referral.reason_text or 'Referral'} · ",
                    tag("span", person.name if person else item.person, class_="person"),
                    f" ({person.age(_as_of(ctx))})" if person and person.birth_date else "",
                    " " if item.duplicates else "",
                    badge("possible duplicate", "red") if item.duplicates else None,
                    " " if item.route else "",
                    badge("routing", "amber") if item.route else None,
                ]
            )
            rows.append(expandable(summary, _context_body(ctx, item), id_=f"referral-{n}"))
        if not rows:
            rows.append(tag("p", "Nothing awaiting triage in this network.", class_="panel"))
        return Rendered(html("{}{}{}", form, lede, join(rows)), title=f"{network} triage worklist")

    return Page(
        "/worklist",
        "Triage worklist",
        render,
        resource_types=TRIAGE_READS,
        nav="Triage worklist",
        description="referrals awaiting triage in a network, with each person's record across the trusts",
    )


def _timeline_rows(resources: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    rows = []
    for r in resources:
        rtype = str(r.get("resourceType"))
        if rtype == "Patient":
            continue
        when = (
            parse_day(r.get("period", {}).get("start") if isinstance(r.get("period"), Mapping) else None)
            or parse_day(r.get("effectiveDateTime"))
            or parse_day(r.get("authoredOn"))
            or parse_day(r.get("start"))
            or parse_day(r.get("onsetDateTime"))
            or parse_day(r.get("recordedDate"))
            or parse_day(r.get("performedDateTime"))
            or parse_day(r.get("issued"))
        )
        what = (
            display(r.get("code"))
            or display(r.get("medicationCodeableConcept"))
            or display(r.get("serviceType"))
            or display(r.get("type", []))
            or display(r.get("performerType"))
        )
        rows.append((when.isoformat() if when else "", rtype, what, trusts_of(r)))
    rows.sort(key=lambda row: row[0], reverse=True)
    return rows


def person_page(triage: Triage) -> Page:
    """``/person/{id}``: one person's record across every trust, newest first."""

    async def render(ctx: PageContext) -> Rendered:
        person = ctx.path_params["id"]
        resources = await triage.timeline(ctx.access, person)
        ctx.patients.add(person)
        patient: Mapping[str, Any] = next((r for r in resources if r.get("resourceType") == "Patient"), {})
        name = person_name(patient) if patient else person
        rows = _timeline_rows(resources)
        per_trust = Counter(t for *_, trusts in rows for t in trusts)
        columns = [
            Column[tuple[str, str, str, tuple[str, ...]]]("Date", lambda r: r[0] or "—"),
            Column[tuple[str, str, str, tuple[str, ...]]]("Record", lambda r: r[1]),
            Column[tuple[str, str, str, tuple[str, ...]]]("What", lambda r: r[2]),
            Column[tuple[str, str, str, tuple[str, ...]]]("Trust", lambda r: _trust_badges(r[3])),
        ]
        lede = tag("p", f"{len(rows)} records from ", _trust_badges(sorted(per_trust)), class_="lede")
        return Rendered(
            html("{}{}", lede, table(columns, rows, caption="Timeline across the trusts")), title=f"Timeline: {name}"
        )

    return Page("/person/{id}", "Person timeline", render, resource_types=TRIAGE_READS)


def _distribution(rows: Sequence[PathwayRow], trust: str) -> list[Bar]:
    counts = [0] * len(_BANDS)
    for row in rows:
        if row.trust != trust:
            continue
        for i, (upper, _) in enumerate(_BANDS):
            if upper is None or row.days_waited <= upper * 7:
                counts[i] += 1
                break
    return [
        Bar(label, n, PALETTE[min(i, len(PALETTE) - 1)])
        for i, ((_, label), n) in enumerate(zip(_BANDS, counts, strict=True))
    ]


def waiting_list_page(triage: Triage) -> Page:
    """``/waiting-list``: the shared waiting list with charts, long waiters and mutual-aid options."""

    async def render(ctx: PageContext) -> Rendered:
        config = triage.config
        as_of = _as_of(ctx)
        tfc = ctx.request.param("tfc")
        trust = ctx.request.param("trust")
        rows = [r for r in await triage.pathways(ctx.access, as_of=as_of) if r.clock.running]
        if tfc:
            rows = [r for r in rows if r.tfc == tfc]
        if trust:
            rows = [r for r in rows if r.trust == trust]
        summary = _summaries(rows)
        offers = await triage.mutual_aid(ctx.access, as_of=as_of)
        offers = [o for o in offers if (not tfc or o.row.tfc == tfc) and (not trust or o.row.trust == trust)]
        ctx.patients.update(r.person for r in rows)
        tfcs = sorted({t for n in config.networks.values() for t in n.tfc})
        form = tag(
            "form",
            _select(
                "tfc", "Treatment function", [("", "All"), *((t, f"{t} {_network_of(triage, t)}") for t in tfcs)], tfc
            ),
            _select("trust", "Trust", [("", "All trusts"), *config.trusts.items()], trust),
            _keep_as_of(ctx),
            tag("div", tag("button", "Update", type="submit")),
            method="get",
            action=ctx.href("/waiting-list"),
            class_="filters",
            aria_label="Waiting-list filters",
        )
        trusts = sorted({r.trust for r in rows})
        by_trust = {s.trust: s for s in summary}
        charts = [
            bar_chart(
                "Within 18 weeks, by trust (standard: 92%)",
                [Bar(t, round(100 * by_trust[t].within_18_weeks, 1)) for t in trusts],
                unit="%",
                target=92,
                target_label="92%",
            ),
            bar_chart(
                "Waiting more than 52 weeks, by trust",
                [Bar(t, by_trust[t].over[52], "#d5281b") for t in trusts],
            ),
            *[bar_chart(f"Weeks waited at {t} ({by_trust[t].size} waiting)", _distribution(rows, t)) for t in trusts],
        ]
        lede = tag(
            "p",
            f"{len(rows)} open pathways across {len(trusts)} trusts at {as_of.isoformat()}; "
            f"{len(offers)} eligible for mutual aid (PIDMAS).",
            class_="lede",
        )
        summary_table = table(
            [
                Column[WaitSummary]("Trust", lambda s: s.trust),
                Column[WaitSummary]("TFC", lambda s: f"{s.tfc} {_network_of(triage, s.tfc)}"),
                Column[WaitSummary]("Waiting", lambda s: s.size, True),
                Column[WaitSummary]("Median weeks", lambda s: s.median_weeks, True),
                Column[WaitSummary]("92nd percentile", lambda s: s.p92_weeks, True),
                Column[WaitSummary]("Within 18 weeks", lambda s: f"{100 * s.within_18_weeks:.1f}%", True),
                *[Column[WaitSummary](f"Over {w}", _over(w), True) for w in LONG_WAIT_WEEKS],
            ],
            _summaries(rows, by_tfc=True),
            caption="By trust and treatment function",
        )
        aid_table = table(
            [
                Column[MutualAid]("Weeks", lambda o: o.row.weeks_waited, True),
                Column[MutualAid]("Trust", lambda o: badge(o.row.trust, "blue")),
                Column[MutualAid]("TFC", lambda o: o.row.tfc or ""),
                Column[MutualAid]("Person", lambda o: tag("a", "timeline", href=ctx.href(f"/person/{o.row.person}"))),
                Column[MutualAid]("Median here", lambda o: o.current_median_weeks, True),
                Column[MutualAid](
                    "Shorter waits at",
                    _alternatives,
                ),
            ],
            offers[:100],
            caption=(
                "Mutual aid: PIDMAS-eligible (over 40 weeks, routine, nothing booked in 8 weeks, adult); "
                "paired providers first"
            ),
            empty="No one is eligible for mutual aid.",
        )
        cancer = await triage.cancer(ctx.access, as_of=as_of)
        cancer_table = table(
            [
                Column[Any]("Trust", lambda c: c.trust),
                Column[Any]("Told within 28 days", lambda c: _pct(c.fds_rate, c.fds_told), True),
                Column[Any]("Treated within 62 days", lambda c: _pct(c.rate_62, c.treated), True),
            ],
            cancer,
            caption="Cancer: 28-day faster diagnosis (75%) and 62-day referral to treatment (85%)",
        )
        body = html(
            "{}{}{}{}{}{}",
            form,
            lede,
            tag("div", charts, class_="grid"),
            summary_table,
            aid_table,
            cancer_table,
        )
        return Rendered(body)

    return Page(
        "/waiting-list",
        "Shared waiting list",
        render,
        resource_types=TRIAGE_READS,
        nav="Waiting list",
        description="every open RTT pathway across the trusts, with charts, long waiters and mutual aid",
    )


def _over(weeks: int) -> Callable[[WaitSummary], int]:
    return lambda s: s.over[weeks]


def _keep_as_of(ctx: PageContext) -> Markup | None:
    """Carry ``as-of`` (a reference date) through a filter form."""
    raw = ctx.request.param("as-of")
    return tag("input", type="hidden", name="as-of", value=raw) if raw else None


def _alternatives(offer: MutualAid) -> Markup | str:
    shown = [
        join([badge(a.trust, "green" if a.paired else "blue"), f" {a.median_weeks} wk "]) for a in offer.alternatives
    ]
    return join(shown) if shown else "none shorter"


def _pct(rate: float | None, n: int) -> str:
    return f"{100 * rate:.0f}% of {n}" if rate is not None else "—"


def _network_of(triage: Triage, tfc: str) -> str:
    found = triage.config.network_of(tfc, frozenset())
    return found.name if found else ""


def _summaries(rows: Sequence[PathwayRow], *, by_tfc: bool = False) -> list[WaitSummary]:
    if by_tfc:
        return summarise(rows)
    grouped: dict[str, list[PathwayRow]] = defaultdict(list)
    for row in rows:
        grouped[row.trust].append(row)
    out = []
    for _, group in sorted(grouped.items()):
        merged = [_as_tfc(r, "all") for r in group]
        out += summarise(merged)
    return out


def _as_tfc(row: PathwayRow, tfc: str) -> PathwayRow:
    return replace(row, tfc=tfc)


def triage_pages(triage: Triage) -> list[Page]:
    """The worklist, person timeline and waiting-list pages over ``triage``."""
    return [worklist_page(triage), waiting_list_page(triage), person_page(triage)]
