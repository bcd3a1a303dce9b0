"""FHIR Bulk Data export (Bulk Data Access IG v2): ``$export`` at system, Patient and Group level.

::

    exports = BulkExports.from_settings(settings, view)            # [bulk] and the national data opt-out
    request = parse_export_request(Level.GROUP, params, served_types=..., group_id="g1")   # 400s here
    job = await exports.kick_off(access, request, base_url=..., request_url=...)          # queued in the store
    await exports.run_worker()                                     # in `serve`: claims, writes, sweeps
    job = await exports.job_for(access, job.job_id)                # status; manifest when completed
    path, file = await exports.file(access, job.job_id, "Observation-1.ndjson")

A capability package above the view: every resource comes through the view with the requester's grant (its
batch read for exports, or ``View.search`` for ``_typeFilter``), so the export is screened exactly as their
searches would be (scopes, objection, sensitivity, restriction). It adds
only selection: a Group's members, one (golden) Patient per person, and — a bulk export being a secondary use —
no one under the national data opt-out. Jobs and files are in tables ``bulk_jobs``/``bulk_files`` (owned here),
so a restart resumes a running export and keeps a finished one until it expires.
"""

from bcconnect.bulk._export import NON_PATIENT_TYPES
from bcconnect.bulk._jobs import Job, JobFile, JobState
from bcconnect.bulk._request import (
    ACCEPTED_PARAMETERS,
    OUTPUT_FORMATS,
    ExportRequest,
    Level,
    parameters_from_resource,
    parse_export_request,
)
from bcconnect.bulk._service import (
    WITHHELD_EXTENSION,
    BulkExports,
    ExportSummary,
    GroupMembers,
    export_to_folder,
)

__all__ = [
    "ACCEPTED_PARAMETERS",
    "NON_PATIENT_TYPES",
    "OUTPUT_FORMATS",
    "WITHHELD_EXTENSION",
    "BulkExports",
    "ExportRequest",
    "ExportSummary",
    "GroupMembers",
    "Job",
    "JobFile",
    "JobState",
    "Level",
    "export_to_folder",
    "parameters_from_resource",
    "parse_export_request",
]
