"""The vendor JSON source pack: a trust's change feed as the RNA-style adapter reads it.

Target: the API base (``https://trust.example``). Options: ``api_key`` (sent as ``X-API-Key``), ``feed_path``
(default ``/api/v2/changes``), ``page_size`` (default 100), ``max_pages`` (bound on the feed walk, default 40),
``expect_deletes`` (``true`` when the operator knows records were deleted: then a feed without deletes fails).
The feed contract: ``GET {feed}?cursor=<opaque>&limit=<n>`` → ``{"changes": [{"seq", "entity", "id", "op",
"modified", "data"}], "next_cursor", "has_more"}``; no cursor means from the beginning.
"""

from __future__ import annotations

from typing import Any

from bcconnect.conformance._catalogue_file import load_catalogue
from bcconnect.conformance._context import Answer, Context, require
from bcconnect.conformance._fhir import query
from bcconnect.conformance._model import Failed, NotApplicable, Pack
from bcconnect.fhir.nhs_number import is_valid

PACK = Pack(load_catalogue("source-json"))
check = PACK.check
KNOWN_ENTITIES = frozenset(
    {"patient", "encounter", "diagnosis", "result", "medication", "allergy", "referral", "appointment", "pathway"}
)
PAGE = 100
DEFAULT_MAX_PAGES = 40


def _feed(ctx: Context, cursor: str | None = None, limit: int | None = None) -> str:
    path = ctx.option("feed_path") or "/api/v2/changes"
    params = [("limit", str(limit or int(ctx.option("page_size") or PAGE)))] + (
        [("cursor", cursor)] if cursor is not None else []
    )
    return f"{path}{query(params)}"


def _key_headers(ctx: Context) -> dict[str, str]:
    key = ctx.option("api_key")
    if not key:
        raise NotApplicable("no --api-key given")
    return {"x-api-key": key, "accept": "application/json"}


