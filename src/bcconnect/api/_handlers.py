"""One async handler per interaction: (environment, request, access, route) in, :class:`Response` out.

Handlers know FHIR and HTTP semantics, not SQL (they call the view) and not ASGI (the app does that).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime

import orjson

from bcconnect.api._bundle import history_bundle, http_date, link_url, resource_url, searchset
from bcconnect.api._capability import capability_statement, smart_configuration, smart_offered
from bcconnect.api._format import subset
from bcconnect.api._http import Request, Response
from bcconnect.api._outcome import operation_outcome
from bcconnect.api._paging import PageState, decode_page, encode_page
from bcconnect.api._router import Route
from bcconnect.bulk import BulkExports
from bcconnect.cohorts import Cohorts
from bcconnect.config import AuthSettings
from bcconnect.errors import InvalidRequest, ResourceNotFound
from bcconnect.triage import Triage
from bcconnect.view import (
    FRESHNESS_HEADER,
    TRANSPORT_PARAMS,
    AccessContext,
    StoredResource,
    Summary,
    View,
    freshness_extension,
    freshness_header,
    parse_non_negative,
)

#: query parameters carried from a request into its page links
_CARRIED = ("_format", "_pretty")


@dataclass(frozen=True, slots=True)
class Env:
    """What handlers share: the view, the page-token key and the triage service (None: built per request)."""

    view: View
    page_key: bytes
    #: the identity provider's endpoints, for SMART discovery
    auth: AuthSettings = field(default_factory=AuthSettings)
    triage: Triage | None = None
    #: cohort definitions and the opt-out file for ``Group/{id}/$recompute`` (None: the packaged definitions)
    cohorts: Cohorts | None = None
    #: the Bulk Data service (None: ``$export`` is not enabled on this server)
    bulk: BulkExports | None = None


def _patients(resources: Iterable[StoredResource]) -> frozenset[str]:
    found = set()
    for r in resources:
        if r.resource_type == "Patient":
            found.add(r.id)
        elif r.compartment:
            found.add(r.compartment)
    return frozenset(found)


def _version_headers(resource: StoredResource) -> dict[str, str]:
    return {"etag": f'W/"{resource.version}"', "last-modified": http_date(resource.last_updated)}


def _not_modified(request: Request, resource: StoredResource) -> bool:
    """RFC 9110 §13.2.2: If-None-Match decides when present; otherwise If-Modified-Since (second precision)."""
    wanted = request.header("if-none-match")
    if wanted:
        tags = {t.strip() for t in wanted.split(",")}
        return "*" in tags or f'W/"{resource.version}"' in tags or f'"{resource.version}"' in tags
    since = request.header("if-modified-since")
    if not since:
        return False
    try:
        client_time = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False  # an unreadable date is ignored, as the RFC asks
    if client_time.tzinfo is None:
        return False
    modified = datetime.fromisoformat(resource.last_updated.replace("Z", "+00:00")).replace(microsecond=0)
    return modified <= client_time


def _single(request: Request, resource: StoredResource) -> Response:
    headers = _version_headers(resource)
    patients = _patients([resource])
    if _not_modified(request, resource):
        return Response(304, b"", headers, patients, fhir=False)
    assert resource.body is not None  # deletions raise ResourceGone in the view
    summary = request.param("_summary")
    elements = request.param("_elements")
    body = resource.body
    if summary or elements:
        body = subset(
            body,
            summary=Summary(summary) if summary in {s.value for s in Summary} else None,
            elements=[e.strip() for e in elements.split(",")] if elements else None,
        )
    return Response(200, body, headers, patients)


async def read(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``GET [base]/Type/id`` (the freshness header says how current the person's data is)."""
    assert route.resource_type
    assert route.id
    response = _single(request, await env.view.read(access, route.resource_type, route.id))
    _, headers = await _freshness(env, access, response.patients)
    response.headers.update(headers)
    return response


