"""Typed configuration, read once at start-up and passed down.

Two kinds of file: ``bcconnect.toml`` (the engine) and ``adapters/<name>/adapter.toml`` (one trust's adapter).
``BCCONNECT_<SECTION>_<KEY>`` environment variables override the engine file (``BCCONNECT_STORE_URL``,
``BCCONNECT_API_PORT`` …). Secrets are never in a file: a file names the environment variable that holds them.
Every error names the file, the key and what was expected.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from bcconnect.errors import ConfigError

DEFAULT_CONFIG_FILE = "bcconnect.toml"
ENV_PREFIX = "BCCONNECT_"

_T = TypeVar("_T")


class AuthMode(enum.Enum):
    """How the FHIR endpoint authenticates callers."""

    JWT = "jwt"
    NONE = "none"


class SourceKind(enum.Enum):
    """The protocol a trust's adapter speaks."""

    FHIR_API = "fhir_api"
    JSON_API = "json_api"
    HL7V2 = "hl7v2"


class SourceAuthType(enum.Enum):
    """How an adapter authenticates to its trust."""

    NONE = "none"
    OAUTH2_CLIENT_CREDENTIALS = "oauth2_client_credentials"
    API_KEY = "api_key"
    BEARER = "bearer"


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Where resources live: ``sqlite:///path`` (embedded default) or ``postgresql://…``."""

    url: str = "sqlite:///bcconnect-data/bcconnect.db"


@dataclass(frozen=True, slots=True)
class JwtIssuer:
    """One trusted token issuer: its ``iss``, the audience it must name, and where its keys are."""

    issuer: str
    audience: str
    jwks_file: str | None = None
    jwks_url: str | None = None


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Authentication of the FHIR endpoint. ``mode = "none"`` must be chosen explicitly."""

    mode: AuthMode = AuthMode.JWT
    issuers: tuple[JwtIssuer, ...] = ()
    #: private key (PEM) the local token issuer signs with (development and the demo only)
    local_signing_key_file: str | None = None
    #: clock skew tolerated on ``exp``/``nbf``/``iat``, in seconds
    leeway_seconds: float = 30.0
    #: how long a fetched JWKS (from ``jwks_url``) is trusted before it is fetched again
    jwks_cache_seconds: float = 300.0
    #: an unknown ``kid`` refetches the JWKS at most once per this many seconds (stops a refetch flood)
    jwks_min_refetch_seconds: float = 10.0
    #: timeout of one JWKS fetch
    jwks_timeout_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """Information governance of the read path: labels, opt-outs, limits and rate limiting."""

    #: ``system|code`` security labels withheld unless the token grants sensitive data (v3 ActCode)
    sensitive_labels: tuple[str, ...] = (
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|GDIS",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|HIV",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|PSY",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|SDV",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|SEX",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|STD",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|TBOO",
        "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|V",
    )
    #: a file of NHS numbers (one a line) under the national data opt-out; population outputs only
    national_opt_out_file: str | None = None
    #: sustained requests per second per client (one EPR integration serves a whole hospital), and the burst
    #: above it; sized from the traffic model in docs/operations.md
    rate_limit_per_second: float = 1000.0
    rate_limit_burst: int = 2000
    #: per user (one clinician, whatever client they use): opening a record is a burst of ~20 requests
    user_rate_limit_per_second: float = 5.0
    user_rate_limit_burst: int = 60
    #: per address, for requests that fail authentication (a flood of bad tokens)
    address_rate_limit_per_second: float = 10.0
    address_rate_limit_burst: int = 30
    #: keep the buckets in the store, shared by every API process (false: each process limits on its own)
    rate_limit_shared: bool = True
    #: longest query string accepted, in characters
    max_query_length: int = 4096
    #: most ``_include``/``_revinclude`` parameters, and most ``:iterate`` levels among them
    max_includes: int = 8
    max_include_depth: int = 2
    #: most links in a chained parameter (``subject.name`` is 1)
    max_chain_depth: int = 2
    #: wall-clock limit of one request
    request_timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The read-only FHIR endpoint."""

    host: str = "127.0.0.1"
    port: int = 8080
    base_path: str = "/fhir"
    public_base_url: str | None = None
    default_count: int = 50
    max_count: int = 1000


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """Ingest workers (``bcconnect run``) sharing one store."""

    #: how long a worker's claim on an adapter lasts without renewal (renewed every third of it); a worker that
    #: dies hands its adapters over after at most this long
    lease_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """Prometheus metrics, health and readiness endpoints of the API server.

    ``port = 0`` serves ``path`` on the API's own port; another port runs a separate listener (for a
    scraper on a management network). Scrapes are unauthenticated, so they are answered only for clients in
    ``allow_networks`` (loopback by default); everyone else gets 403.
    """

    enabled: bool = True
    path: str = "/metrics"
    port: int = 0
    allow_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    """Log level and format (``auto``: readable on a TTY, JSON lines otherwise)."""

    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True, slots=True)
