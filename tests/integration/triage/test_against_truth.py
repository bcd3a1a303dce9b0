"""Worklist, waiting list and mutual aid against the sandbox's ground truth (real adapters, mappings, store).

RBK's HL7 feed carries referrals (REF^I12) but no RTT pathways, so pathways that touched RBK are outside the
waiting-list comparison; people who object to sharing are withheld by the view and left out of both sides.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest

from bcconnect.triage import Triage
from bcconnect.view import OPEN_ACCESS

from .conftest import SyncedWorld

pytestmark = pytest.mark.anyio


def _rbk_ppis(world: SyncedWorld) -> set[str]:
    return {r["ppi"] for r in world.referrals if r["ods_code"] == "RBK"}


def _visible(row: dict[str, str]) -> bool:
    return row["objects"] == "N"


async def test_waiting_list_matches_the_true_clocks(synced: SyncedWorld) -> None:
    """Every open pathway the truth knows (outside RBK) is on the list with the true start, provider and wait."""
    triage = Triage(synced.view)
    rows = await triage.waiting_list(OPEN_ACCESS, as_of=synced.as_of)
    by_ppi = {r.ppi: r for r in rows}
    excluded = _rbk_ppis(synced)
    truth = [t for t in synced.rtt if t["open"] == "Y" and t["ppi"] not in excluded and _visible(t)]
    assert len(truth) > 40
    mismatches = []
    for t in truth:
        row = by_ppi.get(t["ppi"])
        if row is None:
            mismatches.append((t["ppi"], "missing"))
            continue
        got = (row.trust, str(row.clock.start), row.days_waited, row.tfc)
        want = (t["ods_code"], t["clock_start"], int(t["days_waited"]), t["tfc"])
        if got != want:
            mismatches.append((t["ppi"], got, want))
    assert mismatches == []
    closed = {t["ppi"] for t in synced.rtt if t["open"] == "N"}
    assert not [r.ppi for r in rows if r.ppi in closed], "a stopped or nullified clock is on the waiting list"


async def test_long_waiter_counts_match_the_truth(synced: SyncedWorld) -> None:
    """Per trust and TFC, the counts past 52 weeks and the list size equal the truth's (outside RBK)."""
    triage = Triage(synced.view)
    summary = {(s.trust, s.tfc): s for s in await triage.summary(OPEN_ACCESS, as_of=synced.as_of)}
    excluded = _rbk_ppis(synced)
    want_size: dict[tuple[str, str], int] = defaultdict(int)
    want_52: dict[tuple[str, str], int] = defaultdict(int)
    for t in synced.rtt:
        if t["open"] == "Y" and t["ppi"] not in excluded and _visible(t):
            want_size[(t["ods_code"], t["tfc"])] += 1
            want_52[(t["ods_code"], t["tfc"])] += int(t["days_waited"]) > 52 * 7
    for key, size in want_size.items():
        assert summary[key].size == size, key
        assert summary[key].over[52] == want_52[key], key


async def test_worklist_is_exactly_the_referrals_awaiting_triage(synced: SyncedWorld) -> None:
    """For every network, the worklist holds exactly the open untriaged referrals (all four trusts), in order:
    two-week wait, urgent, routine, longest wait first; duplicates of one person at two trusts are flagged."""
    triage = Triage(synced.view)
    total = 0
    for network in ("ENT", "Orthopaedics", "Urology", "Breast", "Colorectal", "Ophthalmology"):
        items = await triage.worklist(OPEN_ACCESS, network, as_of=synced.as_of, with_context=False)
        got = {i.referral.ubrn for i in items}
        want = {
            r["ubrn"]
            for r in synced.referrals
            if r["network"] == network and r["triage"] == "awaiting" and r["open"] == "Y" and _visible(r)
        }
        assert got == want, network
        total += len(got)
        ranks = [({"asap": 0, "urgent": 1, "routine": 2}[i.referral.priority], -i.days_waiting) for i in items]
        assert ranks == sorted(ranks)
        truth_dups = {r["ubrn"]: r["duplicate_of"] for r in synced.referrals if r["duplicate_of"] and _visible(r)}
        for item in items:
            if item.referral.ubrn in truth_dups:
                assert truth_dups[item.referral.ubrn] in {d.ubrn for d in item.duplicates}, item.referral.ubrn
    assert total >= 5


async def test_mutual_aid_finds_the_pidmas_cohort(synced: SyncedWorld) -> None:
    """PIDMAS-eligible = routine, > 40 weeks, nothing booked within 8 weeks, adult, not transferred — the
    truth's set (outside RBK), each offered only providers with a shorter current wait for the TFC."""
    triage = Triage(synced.view)
    offers = await triage.mutual_aid(OPEN_ACCESS, as_of=synced.as_of)
    horizon = synced.as_of + timedelta(weeks=8)
    excluded = _rbk_ppis(synced)
    want = {
        t["ppi"]
        for t in synced.rtt
        if t["open"] == "Y"
        and t["priority"] == "routine"
        and int(t["days_waited"]) > 40 * 7
        and (not t["next_activity"] or t["next_activity"] > horizon.isoformat())
        and int(t["age"]) >= 18
        and t["transferred"] == "N"
        and t["ppi"] not in excluded
        and _visible(t)
    }
    assert want
    got = {o.row.ppi for o in offers if o.row.ppi not in excluded}
    assert got == want
    for offer in offers:
        assert all(a.median_weeks < offer.current_median_weeks for a in offer.alternatives)
        assert all(a.trust != offer.row.trust for a in offer.alternatives)
