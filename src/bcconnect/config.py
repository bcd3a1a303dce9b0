"""Typed configuration, read once at start-up and passed down.

Two kinds of file: ``bcconnect.toml`` (the engine) and ``adapters/<name>/adapter.toml`` (one trust's adapter).
``BCCONNECT_<SECTION>_<KEY>`` environment variables override the engine file (``BCCONNECT_STORE_URL``,
``BCCONNECT_API_PORT`` …). Secrets are never in a file: a file names the environment variable that holds them.
Each settings table is a frozen dataclass; pydantic validates a whole file plus its environment overrides in one
pass (types, enums, ranges, unknown keys), so every mistake is reported at once, each naming the file or the
environment variable it came from, the key and what was expected.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar, get_args, get_type_hints

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from bcconnect.errors import ConfigError

DEFAULT_CONFIG_FILE = "bcconnect.toml"
ENV_PREFIX = "BCCONNECT_"

_T = TypeVar("_T")


# --- value rules (pydantic runs them while validating; a ValueError's text is the expectation users read) ----
def _tcp_port(value: int) -> int:
    if not 0 < value < 65536:
        raise ValueError("expected a TCP port 1–65535")
    return value


def _positive(value: int) -> int:
    if value < 1:
        raise ValueError("expected a positive integer")
    return value


def _store_url(value: str) -> str:
    if not value.startswith(("sqlite://", "postgresql://", "postgres://")):
        raise ValueError("expected a sqlite:///… or postgresql://… URL")
    return value


def _replica_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("expected a postgresql://… URL of a streaming replica of the store")
    return value


def _one_of(*allowed: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError("expected " + ", ".join(repr(a) for a in allowed[:-1]) + f" or {allowed[-1]!r}")
        return value

    return AfterValidator(check)


def _comma_list(value: object) -> object:
    """An environment variable holds a list as comma-separated text."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _positive_rate(value: float) -> float:
    if value <= 0:
        raise ValueError("expected a positive number")
    return value


def _port_or_zero(value: int) -> int:
    if not 0 <= value < 65536:
        raise ValueError("expected 0 (the API's port) or a TCP port 1–65535")
    return value


def _url_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("expected a path starting with '/'")
    return value


def _networks(value: tuple[str, ...]) -> tuple[str, ...]:
    for network in value:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"expected IP networks like '10.0.0.0/8', not {network!r}") from None
    return value


def _ship_url(value: str) -> str:
    if value and not value.startswith(("syslog+tcp://", "http://", "https://")):
        raise ValueError("expected syslog+tcp://host:port, an http(s):// URL, or empty")
    return value


def _at_least_one_second(value: float) -> float:
    if value < 1:
        raise ValueError("expected at least 1 second")
    return value