class PathSettings:
    """Where adapter deployments and mapping sets live, relative to the config file."""

    adapters_dir: str = "adapters"
    mappings_dir: str = "mappings"
    data_dir: str = "bcconnect-data"


@dataclass(frozen=True, slots=True)
class Settings:
    """The engine's whole configuration."""

    store: StoreSettings = field(default_factory=StoreSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    #: the directory relative paths are resolved against (the config file's folder)
    root: Path = field(default_factory=Path.cwd)
    #: the file this was read from, if any
    source_file: Path | None = None

    def store_url(self) -> str:
        """The store URL with a relative SQLite path resolved against the config file's folder."""
        url = self.store.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
            return prefix + str(self.resolve(url[len(prefix) :]))
        return url

    def resolve(self, relative: str) -> Path:
        """A path from the configuration, resolved against the config file's folder."""
        path = Path(relative)
        return path if path.is_absolute() else self.root / path


@dataclass(frozen=True, slots=True)
class SourceAuthSettings:
    """How one adapter authenticates; secrets are named by environment variable, never written."""

    type: SourceAuthType = SourceAuthType.NONE
    token_url: str | None = None
    client_id: str | None = None
    client_secret_env: str | None = None
    api_key_env: str | None = None
    api_key_header: str = "X-API-Key"
    token_env: str | None = None


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """Paging, timeouts, retries and concurrency of one adapter."""

    resource_types: tuple[str, ...] = ()
    page_size: int = 200
    overlap_seconds: float = 300.0
    timeout_seconds: float = 30.0
    max_retries: int = 6
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    concurrency: int = 4
    reconcile_deletes: bool = True


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """Circuit breaker: open after N consecutive failures, half-open after ``reset_seconds``."""

    failure_threshold: int = 5
    reset_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class ThresholdSettings:
    """When a sync that ran to the end is still reported DEGRADED (exit status 3), not ok.

    Defaults: any Patient record quarantined, or more than 1% of the fetched records quarantined, or held
    resources (clinical resources waiting for their Patient) above 1% of the fetched records.
    """

    max_patients_quarantined: int = 0
    max_quarantine_rate: float = 0.01
    max_held_rate: float = 0.01


@dataclass(frozen=True, slots=True)
class IdentifierSettings:
    """The trust's own identifier systems, for a generic mapping set (all optional)."""

    #: the system of the trust's medical record number; that identifier is also kept as the trust's MRN
    mrn_system: str | None = None


@dataclass(frozen=True, slots=True)
class Hl7Settings:
    """HL7 v2 intake: an MLLP listener, or a directory files are dropped into."""

    mode: str = "mllp"
    listen_host: str = "127.0.0.1"
    listen_port: int = 2575
    drop_dir: str | None = None


@dataclass(frozen=True, slots=True)
class AdapterConfig:
    """One trust's adapter deployment (``adapters/<name>/adapter.toml``)."""

    name: str
    ods_code: str
    kind: SourceKind
    mapping_set: str
    base_url: str | None = None
    enabled: bool = True
    schedule_seconds: float = 300.0
    staleness_limit_seconds: float = 3600.0
    auth: SourceAuthSettings = field(default_factory=SourceAuthSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    thresholds: ThresholdSettings = field(default_factory=ThresholdSettings)
    identifiers: IdentifierSettings = field(default_factory=IdentifierSettings)
    hl7v2: Hl7Settings = field(default_factory=Hl7Settings)
    #: the file this was read from
    source_file: Path | None = None

    def secret(self, env_name: str | None, environ: Mapping[str, str] | None = None) -> str | None:
        """The value of a secret named by environment variable; ConfigError when named but unset."""
        if env_name is None:
            return None
        env = os.environ if environ is None else environ
        value = env.get(env_name)
        if value is None:
            raise ConfigError(
                f"the environment variable {env_name} (named by auth) is not set",
                file=str(self.source_file) if self.source_file else None,
                key="auth",
            )
        return value


# --- loading ---------------------------------------------------------------------------------------------
def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing file or bad syntax is a ConfigError naming the file (the one reader)."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError("file not found", file=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML ({exc})", file=str(path)) from exc


def _coerce(value: Any, target: Any, *, file: str, key: str) -> Any:
    """Convert a TOML or environment value to the type a settings field declares."""
    type_name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    expected = type_name.replace("tuple[str, ...]", "a list of strings")
    try:
        if type_name in ("str", "str | None"):
            if value is None or isinstance(value, str):
                return value
        elif type_name in ("int",):
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif type_name == "float":
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                return float(value)
        elif type_name == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
        elif type_name == "tuple[str, ...]":
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return tuple(value)
        else:
            enum_types = {
                "AuthMode": AuthMode,
                "SourceKind": SourceKind,
                "SourceAuthType": SourceAuthType,
            }
            if type_name in enum_types:
                enum_type = enum_types[type_name]
                allowed = ", ".join(repr(m.value) for m in enum_type)
                expected = f"one of {allowed}"
                return enum_type(value)
    except ValueError:
        pass
    raise ConfigError(f"expected {expected}, got {value!r}", file=file, key=key)


def _build(cls: type[_T], data: Mapping[str, Any], *, file: str, prefix: str) -> _T:
    """Build a frozen settings dataclass from a TOML table, rejecting unknown keys."""
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in known or key in ("source_file", "root"):
            allowed = ", ".join(sorted(k for k in known if k not in ("source_file", "root")))
            raise ConfigError(f"unknown key (expected one of: {allowed})", file=file, key=dotted)
        declared = known[key].type
        nested = _NESTED.get(str(declared))
        if nested is not None:
            if not isinstance(value, dict):
                raise ConfigError("expected a table", file=file, key=dotted)
            values[key] = _build(nested, value, file=file, prefix=f"{dotted}.")
        elif str(declared) == "tuple[JwtIssuer, ...]":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError("expected an array of tables", file=file, key=dotted)
            values[key] = tuple(_build(JwtIssuer, v, file=file, prefix=f"{dotted}[{i}].") for i, v in enumerate(value))
        else:
            values[key] = _coerce(value, declared, file=file, key=dotted)
    missing = [
        f.name
        for f in fields(cls)  # type: ignore[arg-type]
        if f.name not in values and f.default is f.default_factory  # both MISSING: a required field
    ]
    if missing:
        raise ConfigError(f"missing required key(s): {', '.join(missing)}", file=file, key=prefix.rstrip("."))
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"cannot build settings ({exc})", file=file, key=prefix.rstrip(".")) from exc


