"""Referral reality: e-RS referrals, triage outcomes, RTT pathways and their clocks, appointments, transfers.

Drawn per person from the person's generator (so still a pure function of ``(seed, i, now)``) with the
distributions of :class:`~bcconnect_sandbox.settings.ReferralSettings`. Each :class:`Referral` carries what the
trust records (UBRN, priority, TFC, requester practice, triage outcome, RTT period status events, appointment)
and the truth the generator decided (``clock_start``, ``clock_stop``, ``stop_code``), which
:mod:`bcconnect_sandbox.ground_truth` writes for the engine's answers to be checked against.

RTT period status codes (NHS Data Dictionary): 10 clock start, 20 subsequent activity, 21 transfer to another
provider, 30 first definitive treatment, 31/32 active monitoring, 33 DNA of the first activity (the period is
nullified; a new one starts when the patient rebooks), 34 decision not to treat, 35 declined, 36 died.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Final

from bcconnect_sandbox import reference as ref
from bcconnect_sandbox.settings import ReferralSettings

_DAY: Final = timedelta(days=1)
#: closed pathways: how they stopped (code, weight); 33 = discharged after a first-appointment DNA
_STOPS: Final = (("30", 0.62), ("32", 0.1), ("31", 0.03), ("34", 0.16), ("35", 0.05), ("36", 0.01), ("33", 0.03))


@dataclass(frozen=True, slots=True)
class Visit:
    """A contact the referral caused (an outpatient appointment attended, an elective admission)."""

    kind: str
    trust: str
    start: datetime
    days: int
    tfc: str | None
    admission_method: str | None = None
    procedure: ref.Concept | None = None


@dataclass(frozen=True, slots=True)
class Referral:
    """One e-RS referral at one provider, its RTT pathway there and its first appointment.

    ``clock_stop`` None: the clock is still running (open pathway). ``appointment_status``: booked, fulfilled,
    cancelled or noshow (None: none yet); ``cancelled_by``: patient or provider. ``events``: the RTT period
    status codes this provider recorded, with dates. ``transferred_in``: this is the onward referral of an
    inter-provider transfer (same PPI, original clock start). ``transferred_out``: the pathway left this
    provider on that date (status 21). ``duplicate_of``: the UBRN of the same person's other open referral in
    the same network at another trust.
    """

    network: ref.Network
    trust: str
    priority: str
    authored: date
    clock_stop: date | None
    appointment_start: datetime | None
    appointment_status: str | None
    ubrn: str = ""
    ppi: str = ""
    received: date | None = None
    reason: ref.Concept | None = None
    requester: str = ""
    triage: str = "accepted"
    triaged: date | None = None
    cancelled_by: str | None = None
    events: tuple[tuple[date, str], ...] = ()
    stop_code: str | None = None
    clock_start: date | None = None
    transferred_in: bool = False
    transferred_out: date | None = None
    fds: date | None = None
    next_activity: date | None = None
    duplicate_of: str | None = None

    @property
    def open(self) -> bool:
        """Whether this provider still holds a running clock for the pathway."""
        return self.clock_stop is None and self.transferred_out is None and self.triage not in ("returned",)


def ubrn(rng: random.Random) -> str:
    """A 12-digit e-RS Unique Booking Reference Number."""
    return f"{rng.randrange(10**11, 10**12)}"


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    target = rng.random() * sum(w for _, w in weighted)
    for value, weight in weighted:
        target -= weight
        if target < 0:
            return value
    return weighted[-1][0]


class ReferralDrawer:
    """Draws the referrals of one person (the order of draws is part of determinism)."""

    def __init__(
        self,
        rng: random.Random,
        now: datetime,
        trusts: tuple[str, ...],
        settings: ReferralSettings,
        *,
        pick_trust: Callable[[], str],
        practice: str,
    ) -> None:
        self.rng = rng
        self.now = now
        self.today = now.date()
        self.trusts = trusts
        self.settings = settings
        self.pick_trust = pick_trust
        self.practice = practice
        self.visits: list[Visit] = []

    def priority(self, network: ref.Network) -> str:
        """Routine, urgent or two-week-wait (``asap``; cancer networks only)."""
        roll = self.rng.random()
        s = self.settings
        if roll < s.routine_share:
            return "routine"
        if roll < s.routine_share + s.urgent_share or not network.cancer_pathway:
            return "urgent"
        return "asap"

    def wait_days(self, priority: str, trust: str, network: ref.Network, *, scale: float = 1.0) -> int:
        """A log-normal wait around the trust's and network's median, in days."""
        s = self.settings
        median = s.median(priority, trust, network.name) * scale
        weeks = min(s.max_wait_weeks, math.exp(math.log(median) + self.rng.gauss(0.0, s.wait_spread)))
        return max(1, round(weeks * 7))

    def draw(self, network: ref.Network) -> list[Referral]:
        """One referral chain to ``network``: the referral, and its duplicate or onward referral if any."""
        rng, s = self.rng, self.settings
        priority = self.priority(network)
        trust = self.pick_trust()
        reasons = ref.REFERRAL_REASONS[network.name]
        # a two-week-wait ENT referral is a head-and-neck cancer presentation (the first reason)
        reason = reasons[0] if priority == "asap" and network.name == "ENT" else rng.choice(reasons)
        number = ubrn(rng)
        base = Referral(
            network, trust, priority, self.today, None, None, None,
            ubrn=number, ppi=number, reason=reason, requester=self.practice,
        )  # fmt: skip
        if network.tfc is None:  # non-RTT (pharmacy): a referral without a pathway
            received = self.today - timedelta(days=rng.randint(1, 300))
            return [replace(base, authored=received, received=received, triaged=received)]
        chain = self._open(base) if rng.random() < s.open_share else self._closed(base)
        if chain[-1].open and len(self.trusts) > 1 and rng.random() < s.duplicate_rate:
            chain.append(self._duplicate(chain[-1]))
        return chain

    def _received(self, days_ago: int) -> tuple[date, date]:
        received = self.today - timedelta(days=days_ago)
        return received - timedelta(days=self.rng.randint(0, 3)), received

    def _open(self, base: Referral) -> list[Referral]:
        rng, s = self.rng, self.settings
        if rng.random() < s.awaiting_triage_share:
            authored, received = self._received(rng.randint(0, 5 if base.priority == "asap" else 20))
            return [replace(base, authored=authored, received=received, triage="awaiting",
                            events=((received, "10"),), clock_start=received)]  # fmt: skip
        days = self.wait_days(base.priority, base.trust, base.network)
        authored, received = self._received(days)
        triaged = min(self.today, received + timedelta(days=rng.randint(1, 10)))
        referral = replace(base, authored=authored, received=received, triaged=triaged, clock_start=received)
        outcome = rng.random()
        if outcome < s.returned_rate:  # returned to the GP with advice: no pathway, no clock
            return [replace(referral, triage="returned", stop_code="34", clock_stop=triaged,
                            events=((received, "10"), (triaged, "34")))]  # fmt: skip
        others = [t for t in self.trusts if t != base.trust]
        if others and outcome < s.returned_rate + s.redirected_rate:
            return self._transfer(replace(referral, triage="redirected"), triaged, rng.choice(others))
        if others and rng.random() < s.transfer_rate:
            moved = received + timedelta(days=rng.randint(7, max(8, (self.today - received).days - 1)))
            if moved < self.today:
                return self._transfer(referral, moved, rng.choice(others))
        return [self._running(referral)]

    def _running(self, referral: Referral) -> Referral:
        """An open pathway: first appointment none / booked / attended; a DNA restarts a routine/urgent clock."""
        rng = self.rng
        received = referral.received or referral.authored
        events: list[tuple[date, str]] = [(received, "10")]
        clock_start = referral.clock_start or received
        waited = (self.today - received).days
        roll = rng.random()
        appt: datetime | None = None
        status: str | None = None
        next_activity: date | None = None
        cancelled_by: str | None = None
        if waited > 14 and roll < self.settings.dna_rate:
            seen = received + timedelta(days=rng.randint(7, max(8, waited - 3)))
            appt, status = self._at(seen), "noshow"
            # DD: a routine/urgent DNA of the period's *first* activity nullifies it (after a transfer the
            # period's first activity was at the first provider, so the clock runs on)
            if referral.priority != "asap" and not referral.transferred_in:
                rebooked = min(self.today, seen + timedelta(days=rng.randint(1, 3)))
                events += [(seen, "33"), (rebooked, "10")]
                clock_start = rebooked
        elif roll < 0.45:
            when = self.today + timedelta(days=rng.randint(1, 140))
            appt, status, next_activity = self._at(when), "booked", when
        elif roll < 0.55:
            appt, status = self._at(received + timedelta(days=rng.randint(3, max(4, waited)))), "cancelled"
            cancelled_by = rng.choice(("patient", "provider"))
        elif roll < 0.8 and waited > 14:
            seen = received + timedelta(days=rng.randint(7, max(8, waited - 1)))
            appt, status = self._at(seen), "fulfilled"
            events.append((seen, "20"))
            self.visits.append(Visit("outpatient", referral.trust, appt, 0, referral.network.tfc))
        fds = None
        if referral.priority == "asap" and waited > 10 and rng.random() < 0.8:
            fds = received + timedelta(days=min(waited, max(3, round(rng.lognormvariate(math.log(20), 0.45)))))
        return replace(
            referral,
            appointment_start=appt,
            appointment_status=status,
            cancelled_by=cancelled_by,
            next_activity=next_activity,
            events=tuple(events) if not referral.transferred_in else referral.events,
            clock_start=clock_start,
            fds=fds,
        )

    def _transfer(self, referral: Referral, moved: date, onward_trust: str) -> list[Referral]:
        """The pathway leaves ``referral.trust`` on ``moved`` (21) and continues at ``onward_trust``: same PPI."""
        received = referral.received or referral.authored
        left = replace(referral, transferred_out=moved, events=((received, "10"), (moved, "21")), clock_start=received)
        onward = Referral(
            referral.network,
            onward_trust,
            referral.priority,
            moved,
            None,
            None,
            None,
            ubrn=ubrn(self.rng),
            ppi=referral.ppi,
            received=moved,
            reason=referral.reason,
            requester=referral.requester,
            triage="accepted",
            triaged=moved,
            clock_start=received,
            transferred_in=True,
            events=((received, "10"), (moved, "21")),
        )
        return [left, self._running(onward)]

    def _duplicate(self, first: Referral) -> Referral:
        """The GP referred the same problem to a second trust of the network as well (both open)."""
        other = self.rng.choice([t for t in self.trusts if t != first.trust])
        authored, received = self._received(self.rng.randint(0, 20))
        return Referral(
            first.network, other, first.priority, authored, None, None, None,
            ubrn=(number := ubrn(self.rng)), ppi=number, received=received, reason=first.reason,
            requester=first.requester, triage="awaiting", events=((received, "10"),), clock_start=received,
            duplicate_of=first.ubrn,
        )  # fmt: skip

    def _closed(self, base: Referral) -> list[Referral]:
        rng = self.rng
        days_ago = rng.randint(30, 700 if base.priority == "routine" else 300)
        authored, received = self._received(days_ago)
        length = min(days_ago - 1, self.wait_days(base.priority, base.trust, base.network, scale=0.7))
        stop = received + timedelta(days=max(1, length))
        code = _pick(rng, _STOPS)
        if code == "33" and base.priority == "asap":
            code = "34"  # a two-week-wait DNA does not stop the clock; the clinician discharged instead
        seen = received + timedelta(days=max(1, min(length, rng.randint(7, max(8, length)))))
        events: list[tuple[date, str]] = [(received, "10")]
        status = "noshow" if code == "33" else "fulfilled"
        if code == "33":
            stop = seen
        else:
            events.append((seen, "20"))
            self.visits.append(Visit("outpatient", base.trust, self._at(seen), 0, base.network.tfc))
        events.append((stop, code))
        if code == "30" and rng.random() < 0.6:
            self.visits.append(
                Visit("elective", base.trust, self._at(stop) + timedelta(hours=-1), rng.randint(0, 3),
                      base.network.tfc, rng.choice(("11", "11", "12", "13")), rng.choice(ref.ELECTIVE_PROCEDURES))
            )  # fmt: skip
        fds = None
        if base.priority == "asap":
            fds = received + timedelta(days=min(length, max(3, round(rng.lognormvariate(math.log(20), 0.45)))))
        return [
            replace(
                base,
                authored=authored,
                received=received,
                triaged=received + timedelta(days=1),
                clock_start=received,
                clock_stop=stop,
                stop_code=code,
                appointment_start=self._at(seen),
                appointment_status=status,
                events=tuple(events),
                fds=fds,
            )
        ]

    def _at(self, day: date) -> datetime:
        """A clinic time on ``day``."""
        return datetime.combine(day, self.now.timetz()).replace(hour=9) + timedelta(
            minutes=15 * self.rng.randint(0, 28)
        )
