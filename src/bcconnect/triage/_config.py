"""Triage configuration: the clinical networks, context code lists, flags and routing rules (``networks.toml``).

The package ships the defaults; a deployment overrides them with its own file of the same shape
(:func:`load_triage_config`). Every list is data, not code: a new network or pairing needs no release.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bcconnect.config import parse_toml
from bcconnect.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Network:
    """A clinical network: the treatment functions and presenting problems that route referrals to it."""

    name: str
    tfc: tuple[str, ...]
    reasons: frozenset[str]
    cancer: bool = False
    surgical: bool = False
    context_results: frozenset[str] = frozenset()
    context_procedures: frozenset[str] = frozenset()
    context_conditions: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Flag:
    """A fact worth a warning on a surgical referral (anticoagulated, diabetic), by the codes that show it."""

    key: str
    label: str
    medications: frozenset[str] = frozenset()
    conditions: frozenset[str] = frozenset()
    results: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Pairing:
    """Two (or more) providers sharing a service: mutual aid looks within the pairing first."""

    name: str
    tfc: frozenset[str]
    trusts: tuple[str, ...]
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Route:
    """A kind of referral that belongs with one provider (head and neck cancer → Wolverhampton)."""

    name: str
    network: str
    priority: frozenset[str]
    reasons: frozenset[str]
    to: str


@dataclass(frozen=True, slots=True)
class Systems:
    """Identifier systems and extension URLs the triage answers are read from."""

    ubrn: str
    ppi: tuple[str, ...]
    treatment_function: str
    rtt_event_extension: str
    review_outcome_extension: str
    faster_diagnosis_extension: str
    admission_method_extension: str


@dataclass(frozen=True, slots=True)
class TriageConfig:
    """Everything :class:`~bcconnect.triage.Triage` is configured with."""

    systems: Systems
    trusts: dict[str, str]
    networks: dict[str, Network]
    flags: tuple[Flag, ...]
    pairings: tuple[Pairing, ...]
    routes: tuple[Route, ...]
    #: PIDMAS cohort 1: waited more than this many weeks …
    pidmas_min_weeks: int = 40
    #: … with no appointment or admission date within this many weeks; adults only
    pidmas_horizon_weeks: int = 8
    pidmas_min_age: int = 18
    #: emergency admission methods (UK Core AdmissionMethodEngland): 21–25, 2A–2D, 28
    emergency_admission_methods: frozenset[str] = field(
        default_factory=lambda: frozenset({"21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"})
    )

    def network(self, name: str) -> Network:
        """The network called ``name`` (case-insensitive); ConfigError naming the known ones otherwise."""
        for key, network in self.networks.items():
            if key.lower() == name.strip().lower():
                return network
        raise ConfigError(f"no clinical network {name!r}; known: {', '.join(sorted(self.networks))}")

    def network_of(self, tfc: str | None, reasons: frozenset[str]) -> Network | None:
        """The network a referral belongs to: by treatment function, else by presenting problem."""
        for network in self.networks.values():
            if tfc is not None and tfc in network.tfc:
                return network
        for network in self.networks.values():
            if reasons & network.reasons:
                return network
        return None

    def with_pairing(self, name: str, *, enabled: bool) -> TriageConfig:
        """A copy with the pairing whose name starts with ``name`` switched on or off."""
        pairings = tuple(
            Pairing(p.name, p.tfc, p.trusts, enabled) if p.name.lower().startswith(name.lower()) else p
            for p in self.pairings
        )
        return TriageConfig(
            self.systems, self.trusts, self.networks, self.flags, pairings, self.routes,
            self.pidmas_min_weeks, self.pidmas_horizon_weeks, self.pidmas_min_age, self.emergency_admission_methods,
        )  # fmt: skip


def _codes(table: dict[str, Any], key: str) -> frozenset[str]:
    return frozenset(str(v) for v in table.get(key, ()))


def parse_triage_config(data: dict[str, Any], *, origin: str = "networks.toml") -> TriageConfig:
    """A :class:`TriageConfig` from the parsed TOML (ConfigError naming ``origin`` and the key when wrong)."""
    try:
        sys = data["systems"]
        systems = Systems(
            ubrn=sys["ubrn"],
            ppi=tuple(sys["ppi"]),
            treatment_function=sys["treatment_function"],
            rtt_event_extension=sys["rtt_event_extension"],
            review_outcome_extension=sys["review_outcome_extension"],
            faster_diagnosis_extension=sys["faster_diagnosis_extension"],
            admission_method_extension=sys["admission_method_extension"],
        )
        networks = {
            name: Network(
                name=name,
                tfc=tuple(str(t) for t in table.get("tfc", ())),
                reasons=_codes(table, "reasons"),
                cancer=bool(table.get("cancer", False)),
                surgical=bool(table.get("surgical", False)),
                context_results=_codes(table, "context_results"),
                context_procedures=_codes(table, "context_procedures"),
                context_conditions=_codes(table, "context_conditions"),
            )
            for name, table in data["networks"].items()
        }
        flags = tuple(
            Flag(key, t.get("label", key), _codes(t, "medications"), _codes(t, "conditions"), _codes(t, "results"))
            for key, t in data.get("flags", {}).items()
        )
        routing = data.get("routing", {})
        pairings = tuple(
            Pairing(p["name"], _codes(p, "tfc"), tuple(p["trusts"]), bool(p.get("enabled", True)))
            for p in routing.get("pairing", ())
        )
        routes = tuple(
            Route(r["name"], r["network"], _codes(r, "priority"), _codes(r, "reasons"), r["to"])
            for r in routing.get("route", ())
        )
        pidmas = data.get("pidmas", {})
        config = TriageConfig(
            systems=systems,
            trusts=dict(data.get("trusts", {})),
            networks=networks,
            flags=flags,
            pairings=pairings,
            routes=routes,
            pidmas_min_weeks=int(pidmas.get("min_weeks", 40)),
            pidmas_horizon_weeks=int(pidmas.get("horizon_weeks", 8)),
            pidmas_min_age=int(pidmas.get("min_age", 18)),
        )
    except KeyError as exc:
        raise ConfigError(f"{origin}: missing key {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: {exc}") from exc
    unknown = [r.network for r in routes if r.network not in networks]
    if unknown:
        raise ConfigError(f"{origin}: routing names unknown networks: {', '.join(unknown)}")
    return config


def load_triage_config(path: Path | None = None) -> TriageConfig:
    """The package's ``networks.toml``, or the file at ``path`` (same shape) when given."""
    if path is None:
        text = resources.files("bcconnect.triage").joinpath("networks.toml").read_text(encoding="utf-8")
        origin = "bcconnect/triage/networks.toml"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the triage configuration {path}: {exc.strerror}") from exc
        origin = str(path)
    return parse_triage_config(parse_toml(text, origin=origin), origin=origin)
