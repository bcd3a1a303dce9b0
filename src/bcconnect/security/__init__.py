"""Security and information governance of the read-only FHIR endpoint.

Who may see what, and a record of every look::

    authenticator = build_authenticator(settings.auth, root=settings.root)
    principal = await authenticator.authenticate(request.headers.get("authorization"))   # 401
    confined_to = authorise(principal, resource_type="Observation", interaction=Interaction.SEARCH)  # 403
    limiter.check(principal.client_id or principal.user)                                  # 429
    count = check_query(query_string, limits)                                              # 400
    body = filter_resource(stored_bytes, principal)       # None: withheld (sensitive)
    if is_objecting(tx, nhs_numbers=..., patient_refs=...): ...  # withhold the whole person
    await store.write(lambda tx: append_audit_event(tx, build_audit_event(record, event_id=...),
                                                    patients=record.patients))

Layer: above the store (audit trail and objection register are tables there); the view and the API call in.
"""

from bcconnect.security._audit import AuditRecord, build_audit_event, outcome_code
from bcconnect.security._audit_store import (
    AuditEntry,
    ChainReport,
    append_audit_event,
    count_audit_events,
    patient_key,
    search_audit_events,
    verify_audit_chain,
)
from bcconnect.security._authenticate import (
    ANONYMOUS_DEVELOPER,
    Authenticator,
    authorise,
    build_authenticator,
    www_authenticate,
)
from bcconnect.security._filters import (
    DEFAULT_POLICY,
    SensitivityGrant,
    SensitivityPolicy,
    add_withheld_issue,
    filter_resource,
    is_restricted_patient,
    is_sensitive,
    redact_for_restricted_patient,
    redact_restricted_patient,
    withheld_entry,
    withheld_outcome,
)
from bcconnect.security._jwks import FileKeySource, JwksCache, KeySource, UrlKeySource
from bcconnect.security._jwt import TokenVerifier, TrustedIssuer, bearer_token
from bcconnect.security._limits import QueryLimits, chain_depth, check_query, request_deadline
from bcconnect.security._local_issuer import LocalIssuer, ensure_local_issuer
from bcconnect.security._notes import AccessNotes, current_notes, note_access, start_notes
from bcconnect.security._objection import (
    DEFAULT_OBJECTION_CODING,
    Objection,
    ObjectionChange,
    ObjectionRules,
    add_objection,
    forget_objection_origin,
    is_objecting,
    list_objections,
    objecting_subjects,
    patient_identities,
    record_objection_from_resource,
    remove_objection,
)
from bcconnect.security._optout import NationalOptOut, apply_national_opt_out
from bcconnect.security._principal import DIRECT_CARE, Principal, principal_from_claims
from bcconnect.security._ratelimit import RateLimiter
from bcconnect.security._scopes import SENSITIVE_SCOPE, Interaction, Scope, ScopeSet, parse_scope
from bcconnect.security._screen import Related, Screened, screen_one, screen_page, screen_resources, withheld_in_request
from bcconnect.security._service import Admission, SecurityGate

__all__ = [
    "ANONYMOUS_DEVELOPER",
    "DEFAULT_OBJECTION_CODING",
    "DEFAULT_POLICY",
    "DIRECT_CARE",
    "SENSITIVE_SCOPE",
    "AccessNotes",
    "Admission",
    "AuditEntry",
    "AuditRecord",
    "Authenticator",
    "ChainReport",
    "FileKeySource",
    "Interaction",
    "JwksCache",
    "KeySource",
    "LocalIssuer",
    "NationalOptOut",
    "Objection",
    "ObjectionChange",
    "ObjectionRules",
    "Principal",
    "QueryLimits",
    "RateLimiter",
    "Related",
    "Scope",
    "ScopeSet",
    "Screened",
    "SecurityGate",
    "SensitivityGrant",
    "SensitivityPolicy",
    "TokenVerifier",
    "TrustedIssuer",
    "UrlKeySource",
    "add_objection",
    "add_withheld_issue",
    "append_audit_event",
    "apply_national_opt_out",
    "authorise",
    "bearer_token",
    "build_audit_event",
    "build_authenticator",
    "chain_depth",
    "check_query",
    "count_audit_events",
    "current_notes",
    "ensure_local_issuer",
    "filter_resource",
    "forget_objection_origin",
    "is_objecting",
    "is_restricted_patient",
    "is_sensitive",
    "list_objections",
    "note_access",
    "objecting_subjects",
    "outcome_code",
    "parse_scope",
    "patient_identities",
    "patient_key",
    "principal_from_claims",
    "record_objection_from_resource",
    "redact_for_restricted_patient",
    "redact_restricted_patient",
    "remove_objection",
    "request_deadline",
    "screen_one",
    "screen_page",
    "screen_resources",
    "search_audit_events",
    "start_notes",
    "verify_audit_chain",
    "withheld_entry",
    "withheld_in_request",
    "withheld_outcome",
    "www_authenticate",
]