_NESTED: dict[str, type[Any]] = {
    "StoreSettings": StoreSettings,
    "ApiSettings": ApiSettings,
    "AuthSettings": AuthSettings,
    "SecuritySettings": SecuritySettings,
    "LoggingSettings": LoggingSettings,
    "MetricsSettings": MetricsSettings,
    "IngestSettings": IngestSettings,
    "PathSettings": PathSettings,
    "SourceAuthSettings": SourceAuthSettings,
    "FetchSettings": FetchSettings,
    "BreakerSettings": BreakerSettings,
    "Hl7Settings": Hl7Settings,
    "ThresholdSettings": ThresholdSettings,
    "IdentifierSettings": IdentifierSettings,
}


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Overlay ``BCCONNECT_<SECTION>_<KEY>`` variables onto the engine's TOML tables.

    Returns the merged tables and, for each overridden ``section.key``, the variable that set it (so an error
    in its value names the variable, not the file).
    """
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    origins: dict[str, str] = {}
    sections = {f.name for f in fields(Settings) if f.name not in ("root", "source_file")}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section in sections and key:
            table = merged.setdefault(section, {})
            if isinstance(table, dict):
                table[key] = value
                origins[f"{section}.{key}"] = name
    return merged, origins


def load_settings(
    path: Path | None = None, *, environ: Mapping[str, str] | None = None, required: bool = False
) -> Settings:
    """Read ``bcconnect.toml`` (or defaults when it is absent and not ``required``), then env overrides."""
    env = os.environ if environ is None else environ
    config_path = path or Path(DEFAULT_CONFIG_FILE)
    if config_path.exists():
        data = read_toml(config_path)
        root = config_path.resolve().parent
        source: Path | None = config_path
    elif required:
        raise ConfigError("file not found", file=str(config_path))
    else:
        data, root, source = {}, Path.cwd(), None
    data, origins = _apply_env(data, env)
    label = str(config_path) if source else "environment"
    try:
        settings = _build(Settings, data, file=label, prefix="")
        settings = replace(settings, root=root, source_file=source)
        _check_settings(settings, label)
    except ConfigError as exc:
        variable = origins.get(exc.key or "")
        if variable is None:
            raise
        # the bad value came from the environment: say so, and do not blame the file
        raise ConfigError(f"the environment variable {variable} is invalid: {exc.detail}") from None
    return settings


def _check_settings(settings: Settings, label: str) -> None:
    url = settings.store.url
    if not (url.startswith("sqlite://") or url.startswith(("postgresql://", "postgres://"))):
        raise ConfigError(f"expected a sqlite:///… or postgresql://… URL, got {url!r}", file=label, key="store.url")
    if not 0 < settings.api.port < 65536:
        raise ConfigError(f"expected a TCP port 1–65535, got {settings.api.port}", file=label, key="api.port")
    if not 0 < settings.api.default_count <= settings.api.max_count:
        raise ConfigError("expected 0 < default_count <= max_count", file=label, key="api.default_count")
    sec = settings.security
    for kind in ("", "user_", "address_"):
        if getattr(sec, f"{kind}rate_limit_per_second") <= 0 or getattr(sec, f"{kind}rate_limit_burst") < 1:
            raise ConfigError(
                "expected a positive rate and a burst of at least 1", file=label, key=f"security.{kind}rate_limit_burst"
            )
    if settings.ingest.lease_seconds < 1:
        raise ConfigError("expected at least 1 second", file=label, key="ingest.lease_seconds")
    if not 0 <= settings.metrics.port < 65536:
        raise ConfigError(
            f"expected 0 (the API's port) or 1–65535, got {settings.metrics.port}", file=label, key="metrics.port"
        )
    if not settings.metrics.path.startswith("/"):
        raise ConfigError(
            f"expected a path starting with '/', got {settings.metrics.path!r}", file=label, key="metrics.path"
        )
    for network in settings.metrics.allow_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(
                f"expected IP networks like '10.0.0.0/8', got {network!r}", file=label, key="metrics.allow_networks"
            ) from None
    if settings.logging.format not in ("auto", "json", "console"):
        raise ConfigError(
            f"expected 'auto', 'json' or 'console', got {settings.logging.format!r}",
            file=label,
            key="logging.format",
        )


def load_adapter(path: Path) -> AdapterConfig:
    """Read one ``adapter.toml``; errors name the file and key."""
    data = read_toml(path)
    label = str(path)
    config = _build(AdapterConfig, data, file=label, prefix="")
    if config.kind in (SourceKind.FHIR_API, SourceKind.JSON_API) and not config.base_url:
        raise ConfigError(f"an adapter of kind {config.kind.value!r} needs base_url", file=label, key="base_url")
    if config.hl7v2.mode not in ("mllp", "file"):
        raise ConfigError(f"expected 'mllp' or 'file', got {config.hl7v2.mode!r}", file=label, key="hl7v2.mode")
    if config.fetch.page_size < 1:
        raise ConfigError("expected a positive integer", file=label, key="fetch.page_size")
    return replace(config, source_file=path)


def load_adapters(directory: Path) -> list[AdapterConfig]:
    """Every ``<directory>/*/adapter.toml``, sorted by name; names must be unique."""
    configs = [load_adapter(p) for p in sorted(directory.glob("*/adapter.toml"))]
    seen: dict[str, Path | None] = {}
    for config in configs:
        if config.name in seen:
            raise ConfigError(
                f"adapter name {config.name!r} is also used by {seen[config.name]}",
                file=str(config.source_file),
                key="name",
            )
        seen[config.name] = config.source_file
    return configs
