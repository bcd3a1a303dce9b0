"""Structured logging: JSON lines when not on a TTY, a readable console otherwise.

Log events, not sentences: ``log.info("page_ingested", source="RL4", records=200)``. Patient identifiers and
clinical content never reach a log: :func:`redact_identifiers` drops known-sensitive keys and masks anything
that looks like an NHS number, whatever key it hides under.
"""

from __future__ import annotations

import logging as std_logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final

import orjson
import structlog

#: keys whose values are never logged
SENSITIVE_KEYS: Final = frozenset(
    {
        "nhs_number",
        "name",
        "family",
        "given",
        "birth_date",
        "birthdate",
        "dob",
        "address",
        "postcode",
        "phone",
        "telecom",
        "payload",
        "body",
        "resource",
        "token",
        "authorization",
        "password",
        "secret",
        "client_secret",
        "api_key",
    }
)
# A run of digits inside a longer letters-and-digits token (a hex request id, a UUID) is not an NHS number:
# masking it there would corrupt correlation ids, so the number must stand as a token of its own.
_NHS_NUMBER_LIKE: Final = re.compile(r"(?<![0-9A-Za-z])\d{3}[ -]?\d{3}[ -]?\d{4}(?![0-9A-Za-z])")
REDACTED: Final = "[redacted]"


def redact_identifiers(_logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Processor: drop sensitive keys and mask ten-digit numbers in string values.

    >>> redact_identifiers(None, "info", {"nhs_number": "9990000018", "note": "for 999 000 0018"})
    {'nhs_number': '[redacted]', 'note': 'for [redacted]'}
    """
    for key, value in list(event_dict.items()):
        if key.lower() in SENSITIVE_KEYS:
            event_dict[key] = REDACTED
        elif isinstance(value, str):
            event_dict[key] = _NHS_NUMBER_LIKE.sub(REDACTED, value)
    return event_dict


def _orjson_dumps(value: Any, **_kw: Any) -> str:
    return orjson.dumps(value, default=str).decode()


class _StderrLogger:
    """Writes each rendered event to whatever ``sys.stderr`` is *now* (it may be swapped after start-up)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = warn = error = err = critical = exception = fatal = log = msg


def configure_logging(*, level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Configure structlog once at start-up (the CLI calls this; libraries never do)."""
    out = stream if stream is not None else sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not (hasattr(out, "isatty") and out.isatty()))
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    numeric = std_logging.getLevelNamesMapping().get(level.upper(), std_logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_identifiers,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=(
            structlog.PrintLoggerFactory(file=stream) if stream is not None else (lambda *_: _StderrLogger())
        ),
        cache_logger_on_first_use=False,
    )
    # uvicorn and httpx log through the standard library: keep them quiet unless debugging
    for noisy in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore"):
        std_logging.getLogger(noisy).setLevel(max(numeric, std_logging.WARNING))


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; ``name`` becomes the ``logger`` field."""
    return structlog.get_logger(name) if name else structlog.get_logger()
