"""The cohorts page: every cohort's size, and one cohort's members by borough and by GP practice (charts).

Aggregate only: no person is named on the page (the member list is on the FHIR Group and the CLI), so the
page view's AuditEvent names no patient. The caller needs search permission on Group, as the endpoint asks.
"""

from __future__ import annotations

from collections import Counter

from bcconnect.app._app import Page, PageContext, Rendered
from bcconnect.app._html import join, tag
from bcconnect.app._widgets import PALETTE, Bar, Column, bar_chart, facts, table
from bcconnect.cohorts import BOROUGHS, CohortRun, cohort_runs, current_cohort_members
from bcconnect.errors import InvalidRequest
from bcconnect.view import View

#: how many practices the practice chart shows (the table below it lists every one)
TOP_PRACTICES = 12


def _removed(run: CohortRun) -> str:
    return f"{run.removed_type2 + run.removed_type1}"


def cohorts_page(view: View) -> Page:
    """``/cohorts[?cohort=ID]``."""

    async def render(ctx: PageContext) -> Rendered:
        runs = await cohort_runs(view)
        if not runs:
            body = tag(
                "p",
                "No cohort has been computed yet. Run ",
                tag("code", "bcconnect cohort compute"),
                " (or wait for the schedule in bcconnect run).",
            )
            return Rendered(body)
        sizes = {r.group_id: await current_cohort_members(view, r.group_id) or [] for r in runs}
        chosen_id = ctx.request.param("cohort") or runs[0].group_id
        chosen = next((r for r in runs if r.group_id == chosen_id), None)
        if chosen is None:
            raise InvalidRequest(f"cohort: no cohort named {chosen_id!r}")
        overview = table(
            [
                Column[CohortRun]("Cohort", lambda r: tag("a", r.title, href=ctx.href("/cohorts", cohort=r.group_id))),
                Column[CohortRun]("People", lambda r: len(sizes[r.group_id]), numeric=True),
                Column[CohortRun]("Removed by the national data opt-out", _removed, numeric=True),
                Column[CohortRun]("Objectors left out", lambda r: r.removed_objection, numeric=True),
                Column[CohortRun]("Computed", lambda r: r.computed_at),
            ],
            runs,
            caption="Cohorts",
        )
        members = sizes[chosen.group_id]
        boroughs = Counter(m.borough or "Outside the four boroughs" for m in members)
        practices = Counter(m.practice or "No practice recorded" for m in members)
        names = [*BOROUGHS, *sorted(set(boroughs) - set(BOROUGHS))]
        borough_bars = [Bar(name, boroughs.get(name, 0), PALETTE[i % len(PALETTE)]) for i, name in enumerate(names)]
        top = practices.most_common(TOP_PRACTICES)
        practice_bars = [Bar(code, n) for code, n in top]
        selector = tag(
            "form",
            tag("label", "Cohort", for_="cohort"),
            tag(
                "select",
                [tag("option", r.title, value=r.group_id, selected=r.group_id == chosen.group_id) for r in runs],
                id="cohort",
                name="cohort",
            ),
            tag("button", "Show", type="submit", class_="nhs-button"),
            method="get",
            action=ctx.href("/cohorts"),
            class_="filters",
        )
        details = facts(
            [
                ("People", str(len(members))),
                (
                    "Removed by the national data opt-out",
                    f"{chosen.removed_type2} national, {chosen.removed_type1} type 1",
                ),
                ("Removed since computed (opted out or objected)", str(max(0, chosen.member_count - len(members)))),
                ("Objectors left out of the population", str(chosen.removed_objection)),
                ("Computed", chosen.computed_at),
                ("Group", tag("code", f"Group/{chosen.group_id}")),
            ]
        )
        practice_table = table(
            [
                Column[tuple[str, int]]("GP practice", lambda p: p[0]),
                Column[tuple[str, int]]("People", lambda p: p[1], numeric=True),
            ],
            sorted(practices.items(), key=lambda p: (-p[1], p[0])),
            caption=f"{chosen.title}: every practice",
        )
        body = join(
            [
                tag("p", "Population cohorts across the four trusts. Counts only: people under the national data "
                    "opt-out and people who object to the shared record are never in a cohort.", class_="lede"),
                overview,
                tag("h2", chosen.title),
                tag("p", chosen.description) if chosen.description else None,
                selector,
                details,
                tag(
                    "div",
                    bar_chart(f"{chosen.title} by borough", borough_bars, value_format=lambda v: f"{v:.0f}"),
                    bar_chart(
                        f"{chosen.title} by GP practice (largest {len(top)})",
                        practice_bars,
                        value_format=lambda v: f"{v:.0f}",
                    ),
                    class_="grid",
                ),
                practice_table,
            ]
        )  # fmt: skip
        return Rendered(body)

    return Page(
        "/cohorts",
        "Population cohorts",
        render,
        resource_types=("Group",),
        nav="Cohorts",
        description="cohort sizes by borough and GP practice (3+ long-term conditions, frequent admissions, …)",
    )