async def _page(ctx: Context, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
    answer: Answer = await ctx.get(_feed(ctx, cursor, limit), headers=_key_headers(ctx), auth=False)
    require(answer.status == 200, f"the feed answered HTTP {answer.status}")
    body = answer.json()
    require(isinstance(body, dict), "the feed answer is not a JSON object")
    return body  # type: ignore[no-any-return]


async def _walk(ctx: Context) -> tuple[list[list[dict[str, Any]]], list[str], bool]:
    pages: list[list[dict[str, Any]]] = []
    cursors: list[str] = []
    cursor: str | None = None
    limit = int(ctx.option("max_pages") or DEFAULT_MAX_PAGES)
    for _ in range(limit):
        body = await _page(ctx, cursor)
        require(isinstance(body.get("changes"), list), "the answer has no changes list")
        require(isinstance(body.get("next_cursor"), str) and body["next_cursor"], "the answer has no next_cursor")
        require(isinstance(body.get("has_more"), bool), "the answer has no has_more boolean")
        pages.append(body["changes"])
        cursors.append(body["next_cursor"])
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return pages, cursors, True
    return pages, cursors, False


async def walked(ctx: Context) -> tuple[list[list[dict[str, Any]]], list[str], bool]:
    """The feed from the beginning, page by page (bounded): (pages of changes, next cursors, caught up)."""
    found = await ctx.shared("feed", _walk)
    if len(ctx.exchanges) > 6:
        ctx.exchanges[2:-2] = []
    ctx.note(f"{sum(len(p) for p in found[0])} changes over {len(found[0])} pages (caught up: {found[2]})")
    return found


@check("src-json.auth")
async def auth(ctx: Context) -> str:
    headers = _key_headers(ctx)
    for why, sent in (
        ("no key", {"accept": "application/json"}),
        ("a wrong key", {**headers, "x-api-key": "conformance-wrong"}),
    ):
        answer = await ctx.get(_feed(ctx, limit=1), headers=sent, auth=False)
        require(answer.status == 401, f"{why} → HTTP {answer.status}, expected 401")
    await _page(ctx, limit=1)
    return "refused without and with a wrong key; served with the right one"


@check("src-json.change-shape")
async def change_shape(ctx: Context) -> str:
    pages, _, _ = await walked(ctx)
    problems = []
    for change in (c for p in pages for c in p):
        where = f"change seq={change.get('seq')!r}"
        if not isinstance(change.get("seq"), int):
            problems.append(f"{where}: seq is not an integer")
        if not change.get("entity") or not change.get("id") or not change.get("modified"):
            problems.append(f"{where}: entity, id or modified missing")
        if change.get("op") == "upsert" and not isinstance(change.get("data"), dict):
            problems.append(f"{where}: an upsert without data")
        elif change.get("op") == "delete" and change.get("data"):
            problems.append(f"{where}: a delete carries data")
        elif change.get("op") not in ("upsert", "delete"):
            problems.append(f"{where}: op {change.get('op')!r} is neither upsert nor delete")
    require(not problems, f"{len(problems)} malformed changes: " + "; ".join(problems[:10]))
    return f"{sum(len(p) for p in pages)} changes well formed"


@check("src-json.cursor-monotonic")
async def monotonic(ctx: Context) -> str:
    pages, _, _ = await walked(ctx)
    previous: int | None = None
    for n, page in enumerate(pages, 1):
        for change in page:
            seq = change.get("seq")
            if isinstance(seq, int):
                require(previous is None or seq > previous, f"seq falls from {previous} to {seq} on page {n}")
                previous = seq
    return f"seq rises through {sum(len(p) for p in pages)} changes (last {previous})"


@check("src-json.cursor-resumable")
async def resumable(ctx: Context) -> str:
    pages, cursors, _ = await walked(ctx)
    if len(pages) < 2:
        raise NotApplicable("the feed has a single page; nothing to resume")
    first = await _page(ctx, cursors[0])
    second = await _page(ctx, cursors[0])
    seqs = [[c.get("seq") for c in b.get("changes") or []] for b in (first, second)]
    require(seqs[0] == seqs[1], "resuming twice from the same cursor gave different changes")
    expected = [c.get("seq") for c in pages[1]]
    require(
        seqs[0][: len(expected)] == expected[: len(seqs[0])],
        f"resuming gave seq {seqs[0][:3]}…, the walk's page 2 began {expected[:3]}…",
    )
    return f"resuming from page 1's cursor gives page 2 again ({len(expected)} changes)"


@check("src-json.caught-up")
async def caught_up(ctx: Context) -> str:
    _, cursors, ended = await walked(ctx)
    if not ended:
        raise NotApplicable("the bounded walk did not reach the end of the feed")
    again = await _page(ctx, cursors[-1])
    require(
        again.get("has_more") is False and not again.get("changes"),
        "polling from the caught-up cursor returned changes or has_more",
    )
    return "caught up; polling again from the last cursor gives nothing new"


@check("src-json.deletes-reported")
async def deletes(ctx: Context) -> str:
    pages, _, ended = await walked(ctx)
    found = [c for p in pages for c in p if c.get("op") == "delete"]
    if not found and ctx.option("expect_deletes") == "true":
        raise Failed("the source has deleted records (expect_deletes) but the feed reports no delete")
    if not found:
        raise NotApplicable(
            "no delete seen in the feed" + ("" if ended else " (bounded walk)") + "; set expect_deletes"
        )
    return f"{len(found)} deletes reported, e.g. {found[0].get('entity')} {found[0].get('id')}"


@check("src-json.bad-cursor")
async def bad_cursor(ctx: Context) -> str:
    answer = await ctx.get(_feed(ctx, "conformance-not-a-cursor"), headers=_key_headers(ctx), auth=False)
    require(answer.status == 400, f"HTTP {answer.status}, expected 400")
    return "400"


@check("src-json.entities")
async def entities(ctx: Context) -> str:
    pages, _, _ = await walked(ctx)
    seen = {str(c.get("entity")) for p in pages for c in p}
    unknown = sorted(seen - KNOWN_ENTITIES)
    require(not unknown, f"entities no mapping consumes: {unknown}")
    return f"entities: {', '.join(sorted(seen))}"


@check("src-json.nhs-number")
async def nhs_number(ctx: Context) -> str:
    pages, _, _ = await walked(ctx)
    numbers = [
        str((c.get("data") or {}).get("nhs_no"))
        for p in pages
        for c in p
        if c.get("entity") == "patient" and (c.get("data") or {}).get("nhs_no")
    ]
    bad = [n for n in numbers if not is_valid(n)]
    require(not bad, f"{len(bad)} NHS numbers fail the check digit: {bad[:10]}")
    return f"{len(numbers)} NHS numbers valid"
