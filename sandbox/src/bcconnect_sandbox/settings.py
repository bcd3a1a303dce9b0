"""Typed settings of the sandbox: population size and seed, identity noise, fault injection, credentials."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Final

ALL_TRUSTS: Final = ("RL4", "RXK", "RNA", "RBK")
DEFAULT_NOW: Final = datetime(2026, 11, 1, tzinfo=UTC)
MAX_PERSONS: Final = 1_300_000
#: records per person and trust a world at density 0 can hold (the logical clock's stride per person)
SPARSE_TICKS_PER_PERSON: Final = 128
#: the stride per unit of density above 0: a dense record of a multimorbid person fits with room to spare
DENSE_TICKS_PER_PERSON: Final = 2048
MAX_DENSITY: Final = 8.0


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """What goes wrong, how often. Rates are probabilities per data request (or per HL7 message).

    Faults are drawn from a generator seeded with ``seed`` and the trust, one draw per request in arrival order,
    so a sequential client meets the same faults on every run. The OAuth token endpoint is never faulted.
    """

    seed: int = 0
    #: share of data requests answered 500, 502 or 503
    error_rate: float = 0.0
    #: share of data requests that start a burst of ``burst_length`` 429 answers with ``Retry-After``
    burst_429_rate: float = 0.0
    burst_length: int = 3
    retry_after_seconds: int = 1
    #: added to every data request (milliseconds)
    latency_ms: float = 0.0
    #: share of requests that hang (no answer) for ``hang_seconds`` or until the client gives up
    timeout_rate: float = 0.0
    hang_seconds: float = 30.0
    #: share of answers whose connection is reset after half the body
    reset_rate: float = 0.0
    #: share of answers cut short (200, valid headers, invalid JSON)
    truncated_rate: float = 0.0
    #: share of answers whose JSON is syntactically broken
    malformed_rate: float = 0.0
    #: share of HL7 messages sent with a broken segment
    hl7_malformed_rate: float = 0.0
    #: share of records/messages delivered twice (HL7 resend, RNA feed repeat, FHIR page entry twice)
    duplicate_rate: float = 0.0
    #: share of records/messages swapped with their successor (HL7 and the RNA feed)
    out_of_order_rate: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_rate") and not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {f.name} must be between 0 and 1, got {value}")
            if f.name in {"latency_ms", "hang_seconds"} and value < 0:
                raise ValueError(f"fault {f.name} must not be negative, got {value}")
        if self.burst_length < 1:
            raise ValueError(f"fault burst_length must be at least 1, got {self.burst_length}")

    @classmethod
    def parse(cls, spec: str, *, seed: int = 0) -> FaultSettings:
        """Read ``name=value,name=value`` (the CLI's ``--faults``); unknown names raise ValueError.

        >>> FaultSettings.parse("error_rate=0.1,latency_ms=20").error_rate
        0.1
        """
        known = {f.name: f for f in fields(cls)}
        values: dict[str, float | int] = {"seed": seed}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, raw = part.partition("=")
            name = name.strip()
            if not sep or name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(known))}")
            try:
                values[name] = int(raw) if name in {"seed", "burst_length", "retry_after_seconds"} else float(raw)
            except ValueError as exc:
                raise ValueError(f"fault {name} needs a number, got {raw!r}") from exc
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class NoiseSettings:
    """Identity noise: per source patient record unless said otherwise (each rate in 0–1).

    The defaults are what a trust PAS of the region plausibly carries; each comment gives the reasoning. They
    are deliberately round figures, not fitted to any linkage result: the linker must hold at any of them.
    Every record's ground truth lists the categories it carries (``ground_truth.csv`` column ``noise``).
    """

    #: no NHS number (newborns before registration, overseas visitors, walk-ins): ~5% of PAS records
    nhs_missing: float = 0.05
    #: NHS number present but not verified by a trace (status 02–05): ~8% (PDS trace backlog at registration)
    nhs_unverified: float = 0.08
    #: one keyboard slip in a name (swap, drop or double a letter)
    typo: float = 0.03
    #: a nickname or short form (Jim, Kasia, Preet, Mo), from the region's languages, not a formal name
    nickname: float = 0.04
    #: day and month swapped (US-style keying) when both are ≤ 12
    dob_swapped: float = 0.01
    #: an old address (the trust was never told of the move)
    moved_house: float = 0.05
    #: an in-trust duplicate registration (worse noise on the duplicate)
    duplicate: float = 0.02
    #: share of in-trust duplicates that are already merged at the start (the rest merge as time moves)
    merged_at_start: float = 0.5
    #: given and family name entered the wrong way round (naming orders differ between cultures): ~0.5%
    name_swap: float = 0.005
    #: one digit of the year of birth mistyped (1985 → 1958, 1985 → 1986)
    dob_year_typo: float = 0.005
    #: a wrong NHS number that still passes Modulus 11 (two digits transposed); never verified by a trace
    nhs_transposed: float = 0.002
    #: another person's NHS number (a relative's, or the next patient's on the clerk's screen); never verified
    nhs_other_person: float = 0.001
    #: no phone number recorded
    phone_missing: float = 0.10
    #: a landline recorded instead of the person's mobile
    landline: float = 0.05
    #: a transliteration variant of a name from a non-Latin script (Mohammed/Muhammad, Siddiqui/Siddiqi)
    transliteration: float = 0.05
    #: one part of a hyphenated or double surname dropped (of persons who have one)
    surname_part_dropped: float = 0.25
    #: the maiden surname still on the record (of persons who changed surname on marriage)
    maiden_name: float = 0.15
    #: the middle name used as the first name (of persons who have a middle name and go by it)
    middle_as_first: float = 0.02
    #: a title typed into the given name field ("Mr John")
    title_in_given: float = 0.01
    #: names typed in capitals
    capitals: float = 0.10
    #: sex not recorded or unknown
    sex_unknown: float = 0.01
    #: share of person pairs (2k, 2k+1) that are twins: same surname, date of birth, address; ~1.5% of births
    twins: float = 0.015
    #: share of person pairs that are strangers with the same name and date of birth in the same borough
    same_name_strangers: float = 0.004
    #: share of person pairs that are a parent and child with the same name at the same address
    parent_child: float = 0.004

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"noise {f.name} must be between 0 and 1, got {value}")

    @classmethod
    def parse(cls, spec: str) -> NoiseSettings:
        """Read ``name=value,…`` (the CLI's ``--noise``) over the defaults; unknown names raise ValueError.

        >>> NoiseSettings.parse("nhs_missing=0.1").nhs_missing
        0.1
        """
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, raw = part.partition("=")
            name = name.strip()
            if not sep or name not in known:
                raise ValueError(f"unknown noise {name!r}; known: {', '.join(sorted(known))}")
            try:
                values[name] = float(raw)
            except ValueError as exc:
                raise ValueError(f"noise {name} needs a number, got {raw!r}") from exc
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ReferralSettings:
    """How referrals, RTT waits and their outcomes are distributed (so mutual aid has something to find).

    Open waits are log-normal: median ``median_weeks[priority]`` × the trust's factor × the network's factor,
    spread ``wait_spread`` (the σ of the log), capped at ``max_wait_weeks`` — a long tail past 52, 65, 78, 104.
    """

    #: share of routine / urgent referrals (the rest of a cancer network's are two-week-wait, ``asap``)
    routine_share: float = 0.68
    urgent_share: float = 0.18
    median_weeks: tuple[tuple[str, float], ...] = (("routine", 17.0), ("urgent", 7.0), ("asap", 2.5))
    trust_wait_factor: tuple[tuple[str, float], ...] = (("RL4", 0.8), ("RBK", 0.75), ("RNA", 1.45), ("RXK", 1.2))
    network_wait_factor: tuple[tuple[str, float], ...] = (
        ("ENT", 1.35),
        ("Orthopaedics", 1.4),
        ("Ophthalmology", 1.1),
        ("Gynaecology", 1.2),
        ("General Surgery", 1.0),
        ("Skin", 0.8),
    )
    wait_spread: float = 0.75
    max_wait_weeks: float = 125.0
    #: share of referrals still open (waiting) at "now"
    open_share: float = 0.55
    #: share of open referrals received in the last three weeks and not yet triaged
    awaiting_triage_share: float = 0.15
    #: first appointments the patient did not attend
    dna_rate: float = 0.07
    #: open pathways moved to another provider (inter-provider transfer; the clock continues)
    transfer_rate: float = 0.06
    #: triage outcomes of triaged referrals: returned to the referrer with advice, redirected to another provider
    returned_rate: float = 0.06
    redirected_rate: float = 0.03
    #: open referrals with a second open referral of the same person in the same network at another trust
    duplicate_rate: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and f.name.endswith(("_rate", "_share")) and not 0.0 <= value <= 1.0:
                raise ValueError(f"referral {f.name} must be between 0 and 1, got {value}")
        if self.routine_share + self.urgent_share > 1.0:
            raise ValueError("referral routine_share + urgent_share must not exceed 1")

    def median(self, priority: str, trust: str, network: str) -> float:
        """The median open wait in weeks for a referral of ``priority`` to ``network`` at ``trust``."""
        return (
            dict(self.median_weeks)[priority]
            * dict(self.trust_wait_factor).get(trust, 1.0)
            * dict(self.network_wait_factor).get(network, 1.0)
        )


@dataclass(frozen=True, slots=True)
class Credentials:
    """How a client authenticates to one simulated trust: OAuth2 client credentials or an API key."""

    client_id: str | None = None
    client_secret: str | None = None
    api_key: str | None = None


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """Everything that defines a simulated world; two worlds with equal settings serve equal bytes."""

    persons: int = 200
    seed: int = 0
    #: how much history each person carries (:mod:`bcconnect_sandbox.density`): 0 the sparse identity-and-triage
    #: story (~9 records a person), 1 a shared-care-record-like record (~150 a person, 100–400 for adults with
    #: long-term conditions), 2 twice the rates
    density: float = 1.0
    trusts: tuple[str, ...] = ALL_TRUSTS
    faults: FaultSettings = field(default_factory=FaultSettings)
    noise: NoiseSettings = field(default_factory=NoiseSettings)
    referrals: ReferralSettings = field(default_factory=ReferralSettings)
    #: the simulated "now" when the world starts; history spans years before it
    now: datetime = DEFAULT_NOW
    host: str = "127.0.0.1"
    #: fixed ports per trust (0 or missing = a free port)
    ports: tuple[tuple[str, int], ...] = ()
    default_page_size: int = 50
    max_page_size: int = 1000
    token_ttl_seconds: int = 300
    #: RXK answers 429 above this many requests per (wall-clock) second; 0 switches the limit off
    rxk_requests_per_second: float = 50.0
    #: HL7 sender: how long to wait for an ACK before resending, and how often to try
    hl7_ack_timeout: float = 5.0
    hl7_attempts: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.persons <= MAX_PERSONS:
            raise ValueError(f"persons must be between 1 and {MAX_PERSONS}, got {self.persons}")
        unknown = [t for t in self.trusts if t not in ALL_TRUSTS]
        if unknown or not self.trusts:
            raise ValueError(f"trusts must be a non-empty subset of {ALL_TRUSTS}, got {self.trusts}")
        if self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware (UTC)")
        if not 1 <= self.default_page_size <= self.max_page_size:
            raise ValueError("default_page_size must be between 1 and max_page_size")
        if not 0 <= self.density <= MAX_DENSITY:
            raise ValueError(f"density must be between 0 and {MAX_DENSITY:g}, got {self.density}")

    @property
    def ticks_per_person(self) -> int:
        """Logical-clock ticks (milliseconds of ``lastUpdated``) reserved per person and trust: the most records
        a person can hold at one trust is one less (the last tick marks the person's end)."""
        if self.density == 0:
            return SPARSE_TICKS_PER_PERSON
        return DENSE_TICKS_PER_PERSON * math.ceil(self.density)

    @property
    def base_load_span(self) -> timedelta:
        """How long before ``now`` the starting snapshot was loaded: three days, or longer when the population's
        ticks need it (one millisecond per tick), so every base version is older than ``now``."""
        needed = timedelta(milliseconds=1_000 + self.persons * self.ticks_per_person)
        return max(timedelta(days=3), needed + timedelta(days=1))

    def port(self, trust: str) -> int:
        """The configured port of ``trust`` (0 = pick a free one)."""
        return dict(self.ports).get(trust, 0)

    def credentials(self, trust: str) -> Credentials:
        """The synthetic credentials of ``trust``, derived from the seed so a demo can print them."""
        if trust == "RNA":
            return Credentials(api_key=f"rna-sandbox-key-{self.seed}")
        if trust in {"RL4", "RXK"}:
            # client id "bcconnect" as in adapters/<trust>/adapter.toml; the secret differs per trust
            return Credentials(client_id="bcconnect", client_secret=f"{trust.lower()}-sandbox-secret-{self.seed}")
        return Credentials()

    def with_faults(self, faults: FaultSettings) -> SandboxSettings:
        """A copy with other fault settings."""
        return replace(self, faults=faults)
