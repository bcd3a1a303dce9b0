"""FHIR Bulk Data export (IG v2) on the endpoint: kick-off, status polling, cancel and file download.

``GET|POST [base]/$export``, ``[base]/Patient/$export``, ``[base]/Group/{id}/$export``
    ``Prefer: respond-async`` required; ``_outputFormat``, ``_type``, ``_since``, ``_typeFilter``, ``_elements``
    (query, or a POSTed ``Parameters``). With ``Prefer: handling=lenient`` too, a parameter not taken or an
    unknown ``_elements`` name is ignored and reported in the manifest's error file rather than refused (400).
    202 with ``Content-Location: [base]/$export-status/{job}``.
``GET [base]/$export-status/{job}``
    202 with ``X-Progress`` and ``Retry-After`` while the export runs; 200 with the completion manifest (and an
    ``Expires`` header) when done; 500 with an OperationOutcome if the export failed on our side. Polling faster
    than ``Retry-After`` is answered like any poll (a poll is one indexed row read; the per-user rate limit
    still applies), so no separate 429 is needed.
``DELETE [base]/$export-status/{job}``
    Cancel (or say the files are no longer needed): 202, and the files are removed.
``GET [base]/$export-file/{job}/{name}``
    One NDJSON file, streamed, to the client and user who kicked the export off, while their token reads its type.

Who may do what is decided in ``_security`` (system/ scopes only); the service is :mod:`bcconnect.bulk`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlencode

import anyio
import orjson

from bcconnect.api._bundle import http_date
from bcconnect.api._handlers import Env
from bcconnect.api._http import Request, Response, note_audit_detail
from bcconnect.api._outcome import operation_outcome
from bcconnect.api._router import Route
from bcconnect.bulk import BulkExports, JobState, Level, parameters_from_resource, parse_export_request
from bcconnect.errors import BcconnectError, InvalidRequest, Unsupported
from bcconnect.view import AccessContext

NDJSON = "application/fhir+ndjson"
#: query parameters about the response format, not the export
_FORMAT_PARAMS = frozenset({"_format", "_pretty"})
#: chunk size of a streamed file
_CHUNK = 1 << 20


def _service(env: Env) -> BulkExports:
    if env.bulk is None:
        raise Unsupported("Bulk Data export is not enabled on this server")
    return env.bulk


def _status_url(request: Request, job_id: str) -> str:
    return f"{request.base_url}/$export-status/{job_id}"


async def kick_off(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``[base]/$export``, ``Patient/$export``, ``Group/{id}/$export``: queue an export (202)."""
    service = _service(env)
    prefer = {p.strip().replace(" ", "") for p in (request.header("prefer") or "").lower().split(",")}
    if "respond-async" not in prefer:
        raise InvalidRequest("$export runs asynchronously: send the header 'Prefer: respond-async'")
    query = [(k, v) for k, v in request.query if k not in _FORMAT_PARAMS]
    if request.method == "POST":
        if query:
            raise InvalidRequest("a POSTed $export takes its parameters in the Parameters body, not the query")
        try:
            body = orjson.loads(request.body or b"null")
        except orjson.JSONDecodeError:
            raise InvalidRequest("the body is not JSON (a Parameters resource was expected)") from None
        query = parameters_from_resource(body)
    level = {None: Level.SYSTEM, "Patient": Level.PATIENT, "Group": Level.GROUP}[route.resource_type]
    served = [c.resource_type for c in await env.view.capabilities(access)]
    # lenient: a parameter we do not take, or an unknown _elements name, is ignored and said in the error file
    lenient = "handling=lenient" in prefer
    export = parse_export_request(level, query, served_types=served, group_id=route.id, lenient=lenient)
    path = request.path.lstrip("/")
    request_url = f"{request.base_url}/{path}" + (f"?{urlencode(query)}" if query else "")
    job = await service.kick_off(access, export, base_url=request.base_url, request_url=request_url)
    note_audit_detail(f"bulk export {job.job_id} queued ({level.value})")
    body = operation_outcome("information", "informational", f"export {job.job_id} queued; poll the Content-Location")
    return Response(202, body, {"content-location": _status_url(request, job.job_id)})


async def export_status(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``GET`` (poll) or ``DELETE`` (cancel) ``[base]/$export-status/{job}``."""
    service = _service(env)
    assert route.id is not None
    if request.method == "DELETE":
        await service.cancel(access, route.id)
        note_audit_detail(f"bulk export {route.id} cancelled")
        body = operation_outcome("information", "informational", f"export {route.id} cancelled; its files are removed")
        return Response(202, body)
    job = await service.job_for(access, route.id)
    if job.state in (JobState.QUEUED, JobState.RUNNING):
        headers = {
            "x-progress": service.progress_text(job)[:100],
            "retry-after": str(service.settings.retry_after_seconds),
        }
        return Response(202, b"", headers)
    if job.state is JobState.FAILED:
        message = f"export {job.job_id} failed: {job.error or 'an internal error'}"
        return Response(500, operation_outcome("error", "exception", message))
    headers = {"content-type": "application/json"}
    if job.expires_at is not None:
        headers["expires"] = http_date(_iso(job.expires_at))
    return Response(200, service.manifest(job), headers, fhir=False)


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).isoformat().replace("+00:00", "Z")


async def export_file(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``GET [base]/$export-file/{job}/{name}``: the file, streamed in chunks."""
    service = _service(env)
    assert route.id is not None
    assert route.version is not None
    path, found = await service.file(access, route.id, route.version)
    note_audit_detail(f"bulk export {route.id} file {found.name}: {found.line_count} {found.resource_type} resources")

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async with await anyio.open_file(path, "rb") as handle:
                while chunk := await handle.read(_CHUNK):
                    yield chunk
        except OSError as exc:  # removed underneath us (cancel, expiry): the response is already under way
            raise BcconnectError(f"export file {found.name} vanished while being sent") from exc

    headers = {"content-type": NDJSON, "content-length": str(path.stat().st_size)}
    return Response(200, b"", headers, fhir=False, stream=chunks)


BULK_HANDLERS = {
    "export": kick_off,
    "export-status": export_status,
    "export-file": export_file,
}
