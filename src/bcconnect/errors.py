"""The one exception tree of bcconnect.

Every error the engine raises is a :class:`BcconnectError`. Errors that can reach a FHIR client carry a
:class:`Category`; the API turns the category into an HTTP status and an OperationOutcome in one place.
Foreign errors (httpx, sqlite3, psycopg) are translated where they enter, with ``raise … from exc``.

::

    BcconnectError
    ├── ConfigError                 a configuration file or variable is wrong (names file, key, expectation)
    ├── UsageError                  a command line is wrong (exit code 2)
    ├── SourceError                 talking to a trust's system failed
    │   ├── SourceUnavailable       transient: timeout, 5xx, 429, reset — worth a retry
    │   ├── SourceAuthError         credentials refused
    │   ├── SourceProtocolError     the source answered something we cannot read
    │   └── CircuitOpen             the breaker for this source is open
    ├── RecordError                 one record cannot be taken in (goes to quarantine, never dropped)
    │   ├── ParseError              bytes are not the format they claim
    │   ├── MappingError            a mapping rule failed on this record
    │   └── ValidationError         the produced resource breaks FHIR R4 / UK Core rules
    ├── MappingDefinitionError      a mapping file itself is wrong (names file, line, field)
    ├── StoreError                  the database failed
    │   └── ConflictError           a concurrent change won (version or uniqueness)
    └── RequestError                a FHIR request cannot be answered; has a Category
        ├── InvalidRequest          400 — incorrect
        ├── NotAuthenticated        401
        ├── Forbidden               403
        ├── ResourceNotFound        404
        ├── ResourceGone            410
        ├── MethodNotAllowed        405 — every write to the read-only view
        ├── NotAcceptable           406
        ├── Unsupported             400 — unsupported parameter or feature
        ├── PreconditionFailed      412
        ├── TooManyRequests         429
        └── ServiceUnavailable      503
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class Category(enum.Enum):
    """Error categories shared by the API and the logs (after Blaze's anomaly categories)."""

    INCORRECT = "incorrect"
    NOT_AUTHENTICATED = "not-authenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not-found"
    GONE = "gone"
    NOT_ALLOWED = "not-allowed"
    NOT_ACCEPTABLE = "not-acceptable"
    UNSUPPORTED = "unsupported"
    CONFLICT = "conflict"
    PRECONDITION = "precondition"
    BUSY = "busy"
    UNAVAILABLE = "unavailable"
    FAULT = "fault"


class BcconnectError(Exception):
    """Base of every error bcconnect raises."""


class ConfigError(BcconnectError):
    """A configuration value is wrong: the message names the file (or environment variable), the key and what
    was expected. One error may carry several ``problems`` (each a ConfigError) found in one reading, so a user
    fixes them all at once; the message then lists each on its own line."""

    def __init__(
        self,
        message: str = "",
        *,
        file: str | None = None,
        key: str | None = None,
        problems: Sequence[ConfigError] = (),
    ) -> None:
        self.file: str | None
        self.key: str | None
        self.problems: tuple[ConfigError, ...] = tuple(problems) or (self,)
        if len(self.problems) > 1:
            lines = [f"{len(self.problems)} problems in the configuration:", *(f"  {p}" for p in self.problems)]
            super().__init__("\n".join(lines))
            file, key = self.problems[0].file, self.problems[0].key
        elif problems:
            super().__init__(str(self.problems[0]))
            file, key = self.problems[0].file, self.problems[0].key
        else:
            where = ", ".join(part for part in (file, f"key {key!r}" if key else None) if part)
            super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.key = key


class UsageError(BcconnectError):
    """A command line is wrong; the CLI prints the message and exits 2."""


# --- sources ---------------------------------------------------------------------------------------------
class SourceError(BcconnectError):
    """Talking to a trust's system failed."""

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


class SourceUnavailable(SourceError):
    """A transient failure (timeout, 5xx, 429, reset); ``retry_after`` is the source's hint in seconds."""

    def __init__(self, message: str, *, source: str, retry_after: float | None = None) -> None:
        super().__init__(message, source=source)
        self.retry_after = retry_after


class SourceAuthError(SourceError):
    """The source refused our credentials."""


class SourceProtocolError(SourceError):
    """The source answered something that does not follow its protocol."""


class CircuitOpen(SourceError):
    """The circuit breaker for this source is open; calls are refused until it half-opens."""


# --- records ---------------------------------------------------------------------------------------------
class ReasonCode(enum.Enum):
    """Why a record went to quarantine (stable codes for operators and reports)."""

    PARSE = "parse"
    MAPPING = "mapping"
    TERMINOLOGY = "terminology"
    VALIDATION = "validation"
    IDENTITY = "identity"


class RecordError(BcconnectError):
    """One record cannot be taken in. It goes to quarantine with this reason; it is never dropped."""

    reason: ReasonCode = ReasonCode.VALIDATION

    def __init__(self, message: str, *, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.details = tuple(details)


class ParseError(RecordError):
    """The bytes are not the format they claim to be."""

    reason = ReasonCode.PARSE


class MappingError(RecordError):
    """A mapping rule failed on this record: names the rule, the source path and value, the target path."""

    reason = ReasonCode.MAPPING


class ValidationError(RecordError):
    """A produced resource breaks the FHIR R4 model or a UK Core rule we enforce."""

    reason = ReasonCode.VALIDATION


@dataclass(frozen=True, slots=True)
class DefinitionProblem:
    """One problem in a mapping or rules file: where it is and what was expected."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.field}: {self.message}"


class MappingDefinitionError(BcconnectError):
    """One or more mapping files are wrong; every problem found is listed, each with file, line and field."""

    def __init__(self, problems: Sequence[DefinitionProblem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in mapping files:\n{lines}")


# --- store -----------------------------------------------------------------------------------------------
class StoreError(BcconnectError):
    """The database failed."""


class ConflictError(StoreError):
    """A concurrent change won (a version or uniqueness check failed)."""


# --- requests --------------------------------------------------------------------------------------------
class RequestError(BcconnectError):
    """A FHIR request cannot be answered. The API maps ``category`` to HTTP status and OperationOutcome."""

    category: Category = Category.FAULT
    #: OperationOutcome.issue.code (FHIR IssueType)
    issue_code: str = "exception"

    def __init__(self, message: str, *, expression: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.expression = tuple(expression)


class InvalidRequest(RequestError):
    """The request is malformed (400)."""

    category = Category.INCORRECT
    issue_code = "invalid"


class NotAuthenticated(RequestError):
    """No valid credentials (401)."""

    category = Category.NOT_AUTHENTICATED
    issue_code = "login"


class Forbidden(RequestError):
    """Authenticated, but not allowed (403)."""

    category = Category.FORBIDDEN
    issue_code = "forbidden"


class ResourceNotFound(RequestError):
    """No such resource type, id or version (404)."""

    category = Category.NOT_FOUND
    issue_code = "not-found"


class ResourceGone(RequestError):
    """The resource existed and was deleted (410)."""

    category = Category.GONE
    issue_code = "deleted"


class MethodNotAllowed(RequestError):
    """The interaction is not allowed here: the view is read-only (405); ``allow`` is what the target takes."""

    category = Category.NOT_ALLOWED
    issue_code = "not-supported"

    def __init__(self, message: str, *, allow: Sequence[str] = ("GET", "HEAD")) -> None:
        super().__init__(message)
        self.allow = tuple(allow)


class NotAcceptable(RequestError):
    """The requested format cannot be produced (406)."""

    category = Category.NOT_ACCEPTABLE
    issue_code = "not-supported"


class Unsupported(RequestError):
    """A search parameter, modifier or feature we do not support (400 unless lenient)."""

    category = Category.UNSUPPORTED
    issue_code = "not-supported"


class PreconditionFailed(RequestError):
    """A conditional header did not hold (412)."""

    category = Category.PRECONDITION
    issue_code = "conflict"


class TooManyRequests(RequestError):
    """The client is over its rate limit (429); ``retry_after`` is in seconds."""

    category = Category.BUSY
    issue_code = "throttled"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(RequestError):
    """The service cannot answer now (503)."""

    category = Category.UNAVAILABLE
    issue_code = "transient"
