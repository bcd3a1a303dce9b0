"""Security and information governance of the read-only FHIR endpoint.

Who may see what, and a record of every look. The API plugs :class:`SecurityGate` into its two seams
(``bcconnect.api._security.security_hooks``); the view screens everything it returns::

    gate = SecurityGate.from_settings(settings, store, allow_no_auth=flag)
    principal = await gate.authenticate(authorization, remote_address=ip)        # 401, 429
    admission = gate.admit_request(principal, resource_type="Observation",
                                   interaction=Interaction.SEARCH, query=query)   # 400, 403
    screen = Screen.build(tx, access, policy=..., related=...)    # objection, labels, R, scopes
    page = search(tx, query, visibility=screen.visibility)                     # screened in the SQL
    await gate.record(principal=..., method=..., path=..., query=..., interaction=..., status=...,
                      patients=[...])                                              # AuditEvent, committed

Also: the local development issuer (:func:`ensure_local_issuer`), the objection register
(:func:`record_objection_from_resource`, :func:`add_objection` …), the audit chain
(:func:`verify_audit_chain`, :func:`search_audit_events`) and the national data opt-out for cohorts
(:func:`apply_national_opt_out`). Layer: above the store; the view and the API call in.
"""

from bcconnect.security._anchor import AuditAnchor, Checkpoint, check_against_anchors
from bcconnect.security._audit import AuditRecord, build_audit_event, outcome_code
from bcconnect.security._audit_store import (
    AuditEntry,
    ChainReport,
    ChainState,
    append_audit_event,
    audit_chain_head,
    audit_chains,
    audit_partitions,
    count_audit_events,
    default_partition_events,
    ensure_audit_months,
    next_month,
    patient_key,
    search_audit_events,
    unshipped_segments,
    verify_audit_chain,
)
from bcconnect.security._audit_writer import close_idle_segments
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
from bcconnect.security._ratelimit import Limit, RateLimiter, SharedRateLimits
from bcconnect.security._retention import PruneResult, prune_audit_trail, verify_audit_export, verify_audit_exports
from bcconnect.security._scopes import SENSITIVE_SCOPE, Interaction, Scope, ScopeSet, parse_scope
from bcconnect.security._screen import (
    RESTRICTED_SEARCH_PARAMS,
    Caller,
    Related,
    Screen,
    Screened,
    ScreenFacts,
    objecting_patient_ids,
    restricted_patient_ids,
    screen_resources,
    withheld_in_request,
)
from bcconnect.security._sensitivity import SensitiveCodes, direct_labels, label_sensitive, packaged_codes
from bcconnect.security._service import Admission, SecurityGate, audit_anchor_dir, record_operator_action
from bcconnect.security._shipping import (
    HttpSink,
    Segment,
    ShipError,
    Shipment,
    ShipReport,
    Sink,
    SyslogTcpSink,
    ship_closed_segments,
    shipments,
    sink_from_url,
)

__all__ = [
    "ANONYMOUS_DEVELOPER",
    "DEFAULT_OBJECTION_CODING",
    "DEFAULT_POLICY",
    "DIRECT_CARE",
    "RESTRICTED_SEARCH_PARAMS",
    "SENSITIVE_SCOPE",
    "AccessNotes",
    "Admission",
    "AuditAnchor",
    "AuditEntry",
    "AuditRecord",
    "Authenticator",
    "Caller",
    "ChainReport",
    "ChainState",
    "Checkpoint",
    "FileKeySource",
    "HttpSink",
    "Interaction",
    "JwksCache",
    "KeySource",
    "Limit",
    "LocalIssuer",
    "NationalOptOut",
    "Objection",
    "ObjectionChange",
    "ObjectionRules",
    "Principal",
    "PruneResult",
    "QueryLimits",
    "RateLimiter",
    "Related",
    "Scope",
    "ScopeSet",
    "Screen",
    "ScreenFacts",
    "Screened",
    "SecurityGate",
    "Segment",
    "SensitiveCodes",
    "SensitivityGrant",
    "SensitivityPolicy",
    "SharedRateLimits",
    "ShipError",
    "ShipReport",
    "Shipment",
    "Sink",
    "SyslogTcpSink",
    "TokenVerifier",
    "TrustedIssuer",
    "UrlKeySource",
    "add_objection",
    "add_withheld_issue",
    "append_audit_event",
    "apply_national_opt_out",
    "audit_anchor_dir",
    "audit_chain_head",
    "audit_chains",
    "audit_partitions",
    "authorise",
    "bearer_token",
    "build_audit_event",
    "build_authenticator",
    "chain_depth",
    "check_against_anchors",
    "check_query",
    "close_idle_segments",
    "count_audit_events",
    "current_notes",
    "default_partition_events",
    "direct_labels",
    "ensure_audit_months",
    "ensure_local_issuer",
    "filter_resource",
    "forget_objection_origin",
    "is_objecting",
    "is_restricted_patient",
    "is_sensitive",
    "label_sensitive",
    "list_objections",
    "next_month",
    "note_access",
    "objecting_patient_ids",
    "objecting_subjects",
    "outcome_code",
    "packaged_codes",
    "parse_scope",
    "patient_identities",
    "patient_key",
    "principal_from_claims",
    "prune_audit_trail",
    "record_objection_from_resource",
    "record_operator_action",
    "redact_for_restricted_patient",
    "redact_restricted_patient",
    "remove_objection",
    "request_deadline",
    "restricted_patient_ids",
    "screen_resources",
    "search_audit_events",
    "ship_closed_segments",
    "shipments",
    "sink_from_url",
    "start_notes",
    "unshipped_segments",
    "verify_audit_chain",
    "verify_audit_export",
    "verify_audit_exports",
    "withheld_entry",
    "withheld_in_request",
    "withheld_outcome",
    "www_authenticate",
]
