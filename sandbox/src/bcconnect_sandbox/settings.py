"""Typed settings of the sandbox: population size and seed, identity noise, fault injection, credentials."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Final

ALL_TRUSTS: Final = ("RL4", "RXK", "RNA", "RBK")
DEFAULT_NOW: Final = datetime(2026, 11, 1, tzinfo=UTC)
MAX_PERSONS: Final = 1_300_000


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
    """Identity noise in each trust's copy of a person (probabilities per source patient record)."""

    nhs_missing: float = 0.05
    nhs_unverified: float = 0.08
    typo: float = 0.03
    nickname: float = 0.04
    dob_swapped: float = 0.01
    moved_house: float = 0.05
    duplicate: float = 0.02
    #: share of in-trust duplicates that are already merged at the start (the rest merge as time moves)
    merged_at_start: float = 0.5

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
