"""SMART on FHIR scopes (v2 ``patient/Observation.rs``, and the v1 ``.read`` forms) and what they allow.

A scope is ``<context>/<resource type or *>.<permissions>``. Context ``patient`` limits the grant to the
patient named in the token; ``user`` and ``system`` are not limited to one patient. Permissions in v2 are a
subset of ``cruds`` in that order; v1 ``read`` means ``rs`` and ``*`` means ``cruds``. This endpoint is
read-only, so only ``r`` (read, vread) and ``s`` (search, history, operations) ever matter.

Two decisions that keep the grant narrow:

- A wildcard (``system/*.rs``) never grants ``AuditEvent``: reading the audit trail needs a scope that names
  ``AuditEvent`` itself.
- A v2 scope with query parameters (``patient/Observation.rs?category=laboratory``) grants nothing here,
  because we do not enforce the parameters; a narrower grant must never become a wider one.

Sensitive records need the extra scope ``bcconnect/sensitive.read`` (see :data:`SENSITIVE_SCOPE`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

#: the scope that lets a token see resources carrying a sensitive security label
SENSITIVE_SCOPE = "bcconnect/sensitive.read"
#: the resource type that no wildcard grants
AUDIT_RESOURCE_TYPE = "AuditEvent"

_SCOPE_RE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.(read|write|\*|c?r?u?d?s?)$")


class Context(enum.Enum):
    """Whose data a scope covers."""

    PATIENT = "patient"
    USER = "user"
    SYSTEM = "system"


class Interaction(enum.Enum):
    """The read-side FHIR interactions a scope can allow."""

    READ = "read"
    VREAD = "vread"
    SEARCH = "search"
    HISTORY = "history"
    OPERATION = "operation"

    @property
    def letter(self) -> str:
        """The SMART v2 permission letter that allows this interaction (``r`` or ``s``)."""
        return "r" if self in (Interaction.READ, Interaction.VREAD) else "s"


@dataclass(frozen=True, slots=True)
class Scope:
    """One parsed clinical scope."""

    context: Context
    resource_type: str  # a type name or "*"
    permissions: frozenset[str]  # letters of "cruds"

    def allows(self, resource_type: str, interaction: Interaction) -> bool:
        """Whether this scope alone allows ``interaction`` on ``resource_type``."""
        if interaction.letter not in self.permissions:
            return False
        if self.resource_type == "*":
            return resource_type != AUDIT_RESOURCE_TYPE
        return self.resource_type == resource_type


def parse_scope(text: str) -> Scope | None:
    """Parse one clinical scope; None for anything else (``openid``, launch scopes, unknown forms).

    >>> scope = parse_scope("patient/Observation.rs")
    >>> scope.context, scope.resource_type, sorted(scope.permissions)
    (<Context.PATIENT: 'patient'>, 'Observation', ['r', 's'])
    >>> parse_scope("user/*.read").permissions == frozenset("rs")
    True
    >>> parse_scope("patient/Observation.rs?category=laboratory") is None
    True
    >>> parse_scope("patient/Observation.sr") is None  # v2 letters must be in cruds order
    True
    """
    match = _SCOPE_RE.match(text)
    if match is None:
        return None
    context, resource_type, perms = match.groups()
    if perms == "read":
        letters = frozenset("rs")
    elif perms == "write":
        letters = frozenset("cud")
    elif perms == "*":
        letters = frozenset("cruds")
    elif perms:
        letters = frozenset(perms)
    else:
        return None
    return Scope(Context(context), resource_type, letters)


@dataclass(frozen=True, slots=True)
class ScopeSet:
    """Every scope a token carries, parsed once; answers "may this token do that"."""

    raw: tuple[str, ...]
    scopes: tuple[Scope, ...]

    @classmethod
    def parse(cls, text: str | Iterable[str]) -> ScopeSet:
        """From the space-separated ``scope`` claim (or a list of scope strings)."""
        raw = tuple(text.split()) if isinstance(text, str) else tuple(text)
        parsed = tuple(s for s in (parse_scope(r) for r in raw) if s is not None)
        return cls(raw=raw, scopes=parsed)

    def allows(self, resource_type: str, interaction: Interaction) -> bool:
        """Whether any scope allows ``interaction`` on ``resource_type``."""
        return any(s.allows(resource_type, interaction) for s in self.scopes)

    def patient_only(self, resource_type: str, interaction: Interaction) -> bool:
        """True when every grant for this type is a ``patient/`` one (the call is confined to one patient)."""
        granting = [s for s in self.scopes if s.allows(resource_type, interaction)]
        return bool(granting) and all(s.context is Context.PATIENT for s in granting)

    def readable_types(self, resource_types: Iterable[str]) -> frozenset[str]:
        """The types a response may carry for this token: those it may read or search (never AuditEvent
        through a wildcard). Included resources, ``$everything`` and history are held to the same grant."""
        return frozenset(
            t for t in resource_types if self.allows(t, Interaction.READ) or self.allows(t, Interaction.SEARCH)
        )

    @property
    def has_patient_context(self) -> bool:
        """Whether any scope is a ``patient/`` scope (the token must then name its patient)."""
        return any(s.context is Context.PATIENT for s in self.scopes)

    @property
    def allow_sensitive(self) -> bool:
        """Whether the token may see resources with sensitive security labels."""
        return SENSITIVE_SCOPE in self.raw

    @property
    def has_clinical_scope(self) -> bool:
        """Whether the token grants anything at all on clinical resources."""
        return bool(self.scopes)
