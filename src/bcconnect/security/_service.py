"""The security gate the API calls twice per request: :meth:`SecurityGate.admit` before, :meth:`record` after.

``admit`` authenticates (401), rate-limits (429), checks the query against the limits (400) and authorises the
interaction (403), in that order, and returns an :class:`Admission`. ``record`` writes the AuditEvent for the
request, whatever its outcome, by group commit (one transaction for the events of the requests that finish
together, see ``_audit_writer``), and returns only once it is committed, so the API sends no response that is
not already audited.
"""

from __future__ import annotations

import getpass
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from bcconnect.config import SecuritySettings, Settings
from bcconnect.errors import NotAuthenticated, RequestError
from bcconnect.security._anchor import AuditAnchor
from bcconnect.security._audit import AuditRecord, build_audit_event
from bcconnect.security._audit_store import append_audit_event
from bcconnect.security._audit_writer import AuditWriter
from bcconnect.security._authenticate import Authenticator, authorise, build_authenticator
from bcconnect.security._filters import SensitivityPolicy
from bcconnect.security._limits import QueryLimits, check_query
from bcconnect.security._notes import current_notes
from bcconnect.security._optout import NationalOptOut
from bcconnect.security._principal import Principal
from bcconnect.security._ratelimit import Limit, RateLimiter, SharedRateLimits
from bcconnect.security._scopes import Interaction
from bcconnect.store import ALIAS_FAMILY, Store, Tx, alias_members, canonical_ids, change_counters


@dataclass(frozen=True, slots=True)
class Admission:
    """A request that may go ahead: who asks, the patient it is confined to (if any), and the capped _count."""

    principal: Principal
    confined_to_patient: str | None
    count: int | None


#: the audit reason for a refusal when the hook only knows the status
_STATUS_DETAIL = {
    400: "incorrect",
    401: "not-authenticated",
    403: "forbidden",
    404: "not-found",
    405: "not-allowed",
    406: "not-acceptable",
    410: "gone",
    429: "busy",
    503: "unavailable",
}


def audit_anchor_dir(settings: Settings) -> Path:
    """Where the audit chain's checkpoints and signing key live: ``[security] audit_anchor_dir``, by default
    ``<data_dir>/audit-anchor``."""
    configured = settings.security.audit_anchor_dir
    return settings.resolve(configured or str(Path(settings.paths.data_dir) / "audit-anchor"))