async def vread(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``GET [base]/Type/id/_history/vid``."""
    assert route.resource_type
    assert route.id
    assert route.version
    return _single(request, await env.view.vread(access, route.resource_type, route.id, route.version))


def _offset(request: Request) -> int:
    return parse_non_negative(request.param("_getpagesoffset") or "0", "_getpagesoffset")


async def history_instance(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``GET [base]/Type/id/_history`` (``_count``, ``_since``; pages by offset)."""
    assert route.resource_type
    assert route.id
    count_text = request.param("_count")
    count = parse_non_negative(count_text, "_count", maximum=env.view.max_count) if count_text else None
    offset = _offset(request)
    page = await env.view.history(
        access,
        route.resource_type,
        route.id,
        count=count,
        offset=offset,
        since=request.param("_since"),
    )
    path = f"{route.resource_type}/{route.id}/_history"
    kept = [(k, v) for k, v in request.query if k != "_getpagesoffset"]
    links = [("self", link_url(request.base_url, path, request.query))]
    if page.has_more:
        links.append(
            ("next", link_url(request.base_url, path, [*kept, ("_getpagesoffset", str(offset + len(page.versions)))]))
        )
    body = history_bundle(base_url=request.base_url, links=links, versions=page.versions)
    return Response(200, body, patients=_patients(page.versions))


def _page_state(env: Env, request: Request, kind: str, target: str) -> PageState | None:
    token = request.param("_page_token")
    if token is None:
        return None
    state = decode_page(token, env.page_key)
    if state.kind != kind or state.target != target:
        raise InvalidRequest("_page_token belongs to another search")
    return state


def _entries(
    request: Request,
    resources: Sequence[StoredResource],
    mode: str,
    summary: Summary | None,
    elements: Sequence[str] | None,
) -> list[tuple[str, bytes, str]]:
    out = []
    for r in resources:
        assert r.body is not None  # searches never return deletions
        body = subset(r.body, summary=summary, elements=elements) if summary or elements else r.body
        out.append((resource_url(request.base_url, r), body, mode))
    return out


async def search_type(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``GET [base]/Type?params`` with snapshot-consistent paging (``_page_token``)."""
    assert route.resource_type
    rtype = route.resource_type
    if rtype == "AuditEvent":
        return await audit_search(env, request, access)
    state = _page_state(env, request, "search", rtype)
    params = state.params if state else tuple((k, v) for k, v in request.query if k not in TRANSPORT_PARAMS)
    lenient = "handling=lenient" in (request.header("prefer") or "").replace(" ", "")
    result = await env.view.search(
        access,
        rtype,
        params,
        lenient=lenient,
        at=state.t if state else None,
        offset=state.offset if state else 0,
        after=state.after if state else None,
        base_url=request.base_url,
    )
    query, page = result.query, result.page
    # the self link and the next pages name the parameters the search used, not those it ignored (§3.1.1.6)
    params = query.used(params)
    carried = [(k, v) for k, v in request.query if k in _CARRIED]
    links = [("self", link_url(request.base_url, rtype, [*params, *carried]))]
    if page.has_more:
        token = encode_page(
            PageState("search", rtype, params, page.t, page.offset + len(page.matches), page.after), env.page_key
        )
        links.append(("next", link_url(request.base_url, rtype, [("_page_token", token), *carried])))
    if page.offset > 0:
        previous = max(0, page.offset - query.count)
        token = encode_page(PageState("search", rtype, params, page.t, previous), env.page_key)
        links.append(("previous", link_url(request.base_url, rtype, [("_page_token", token), *carried])))
    summary, elements = query.summary, query.elements
    entries = _entries(request, page.matches, "match", summary, elements)
    entries += _entries(request, page.included, "include", summary, elements)
    outcome = None
    if query.ignored:
        outcome = operation_outcome(
            "warning", "not-supported", f"ignored unknown or unsupported parameters: {', '.join(query.ignored)}"
        )
    total = page.total
    if summary is Summary.COUNT:
        entries = []
    patients = _patients([*page.matches, *page.included])
    meta, headers = await _freshness(env, access, patients)
    body = searchset(links=links, entries=entries, total=total, outcome=outcome, meta=meta)
    return Response(200, body, headers, patients=patients)


async def audit_search(env: Env, request: Request, access: AccessContext) -> Response:
    """``GET [base]/AuditEvent?patient=…``: who looked at this person's record (the scope was checked already)."""
    patient = request.param("patient")
    if not patient:
        raise InvalidRequest("AuditEvent search needs patient=", expression=["patient"])
    count_text = request.param("_count") or str(env.view.default_count)
    count, offset = parse_non_negative(count_text, "_count", maximum=env.view.max_count), _offset(request)
    bodies = await env.view.audit_events(access, patient, count=count + 1, offset=offset)
    kept = [(k, v) for k, v in request.query if k != "_getpagesoffset"]
    links = [("self", link_url(request.base_url, "AuditEvent", request.query))]
    if len(bodies) > count:
        links.append(
            ("next", link_url(request.base_url, "AuditEvent", [*kept, ("_getpagesoffset", str(offset + count))]))
        )
    entries = [(f"{request.base_url}/AuditEvent/{orjson.loads(b)['id']}", b, "match") for b in bodies[:count]]
    return Response(
        200,
        searchset(links=links, entries=entries, total=None),
        patients=frozenset({patient.strip().rstrip("/").rsplit("/", 1)[-1]}),
    )


async def everything(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``GET [base]/Patient/id/$everything`` (``_since``, ``_type``, ``start``, ``end``, ``_count``)."""
    assert route.id
    path = f"Patient/{route.id}/$everything"
    state = _page_state(env, request, "everything", route.id)
    params = state.params if state else tuple((k, v) for k, v in request.query if k not in TRANSPORT_PARAMS)
    page = await env.view.everything(
        access,
        route.id,
        params,
        at=state.t if state else None,
        offset=state.offset if state else 0,
        after=state.after if state else None,
    )
    carried = [(k, v) for k, v in request.query if k in _CARRIED]
    links = [("self", link_url(request.base_url, path, [*params, *carried]))]
    if page.has_more:
        token = encode_page(
            PageState("everything", route.id, params, page.t, page.offset + len(page.matches), page.after),
            env.page_key,
        )
        links.append(("next", link_url(request.base_url, path, [("_page_token", token), *carried])))
    entries = _entries(request, page.matches, "match", None, None)
    outcome = None
    patients = frozenset({route.id}) | _patients(page.matches)
    meta, headers = await _freshness(env, access, patients)
    body = searchset(links=links, entries=entries, total=page.total, outcome=outcome, meta=meta)
    return Response(200, body, headers, patients=patients)


async def match(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``POST [base]/Patient/$match`` with a Parameters resource: candidate persons, best first."""
    try:
        parameters = orjson.loads(request.body or b"null")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not JSON: {exc}") from exc
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise InvalidRequest("$match takes a Parameters resource with a 'resource' parameter (a Patient)")
    bundle = orjson.loads(await env.view.match(parameters, access, base_url=request.base_url))
    patients = frozenset(
        str(entry["resource"]["id"]) for entry in bundle.get("entry", []) if isinstance(entry.get("resource"), dict)
    )
    meta, headers = await _freshness(env, access, patients)
    if meta:
        bundle["meta"] = {**bundle.get("meta", {}), **meta}
    return Response(200, orjson.dumps(bundle), headers, patients=patients)


async def _freshness(
    env: Env, access: AccessContext, patients: frozenset[str]
) -> tuple[dict[str, object] | None, dict[str, str]]:
    """For a response that shows a person's data: how current each trust's data is (Bundle.meta, header)."""
    if not patients:
        return None, {}
    items = await env.view.freshness(access)
    return freshness_extension(items), {FRESHNESS_HEADER: freshness_header(items)}


async def capabilities(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``GET [base]/metadata``."""
    types = await env.view.capabilities(access)
    return Response(200, capability_statement(request.base_url, types, env.auth, bulk=env.bulk is not None))


async def smart_configuration_document(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``GET [base]/.well-known/smart-configuration`` (public, plain JSON); 404 when no authorisation server
    is configured (a document without its REQUIRED ``token_endpoint`` would mislead a SMART client)."""
    if not smart_offered(env.auth):
        raise ResourceNotFound(
            "SMART App Launch discovery is not offered: no authorisation server is configured ([auth] token_endpoint)"
        )
    body = smart_configuration(request.base_url, env.auth)
    return Response(200, body, {"content-type": "application/json", "cache-control": "max-age=3600"}, fhir=False)


HANDLERS = {
    "read": read,
    "vread": vread,
    "history-instance": history_instance,
    "search-type": search_type,
    "everything": everything,
    "match": match,
    "capabilities": capabilities,
    "smart-configuration": smart_configuration_document,
}