Port = Annotated[int, AfterValidator(_tcp_port)]
PositiveInt = Annotated[int, AfterValidator(_positive)]
StringList = Annotated[tuple[str, ...], BeforeValidator(_comma_list)]
Rate = Annotated[float, AfterValidator(_positive_rate)]


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

    url: Annotated[str, AfterValidator(_store_url)] = "sqlite:///bcconnect-data/bcconnect.db"
    #: a PostgreSQL streaming replica of ``url`` the API reads from (None: reads go to ``url``); writes (the
    #: audit trail, rate limits) always go to ``url``
    read_url: Annotated[str | None, AfterValidator(_replica_url)] = None
    #: the API is not ready (``/readyz`` 503) while the replica is further behind the primary than this
    read_max_lag_seconds: Annotated[float, AfterValidator(_positive_rate)] = 30.0


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
    #: the identity provider's OAuth 2.0 endpoints, advertised for SMART App Launch discovery
    #: (``.well-known/smart-configuration`` and the CapabilityStatement's ``rest.security``)
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """Information governance of the read path: labels, opt-outs, limits and rate limiting."""

    #: ``system|code`` security labels withheld unless the token grants sensitive data (v3 ActCode)
    sensitive_labels: StringList = (
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
    rate_limit_per_second: Rate = 1000.0
    rate_limit_burst: PositiveInt = 2000
    #: per user (one clinician, whatever client they use): opening a record is a burst of ~20 requests
    user_rate_limit_per_second: Rate = 5.0
    user_rate_limit_burst: PositiveInt = 60
    #: per address, for requests that fail authentication (a flood of bad tokens)
    address_rate_limit_per_second: Rate = 10.0
    address_rate_limit_burst: PositiveInt = 30
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
    #: a signed checkpoint of the audit chain head every this many events, outside the database
    audit_checkpoint_every: int = 100
    #: where checkpoints and their signing key live (default: ``<data_dir>/audit-anchor``)
    audit_anchor_dir: str | None = None


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The read-only FHIR endpoint."""

    host: str = "127.0.0.1"
    port: Port = 8080
    base_path: str = "/fhir"
    public_base_url: str | None = None
    default_count: int = 50
    max_count: int = 1000


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """Prometheus metrics, health and readiness endpoints of the API server.

    ``port = 0`` serves ``path`` on the API's own port; another port is a second listener of the same server
    (for a scraper on a management network). Scrapes are unauthenticated, so they are answered only for clients
    in ``allow_networks`` (loopback by default); everyone else gets 403.
    """

    enabled: bool = True
    path: Annotated[str, AfterValidator(_url_path)] = "/metrics"
    port: Annotated[int, AfterValidator(_port_or_zero)] = 0
    allow_networks: Annotated[StringList, AfterValidator(_networks)] = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """Ingest workers (``bcconnect run``) sharing one store."""

    #: how long a worker's claim on an adapter lasts without renewal (renewed every third of it); a worker that
    #: dies hands its adapters over after at most this long
    lease_seconds: Annotated[float, AfterValidator(_at_least_one_second)] = 30.0
    #: what one lease covers: a whole ``adapter``, or one ``resource_type`` of a FHIR API adapter (so several
    #: workers share one trust's types; other adapter kinds read one feed and keep one lease per adapter)
    lease_by: Annotated[str, _one_of("adapter", "resource_type")] = "adapter"


@dataclass(frozen=True, slots=True)
class BulkSettings:
    """FHIR Bulk Data exports (``$export``): where the NDJSON files go, how big they get, how long they stay."""

    #: folder of the export files, relative to ``[paths] data_dir`` unless absolute
    directory: str = "bulk"
    #: a finished export's files are kept this long, then removed (the manifest's ``Expires``)
    retain_hours: Annotated[float, AfterValidator(_positive_rate)] = 24.0
    #: an NDJSON file is closed and the next one started past this size
    max_file_mb: Annotated[float, AfterValidator(_positive_rate)] = 256.0
    #: exports worked at once by one API process
    concurrency: PositiveInt = 2
    #: how long a worker's claim on a job lasts without renewal; a job whose worker died is resumed after it
    lease_seconds: Annotated[float, AfterValidator(_at_least_one_second)] = 30.0
    #: the ``Retry-After`` (seconds) a client is asked to wait between status polls
    retry_after_seconds: PositiveInt = 2
    #: resources read per page of an export (one read transaction and one file write each)
    page_rows: PositiveInt = 5000


@dataclass(frozen=True, slots=True)
class CohortSettings:
    """Population cohorts: their definitions and how often ``bcconnect run`` recomputes them."""

    #: a TOML file of cohort definitions replacing the packaged ones (docs/cohorts.md); empty: the packaged set
    definitions: str = ""
    #: minutes between recomputations in ``bcconnect run`` (0: only on demand)
    recompute_minutes: Annotated[int, Field(ge=0)] = 60


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """How long the audit trail stays in the store, and where ``bcconnect audit prune`` ships what it drops."""

    #: months of AuditEvents kept in the store (default 8 years: the access trail of a record is kept as long
    #: as the adult record it audits under the NHS Records Management Code of Practice); 0 keeps everything
    retain_months: Annotated[int, Field(ge=0)] = 96
    #: the external log store: a folder (often a mount of the log archive) that receives each pruned stretch of
    #: the chain as NDJSON with its signed checkpoint; empty: prune refuses unless told to discard
    export_dir: str = ""
    #: the log service closed audit segments are shipped to, each as NDJSON with its signed checkpoint:
    #: ``syslog+tcp://host:port`` (RFC 5424 over TCP, octet counting) or ``http(s)://host/path`` (POSTed to a
    #: collector); empty: not shipped (export_dir alone)
    ship_url: Annotated[str, AfterValidator(_ship_url)] = ""
    #: an environment variable holding the ``Authorization`` header value for an HTTP collector (empty: none)
    ship_authorization_env: str = ""
    #: the wait after a failed shipment, doubled after each further failure up to ``ship_max_backoff_seconds``
    ship_retry_seconds: Rate = 5.0
    ship_max_backoff_seconds: Rate = 900.0
    #: how often ``bcconnect serve`` ships closed segments (0: only ``bcconnect audit ship`` / ``maintain``)
    ship_interval_seconds: Annotated[float, Field(ge=0)] = 60.0
    #: one shipment's time limit (connect, send, confirm); a shipment unconfirmed after it is tried again
    ship_timeout_seconds: Rate = 30.0


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    """Log level and format (``auto``: readable on a TTY, JSON lines otherwise)."""

    level: str = "info"
    format: Annotated[str, _one_of("auto", "json", "console")] = "auto"


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
    bulk: BulkSettings = field(default_factory=BulkSettings)
    cohorts: CohortSettings = field(default_factory=CohortSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
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

    resource_types: StringList = ()
    page_size: PositiveInt = 200
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

    mode: Annotated[str, _one_of("mllp", "file")] = "mllp"
    listen_host: str = "127.0.0.1"
    listen_port: Port = 2575
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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("file not found", file=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the file ({exc.strerror})", file=str(path)) from exc
    return parse_toml(text, origin=str(path))


def parse_toml(text: str, *, origin: str) -> dict[str, Any]:
    """TOML text (a file's, or a packaged resource's) as a dict; bad syntax is a ConfigError naming ``origin``.

    >>> parse_toml('[api]\\nport = 8080', origin="x.toml")
    {'api': {'port': 8080}}
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML ({exc})", file=origin) from exc


#: fields a file or the environment may not set: where the configuration was read from
_NOT_SETTABLE: Final = frozenset({"root", "source_file"})
#: pydantic error types and the expectation users read
_EXPECTATIONS: Final = {
    "int_type": "expected int",
    "int_parsing": "expected int",
    "int_from_float": "expected int",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "missing": "missing required key",
    "missing_argument": "missing required key",
}


def _closed_tables(root: type[Any]) -> None:
    """Make every settings table reachable from ``root`` refuse unknown keys (a typo is an error, not a no-op)."""
    for hint in get_type_hints(root).values():
        for candidate in (hint, *get_args(hint)):
            if is_dataclass(candidate) and isinstance(candidate, type) and "__pydantic_config__" not in vars(candidate):
                setattr(candidate, "__pydantic_config__", ConfigDict(extra="forbid"))  # noqa: B010 - not a declared attribute
                _closed_tables(candidate)


_VALIDATORS: dict[type[Any], TypeAdapter[Any]] = {}


def _validator(root: type[_T]) -> TypeAdapter[_T]:
    """The pydantic validator of a settings root, built once (building one takes milliseconds)."""
    if root not in _VALIDATORS:
        _closed_tables(root)
        _VALIDATORS[root] = TypeAdapter(root)
    return _VALIDATORS[root]


def _type_at(root: type[Any], loc: Sequence[str | int]) -> Any:
    """The declared type of the value at ``loc`` (table names and array indexes) under ``root``."""
    current: Any = root
    for part in loc:
        options = [a for a in get_args(current) if a is not type(None) and a is not Ellipsis] or [current]
        current = options[0]
        if isinstance(part, int):
            continue  # an element of tuple[X, ...]: X, unwrapped above
        if not is_dataclass(current):
            return None
        current = get_type_hints(current).get(part)
    return current


def _dotted(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _expectation(error: Mapping[str, Any], root: type[Any]) -> str:
    """What the user should have written, in the words the configuration errors have always used."""
    kind, loc, got = error["type"], tuple(error["loc"]), error.get("input")
    if kind == "unexpected_keyword_argument":
        table = _type_at(root, loc[:-1])
        allowed = ", ".join(sorted(f.name for f in fields(table) if f.name not in _NOT_SETTABLE))
        return f"unknown key (expected one of: {allowed})"
    if kind in ("missing", "missing_argument"):
        return _EXPECTATIONS[kind]
    if kind == "enum":
        expected = str(error.get("ctx", {}).get("expected", "")).replace(" or ", ", ")
        return f"expected one of {expected}, got {got!r}"
    if kind in ("dataclass_type", "dict_type", "model_type"):
        return "expected a table"
    if kind in ("tuple_type", "list_type"):
        element = _type_at(root, (*loc, 0))
        return "expected an array of tables" if is_dataclass(element) else f"expected a list of strings, got {got!r}"
    if kind == "value_error":
        return f"{str(error['msg']).removeprefix('Value error, ')}, got {got!r}"
    if kind in _EXPECTATIONS:
        return f"{_EXPECTATIONS[kind]}, got {got!r}"
    return f"{error['msg']}, got {got!r}"


def _validate(
    root: type[_T], data: Mapping[str, Any], *, label: str, from_env: Mapping[tuple[str, str], str] | None = None
) -> tuple[_T | None, list[ConfigError]]:
    """Validate a whole file (with environment overrides) at once: the settings, or every problem found.

    Each problem names where the value came from — the file, or the environment variable that set it — its key
    and what was expected.
    """
    from_env = from_env or {}
    problems = [
        ConfigError(f"unknown key (not settable: {key} is where the file was read)", file=label, key=key)
        for key in sorted(_NOT_SETTABLE & set(data))
    ]
    data = {k: v for k, v in data.items() if k not in _NOT_SETTABLE}
    try:
        return _validator(root).validate_python(data), problems
    except PydanticValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            variable = from_env.get((str(loc[0]), str(loc[1]))) if len(loc) == 2 else None
            where = f"environment variable {variable}" if variable else label
            problems.append(ConfigError(_expectation(error, root), file=where, key=_dotted(loc)))
    return None, problems


def _raise_if(problems: Sequence[ConfigError]) -> None:
    if problems:
        raise ConfigError(problems=problems)


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, str], str]]:
    """Overlay ``BCCONNECT_<SECTION>_<KEY>`` variables onto the engine's TOML tables; also says which variable
    set each ``(section, key)``, so a bad value is blamed on the variable, not the file."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    origin: dict[tuple[str, str], str] = {}
    sections = {f.name for f in fields(Settings) if f.name not in _NOT_SETTABLE}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section in sections and key:
            table = merged.setdefault(section, {})
            if isinstance(table, dict):
                table[key] = value
                origin[(section, key)] = name
    return merged, origin


def load_settings(
    path: Path | None = None, *, environ: Mapping[str, str] | None = None, required: bool = False
) -> Settings:
    """Read ``bcconnect.toml`` (or defaults when it is absent and not ``required``), then env overrides.

    Every problem in the file and the environment is reported at once, in one ConfigError.
    """
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
    data, from_env = _apply_env(data, env)
    label = str(config_path) if source else "environment"
    settings, problems = _validate(Settings, data, label=label, from_env=from_env)
    if settings is not None:
        api = settings.api
        if not 0 < api.default_count <= api.max_count:
            variable = from_env.get(("api", "default_count")) or from_env.get(("api", "max_count"))
            problems.append(
                ConfigError(
                    f"expected 0 < default_count <= max_count, got {api.default_count} and {api.max_count}",
                    file=f"environment variable {variable}" if variable else label,
                    key="api.default_count",
                )
            )
    _raise_if(problems)
    assert settings is not None  # no problems: validated
    return replace(settings, root=root, source_file=source)


def load_adapter(path: Path) -> AdapterConfig:
    """Read one ``adapter.toml``; every problem in it is reported at once, each naming the file and key."""
    label = str(path)
    config, problems = _validate(AdapterConfig, read_toml(path), label=label)
    if config is not None and config.kind in (SourceKind.FHIR_API, SourceKind.JSON_API) and not config.base_url:
        problems.append(
            ConfigError(f"an adapter of kind {config.kind.value!r} needs base_url", file=label, key="base_url")
        )
    _raise_if(problems)
    assert config is not None  # no problems: validated
    return replace(config, source_file=path)


def load_adapters(directory: Path) -> list[AdapterConfig]:
    """Every ``<directory>/*/adapter.toml``, sorted by name; names must be unique. The problems of every file
    are reported together."""
    configs: list[AdapterConfig] = []
    problems: list[ConfigError] = []
    for path in sorted(directory.glob("*/adapter.toml")):
        try:
            configs.append(load_adapter(path))
        except ConfigError as exc:
            problems += exc.problems
    seen: dict[str, Path | None] = {}
    for config in configs:
        if config.name in seen:
            problems.append(
                ConfigError(
                    f"adapter name {config.name!r} is also used by {seen[config.name]}",
                    file=str(config.source_file),
                    key="name",
                )
            )
        seen[config.name] = config.source_file
    _raise_if(problems)
    return configs