class PersonNames:
    """Which person each Patient id belongs to, for naming it in AuditEvents, kept in the process.

    Read from the store's reference aliases (a person's golden id and its source records) and dropped when
    their change counter moves; :meth:`refresh` checks it once per audit batch, in the batch's transaction.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: int | None = None
        self._known: dict[str, frozenset[str]] = {}

    def refresh(self, tx: Tx) -> None:
        """Drop what was learnt if the aliases changed since (call in the transaction that then names)."""
        version = change_counters(tx).get(ALIAS_FAMILY, 0)
        with self._lock:
            if version != self._version:
                self._known, self._version = {}, version

    def with_persons(self, tx: Tx, patients: Iterable[str]) -> set[str]:
        """``Patient/<id>`` references plus the person (golden id) of each source record, and the source records
        of each golden id: the record ids touched and the person they belong to."""
        refs = set(patients)
        known = self._known
        ids = {ref.removeprefix("Patient/") for ref in refs}
        missing = sorted(i for i in ids if i not in known)
        if missing:
            canonical = canonical_ids(tx, "Patient", missing)
            members = alias_members(tx, "Patient", set(canonical.values())) if canonical else {}
            for ident in missing:
                person = canonical.get(ident)
                if person is None:
                    known[ident] = frozenset()
                elif person == ident:  # a person: every record of it
                    known[ident] = frozenset(m for m in members.get(person, ()) if m != ident)
                else:  # a record: the person it belongs to
                    known[ident] = frozenset({person})
        out = set(refs)
        for ident in ids:
            out.update(f"Patient/{p}" for p in known[ident])
        return out


def rate_limits_from(settings: SecuritySettings) -> dict[str, Limit]:
    """The per-user, per-client and per-address limits ``[security]`` configures."""
    return {
        "user": Limit(settings.user_rate_limit_per_second, settings.user_rate_limit_burst),
        "client": Limit(settings.rate_limit_per_second, settings.rate_limit_burst),
        "address": Limit(settings.address_rate_limit_per_second, settings.address_rate_limit_burst),
    }


class SecurityGate:
    """Authentication, limits, authorisation and audit for the FHIR endpoint (one per app, built at start-up)."""

    def __init__(
        self,
        *,
        store: Store,
        authenticator: Authenticator,
        limiter: RateLimiter,
        limits: QueryLimits,
        rate_limits: SharedRateLimits | None = None,
        policy: SensitivityPolicy,
        opt_out: NationalOptOut,
        request_timeout_seconds: float = 30.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        anchor: AuditAnchor | None = None,
        checkpoint_every: int = 100,
    ) -> None:
        #: where signed checkpoints of the audit chain go (outside the database); None: no anchoring
        self.anchor = anchor
        self.checkpoint_every = max(1, checkpoint_every)
        self.store = store
        self.authenticator = authenticator
        self.limiter = limiter
        #: per-user, per-client and per-address buckets in the store; None: ``limiter`` alone, in memory
        self.rate_limits = rate_limits
        self.limits = limits
        self.policy = policy
        self.opt_out = opt_out
        self.request_timeout_seconds = request_timeout_seconds
        self._now = now
        self.person_names = PersonNames()
        #: this process's own audit chain (segment), appended by group commit
        self.audit_writer = AuditWriter(store, before_batch=self.person_names.refresh, anchor=anchor)

    @classmethod
    def from_settings(cls, settings: Settings, store: Store, *, allow_no_auth: bool = False) -> SecurityGate:
        """Build every part from the configuration (``allow_no_auth`` is the explicit no-auth start flag)."""
        sec = settings.security
        opt_out_file = sec.national_opt_out_file
        return cls(
            store=store,
            authenticator=build_authenticator(settings.auth, root=settings.root, allow_no_auth=allow_no_auth),
            limiter=RateLimiter(rate=sec.rate_limit_per_second, burst=sec.rate_limit_burst),
            rate_limits=SharedRateLimits(store, rate_limits_from(sec)) if sec.rate_limit_shared else None,
            limits=QueryLimits.from_settings(sec, max_count=settings.api.max_count),
            policy=SensitivityPolicy.from_settings(sec),
            opt_out=NationalOptOut.load(settings.resolve(opt_out_file) if opt_out_file else None),
            request_timeout_seconds=sec.request_timeout_seconds,
            anchor=AuditAnchor(audit_anchor_dir(settings)),
            checkpoint_every=sec.audit_checkpoint_every,
        )

    async def authenticate(self, authorization: str | None, *, remote_address: str | None = None) -> Principal:
        """Who is asking (401 if nobody we trust), and one token from their rate-limit bucket (429).

        The caller is kept in the request's access notes (if started) for :meth:`record`.
        """
        try:
            principal = await self.authenticator.authenticate(authorization)
        except NotAuthenticated:
            # unauthenticated floods are limited per address, so they cannot starve anyone else
            if self.rate_limits is not None:
                await self.rate_limits.check("address", remote_address or "unknown")
            else:
                self.limiter.check(f"addr:{remote_address or 'unknown'}")
            raise
        notes = current_notes()
        if notes is not None:
            notes.principal = principal
        if self.rate_limits is not None and principal.issuer == "none":
            # authentication is off (development): nobody is a user, so each address gets a client's allowance
            await self.rate_limits.check("client", f"unauthenticated@{remote_address or 'unknown'}")
        elif self.rate_limits is not None:
            # a user is limited whatever client they use; a client (a whole EPR) has its own, larger allowance
            await self.rate_limits.check("user", principal.user or "anonymous")
            if principal.client_id:
                await self.rate_limits.check("client", principal.client_id)
        else:
            self.limiter.check(f"client:{principal.client_id or principal.user}")
        return principal

    def admit_request(
        self, principal: Principal, *, resource_type: str, interaction: Interaction, query: str = ""
    ) -> Admission:
        """Check the query limits (400) and the grant (403) for an authenticated caller."""
        count = check_query(query, self.limits)
        confined = authorise(principal, resource_type=resource_type, interaction=interaction)
        return Admission(principal=principal, confined_to_patient=confined, count=count)

    async def admit(
        self,
        authorization: str | None,
        *,
        resource_type: str,
        interaction: Interaction,
        query: str = "",
        remote_address: str | None = None,
    ) -> Admission:
        """:meth:`authenticate` then :meth:`admit_request`."""
        principal = await self.authenticate(authorization, remote_address=remote_address)
        return self.admit_request(principal, resource_type=resource_type, interaction=interaction, query=query)

    async def record(
        self,
        *,
        principal: Principal | None,
        method: str,
        path: str,
        query: str,
        interaction: str,
        status: int,
        resource_type: str | None = None,
        patients: Iterable[str] = (),
        error: BaseException | None = None,
        remote_address: str | None = None,
        detail: str | None = None,
        owner: object | None = None,
        request_id: str | None = None,
    ) -> str:
        """Write this request's AuditEvent durably; returns its id. Call it for every request, refused or not.

        ``detail`` notes what was withheld without clinical content (``"objection"``, ``"sensitive"``); by
        default it is the error's category. ``owner``: the request object the notes were started with.
        """
        notes = current_notes(owner)
        if notes is not None:
            patients = [*patients, *notes.patients]
            principal = principal or notes.principal
        if detail is None and notes is not None and notes.withheld:
            detail = "withheld: " + ",".join(sorted(notes.withheld))
        elif detail is not None:
            pass
        elif isinstance(error, RequestError):
            detail = error.category.value
        elif error is not None:
            detail = "fault"
        elif status >= 400:
            detail = _STATUS_DETAIL.get(status, f"status-{status}")
        record = AuditRecord(
            recorded=self._now(),
            interaction=interaction,
            status=status,
            method=method,
            path=path,
            query=query,
            resource_type=resource_type,
            user=principal.user if principal else None,
            role=principal.role if principal else None,
            organisation=principal.organisation if principal else None,
            purpose=principal.purpose if principal else None,
            client_id=principal.client_id if principal else None,
            remote_address=remote_address,
            patients=tuple(sorted(set(patients))),
            detail=detail,
            request_id=request_id,
        )
        event_id = str(uuid.uuid4())

        def build(tx: Tx) -> tuple[dict[str, Any], tuple[str, ...]]:
            # named by person as well as by record, so "who looked at this person" finds every event
            named = replace(record, patients=tuple(sorted(self.person_names.with_persons(tx, record.patients))))
            return build_audit_event(named, event_id=event_id), named.patients

        # group commit: this request's event shares one transaction with those of concurrent requests
        entry = await self.audit_writer.append(build)
        if self.anchor is not None and entry.link % self.checkpoint_every == 0:
            # committed first: a checkpoint never names an event that could still roll back
            anchor = self.anchor
            await anyio.to_thread.run_sync(lambda: anchor.checkpoint(entry.link, entry.hash, chain=entry.chain))
        return event_id


async def record_operator_action(
    store: Store, *, action: str, detail: str, user: str | None = None, now: datetime | None = None
) -> str:
    """Audit an operator command that reads patient data outside the FHIR endpoint (``bcconnect export``).

    The operating-system user is the agent (no token exists); the event joins the same hash chain.
    """
    who = user or getpass.getuser()
    record = AuditRecord(
        recorded=now or datetime.now(UTC),
        interaction="operation",
        status=200,
        method="CLI",
        path=action,
        query="",
        user=f"os:{who}",
        purpose="operations",
        detail=detail,
    )
    event_id = str(uuid.uuid4())
    event = build_audit_event(record, event_id=event_id)
    await store.write(lambda tx: append_audit_event(tx, event))
    return event_id
