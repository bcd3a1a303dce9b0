"""Errors become HTTP statuses and OperationOutcomes here, and only here.

Every :class:`~bcconnect.errors.RequestError` carries a :class:`~bcconnect.errors.Category`; the table below
maps it to a status (Blaze's anomaly categories). Store failures become 503 and anything unexpected 500, with
a generic message (details go to the log, never to the client).
"""

from __future__ import annotations

import orjson

from bcconnect.access import www_authenticate
from bcconnect.errors import BcconnectError, Category, MethodNotAllowed, RequestError, StoreError
from bcconnect.logging import get_logger

log = get_logger(__name__)

STATUS: dict[Category, int] = {
    Category.INCORRECT: 400,
    Category.NOT_AUTHENTICATED: 401,
    Category.FORBIDDEN: 403,
    Category.NOT_FOUND: 404,
    Category.GONE: 410,
    Category.NOT_ALLOWED: 405,
    Category.NOT_ACCEPTABLE: 406,
    Category.UNSUPPORTED: 400,
    Category.CONFLICT: 409,
    Category.PRECONDITION: 412,
    Category.BUSY: 429,
    Category.UNAVAILABLE: 503,
    Category.FAULT: 500,
}


def operation_outcome(severity: str, code: str, message: str, expression: tuple[str, ...] = ()) -> bytes:
    """An OperationOutcome with one issue, as JSON bytes."""
    issue: dict[str, object] = {"severity": severity, "code": code, "diagnostics": message}
    if expression:
        issue["expression"] = list(expression)
    return orjson.dumps({"resourceType": "OperationOutcome", "issue": [issue]})


def error_to_outcome(exc: BaseException) -> tuple[int, bytes, dict[str, str]]:
    """Status, OperationOutcome bytes and extra headers for any exception a handler raised."""
    headers: dict[str, str] = {}
    if isinstance(exc, RequestError):
        status = STATUS[exc.category]
        if isinstance(exc, MethodNotAllowed):
            headers["allow"] = ", ".join(exc.allow)
        if status == 401:
            headers["www-authenticate"] = www_authenticate(exc)
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float):
            headers["retry-after"] = str(max(1, int(retry_after)))
        return status, operation_outcome("error", exc.issue_code, str(exc), exc.expression), headers
    if isinstance(exc, StoreError):
        log.error("store_failed", error=type(exc).__name__, detail=str(exc))
        return 503, operation_outcome("error", "transient", "the record store is not available; try again"), headers
    if isinstance(exc, BcconnectError):
        log.error("request_failed", error=type(exc).__name__)
        return 500, operation_outcome("fatal", "exception", "the request could not be completed"), headers
    log.exception("request_crashed", error=type(exc).__name__)
    return 500, operation_outcome("fatal", "exception", "an internal error occurred"), headers
