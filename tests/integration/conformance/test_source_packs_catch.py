"""The source packs catch what they claim: a sandbox behind a proxy that breaks one rule fails exactly that check.

RL4 (FHIR) and RNA (JSON feed) pass their packs; each mutation below injects one deviation a trust's system
could have, and the run must report that check, alone. The HL7 pack is proven with a scripted MLLP sender
that gets one thing wrong at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.abc
import orjson
import pytest

from bcconnect.conformance import Outcome, Report, console_summary, get_pack, run_pack
from bcconnect_sandbox import SandboxSettings, running_sandboxes
from support.loopback import BreakingProxy, Exchange, Mutation, breaking_proxy, free_port, wait_for_listener

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
OO = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "throttled", "diagnostics": "slow"}]}
RETIRED = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def _not_passed(report: Report) -> set[str]:
    return {r.check.id for r in report.results if r.outcome in (Outcome.FAIL, Outcome.ERROR)}


def _on_json(when: Callable[[Exchange], bool], edit: Callable[[Exchange, Any], None]) -> Callable[[Exchange], None]:
    def after(ex: Exchange) -> None:
        if when(ex) and ex.status == 200 and ex.response_body:
            body = ex.json()
            edit(ex, body)
            ex.set_json(body)

    return after


def _answer(ex: Exchange, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    ex.status = status
    ex.response_body = orjson.dumps(body)
    ex.response_headers = {"content-type": "application/json", **(headers or {})}


def _set(ex: Exchange, name: str, value: str) -> None:
    ex.query = [(k, v) for k, v in ex.query if k != name] + [(name, value)]


# --- source-fhir -----------------------------------------------------------------------------------------
STATE: dict[str, Any] = {}


def _remember_token(ex: Exchange) -> None:
    if ex.path.endswith("/oauth2/token") and ex.status == 200:
        STATE["token"] = ex.json()["access_token"]


def _chain(*steps: Callable[[Exchange], None]) -> Callable[[Exchange], None]:
    def run(ex: Exchange) -> None:
        for step in steps:
            step(ex)

    return run


def _ukcore_sample(ex: Exchange) -> bool:
    return ex.path.endswith("/Patient") and ex.query == [("_count", "20")]


def _first(edit: Callable[[dict[str, Any]], None]) -> Callable[[Exchange, Any], None]:
    def change(ex: Exchange, bundle: Any) -> None:
        edit(bundle["entry"][0]["resource"])

    return change


def _nhs(resource: dict[str, Any]) -> dict[str, Any]:
    return next(i for i in resource["identifier"] if i.get("system") == "https://fhir.nhs.uk/Id/nhs-number")


def _throttle(with_retry_after: bool) -> Callable[[Exchange], None]:
    def before(ex: Exchange) -> None:
        if ex.path.endswith("/Patient") and ex.query == [("_count", "1")] and ex.headers.get("authorization"):
            STATE["burst"] = STATE.get("burst", 0) + 1
            if STATE["burst"] > 20:
                headers = {"retry-after": "1"} if with_retry_after else {}
                _answer(ex, 429, OO, {"content-type": "application/fhir+json", **headers})

    return before


def _lenient_auth(ex: Exchange) -> None:
    if "/fhir/R4/" in ex.path and not ex.path.endswith("/metadata") and "authorization" not in ex.headers:
        ex.headers["authorization"] = f"Bearer {STATE.get('token', '')}"


FHIR_BREAKS: dict[str, Mutation] = {
    "src-fhir.capability": Mutation(
        "fhirVersion 3.0.2",
        after=_on_json(lambda ex: ex.path.endswith("/metadata"), lambda ex, c: c.update(fhirVersion="3.0.2")),
    ),
    "src-fhir.oauth": Mutation(
        "a wrong secret gets a token",
        before=lambda ex: (
            _answer(ex, 200, {"access_token": "x", "token_type": "Bearer"})
            if b"conformance-wrong-secret" in ex.body
            else None
        ),
    ),
    "src-fhir.auth-required": Mutation("no token needed", before=_lenient_auth),
    "src-fhir.paging": Mutation(
        "relative next links",
        after=_on_json(
            lambda ex: ex.param("_sort") == "_lastUpdated",
            lambda ex, b: [
                x.update(url=x["url"].split("/fhir/R4/", 1)[1]) for x in b.get("link", []) if x["relation"] == "next"
            ],
        ),
    ),
    "src-fhir.versions": Mutation(
        "a Patient without versionId",
        after=_on_json(
            lambda ex: (
                ex.path.endswith("/Patient")
                and ex.param("_sort") == "_lastUpdated"
                and ex.param("_lastUpdated") is None
            ),
            lambda ex, b: b["entry"][0]["resource"]["meta"].pop("versionId", None) if b.get("entry") else None,
        ),
    ),
    "src-fhir.lastupdated": Mutation(
        "gt acts as ge",
        before=lambda ex: (
            _set(ex, "_lastUpdated", "ge" + (ex.param("_lastUpdated") or "")[2:])
            if (ex.param("_lastUpdated") or "").startswith("gt")
            else None
        ),
    ),
    "src-fhir.history-deletes": Mutation(
        "a deleted Patient still reads",
        after=lambda ex: setattr(ex, "status", 200) if ex.status == 410 else None,
    ),
    "src-fhir.stable-ids": Mutation(
        "read answers another id",
        after=_on_json(
            lambda ex: "/Patient/" in ex.path and "_history" not in ex.path, lambda ex, r: r.update(id=r["id"] + "x")
        ),
    ),
    "src-fhir.rate-limit": Mutation("429 without Retry-After", before=_throttle(with_retry_after=False)),
    "src-fhir.ukcore.identifiers": Mutation(
        "identifier without system", after=_on_json(_ukcore_sample, _first(lambda r: r["identifier"][-1].pop("system")))
    ),
    "src-fhir.ukcore.nhs-number": Mutation(
        "bad check digit", after=_on_json(_ukcore_sample, _first(lambda r: _nhs(r).update(value="9990000111")))
    ),
    "src-fhir.ukcore.nhs-verification": Mutation(
        "no verification status", after=_on_json(_ukcore_sample, _first(lambda r: _nhs(r).pop("extension")))
    ),
    "src-fhir.ukcore.verification-current-codes": Mutation(
        "retired code system",
        after=_on_json(
            _ukcore_sample,
            _first(
                lambda r: _nhs(r)["extension"][0]["valueCodeableConcept"]["coding"][0].update(
                    system=RETIRED, code="number-present-and-verified"
                )
            ),
        ),
    ),
    "src-fhir.ukcore.required-elements": Mutation(
        "Encounter without status",
        after=_on_json(
            lambda ex: ex.path.endswith("/Encounter") and ex.query == [("_count", "20")],
            _first(lambda r: r.pop("status")),
        ),
    ),
    "src-fhir.ukcore.profile-claims": Mutation(
        "Patient claims the Encounter profile",
        after=_on_json(
            _ukcore_sample,
            _first(
                lambda r: r.setdefault("meta", {}).update(
                    profile=["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Encounter"]
                )
            ),
        ),
    ),
}
#: RL4 does not throttle, so the 429 check is n/a there; this repair throttles properly and the check passes
FHIR_REPAIRS = {"src-fhir.rate-limit": Mutation("429 with Retry-After", before=_throttle(with_retry_after=True))}


@pytest.fixture(scope="module")
async def rl4_proxy() -> AsyncIterator[tuple[BreakingProxy, dict[str, str]]]:
    async with running_sandboxes(SandboxSettings(density=0, persons=40, seed=3, trusts=("RL4",))) as world:
        await world.advance(days=20)
        cred = world.credentials("RL4")
        async with breaking_proxy(world.base_url("RL4")) as proxy:
            options = {
                "client_id": cred.client_id or "",
                "client_secret": cred.client_secret or "",
                "token_url": f"{proxy.public}/oauth2/token",
                "types": "Patient,Encounter,Observation",
                "rate": "0",
            }
            yield proxy, options


async def _fhir_run(proxy: BreakingProxy, options: dict[str, str], mutation: Mutation | None) -> Report:
    STATE.clear()
    proxy.mutation = Mutation(
        mutation.name if mutation else "faithful",
        before=mutation.before if mutation else None,
        after=_chain(_remember_token, *([mutation.after] if mutation and mutation.after else [])),  # type: ignore[list-item]
    )
    try:
        return await run_pack("source-fhir", f"{proxy.public}/fhir/R4", options)
    finally:
        proxy.mutation = None


def test_every_source_check_is_proven() -> None:
    """Every check of the three source packs has a violating target here (or, for n/a baselines, a repair)."""
    proven = set(FHIR_BREAKS) | set(JSON_BREAKS) | set(HL7_BREAKS)
    for name in ("source-fhir", "source-json", "source-hl7"):
        missing = {c.id for c in get_pack(name).checks} - proven
        assert not missing, f"{name}: checks without a violating target: {sorted(missing)}"


@pytest.fixture(scope="module")
async def rl4_baseline(rl4_proxy: tuple[BreakingProxy, dict[str, str]]) -> set[str]:
    """What the faithful proxy fails (nothing: RL4 passes its pack)."""
    return _not_passed(await _fhir_run(*rl4_proxy, None))


@pytest.mark.parametrize("check_id", sorted(FHIR_BREAKS))
async def test_fhir_violation_fails_exactly_its_check(
    check_id: str, rl4_proxy: tuple[BreakingProxy, dict[str, str]], rl4_baseline: set[str]
) -> None:
    proxy, options = rl4_proxy
    assert rl4_baseline == set()
    report = await _fhir_run(proxy, options, FHIR_BREAKS[check_id])
    assert _not_passed(report) == {check_id}, console_summary(report)


async def test_fhir_throttling_done_right_passes(rl4_proxy: tuple[BreakingProxy, dict[str, str]]) -> None:
    proxy, options = rl4_proxy
    report = await _fhir_run(proxy, options, FHIR_REPAIRS["src-fhir.rate-limit"])
    outcomes = {r.check.id: r.outcome for r in report.results}
    assert outcomes["src-fhir.rate-limit"] is Outcome.PASS, console_summary(report)
    assert _not_passed(report) == set(), console_summary(report)


# --- source-json -----------------------------------------------------------------------------------------
def _feed(ex: Exchange) -> bool:
    return ex.path.endswith("/api/v2/changes")


def _remember_key(ex: Exchange) -> None:
    key = ex.headers.get("x-api-key")
    if key and key != "conformance-wrong":
        STATE["key"] = key


def _wrong_key_accepted(ex: Exchange) -> None:
    _remember_key(ex)
    if ex.headers.get("x-api-key") == "conformance-wrong":
        ex.headers["x-api-key"] = STATE.get("key", "")


def _first_page(ex: Exchange) -> bool:
    return _feed(ex) and ex.param("cursor") is None and ex.param("limit") != "1"


def _resumed_differently(ex: Exchange, body: Any) -> None:
    cursor = ex.param("cursor")
    seen = STATE.setdefault("cursors", {})
    seen[cursor] = seen.get(cursor, 0) + 1
    if cursor is not None and seen[cursor] > 1 and body.get("changes"):
        body["changes"] = body["changes"][1:]


def _not_caught_up(ex: Exchange, body: Any) -> None:
    finals = STATE.setdefault("finals", set())
    if ex.param("cursor") in finals:
        body["has_more"] = True
    if body.get("has_more") is False:
        finals.add(body.get("next_cursor"))


def _first_patient(edit: Callable[[dict[str, Any]], None]) -> Callable[[Exchange, Any], None]:
    def change(ex: Exchange, body: Any) -> None:
        for item in body.get("changes", []):
            if item.get("entity") == "patient" and item.get("op") == "upsert" and item.get("data", {}).get("nhs_no"):
                edit(item)
                return

    return change


JSON_BREAKS: dict[str, Mutation] = {
    "src-json.auth": Mutation("a wrong key accepted", before=_wrong_key_accepted),
    "src-json.change-shape": Mutation(
        "an upsert without data", after=_on_json(_first_page, lambda ex, b: b["changes"][0].pop("data", None))
    ),
    "src-json.cursor-monotonic": Mutation(
        "seq falls",
        after=_on_json(_first_page, lambda ex, b: b["changes"].__setitem__(slice(0, 2), b["changes"][1::-1])),
    ),
    "src-json.cursor-resumable": Mutation(
        "a cursor resumes elsewhere the second time", after=_on_json(_feed, _resumed_differently)
    ),
    "src-json.caught-up": Mutation("never caught up", after=_on_json(_feed, _not_caught_up)),
    "src-json.deletes-reported": Mutation(
        "deletes left out",
        after=_on_json(_feed, lambda ex, b: b.update(changes=[c for c in b["changes"] if c["op"] != "delete"])),
    ),
    "src-json.bad-cursor": Mutation(
        "a bad cursor answered",
        before=lambda ex: (
            _answer(ex, 200, {"changes": [], "next_cursor": "x", "has_more": False})
            if ex.param("cursor") == "conformance-not-a-cursor"
            else None
        ),
    ),
    "src-json.entities": Mutation(
        "an unknown entity", after=_on_json(_first_page, lambda ex, b: b["changes"][0].update(entity="widget"))
    ),
    "src-json.nhs-number": Mutation(
        "a bad NHS number", after=_on_json(_first_page, _first_patient(lambda c: c["data"].update(nhs_no="9990000111")))
    ),
}


@pytest.fixture(scope="module")
async def rna_proxy() -> AsyncIterator[tuple[BreakingProxy, dict[str, str]]]:
    async with running_sandboxes(SandboxSettings(density=0, persons=40, seed=3, trusts=("RNA",))) as world:
        await world.advance(days=30)
        async with breaking_proxy(world.base_url("RNA")) as proxy:
            options = {
                "api_key": world.credentials("RNA").api_key or "",
                "page_size": "25",
                "expect_deletes": "true",
                "rate": "0",
            }
            yield proxy, options


@pytest.mark.parametrize("check_id", sorted(JSON_BREAKS))
async def test_json_violation_fails_exactly_its_check(
    check_id: str, rna_proxy: tuple[BreakingProxy, dict[str, str]]
) -> None:
    proxy, options = rna_proxy
    STATE.clear()
    assert _not_passed(await run_pack("source-json", proxy.public, options)) == set()
    STATE.clear()
    STATE["key"] = options["api_key"]
    proxy.mutation = JSON_BREAKS[check_id]
    try:
        report = await run_pack("source-json", proxy.public, options)
    finally:
        proxy.mutation = None
    assert _not_passed(report) == {check_id}, console_summary(report)


# --- source-hl7 ------------------------------------------------------------------------------------------
def _message(n: int, event: str = "A28", *, nhs: str = "9990000115", extra: str = "") -> str:
    kind, structure = ("ORU^R01^ORU_R01", "") if event == "R01" else (f"ADT^{event}^ADT_A05", "")
    del structure
    segments = [
        f"MSH|^~\\&|CAREFLOW|RBK|BCCONNECT|BCC|20261101120000||{kind}|RBK00000000000{n}|P|2.4|||AL|NE||UNICODE UTF-8",
        f"PID|1||MRN{n}^^^RBK^MR~{nhs}^^^NHS^NH||SMITH^Ann||19700315|F",
    ]
    if event == "R01":
        segments += ["OBR|1||RES1|58410-2^FBC^LN", "OBX|1|NM|718-7^Haemoglobin^LN||135|g/L|||||F"]
    if event in ("A01", "A04"):
        segments.append("PV1|1|I|WARD1||||||||||||||||V123")
    return "\r".join(segments) + "\r" + extra


GOOD = [_message(1), _message(2, "R01"), _message(3, "A04"), _message(4), _message(5, "A01"), _message(6)]


async def _connect_when_listening(port: int, *, seconds: float = 15.0) -> anyio.abc.SocketStream:
    """Connect once the runner listens (it starts listening in its first check, later on a loaded machine)."""
    with anyio.fail_after(seconds):
        while True:
            try:
                return await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.1)


async def _send(
    port: int, messages: list[str], *, frame: Callable[[str], bytes], resend: bool = True, after_ae: str = "move on"
) -> None:
    """A scripted sender: one connection, waits for each ACK, resends on silence, moves on (or not) after AE."""
    stream = await _connect_when_listening(port)
    async with stream:
        for message in messages:
            for _ in range(3):
                await stream.send(frame(message))
                try:
                    with anyio.fail_after(0.5):
                        ack = b""
                        while b"\x1c\r" not in ack:
                            ack += await stream.receive()
                except TimeoutError:
                    if not resend:
                        break
                    continue
                if b"MSA|AE" in ack and after_ae == "resend":
                    await stream.send(frame(message))
                    with anyio.move_on_after(0.5):
                        await stream.receive()
                break


def _mllp(message: str) -> bytes:
    return b"\x0b" + message.encode() + b"\x1c\r"


HL7_BREAKS: dict[str, dict[str, Any]] = {
    "src-hl7.framing": {"frame": lambda m: b"XX" + _mllp(m)},
    "src-hl7.segments": {"messages": [GOOD[0] + "\n", *GOOD[1:]]},
    "src-hl7.msh": {"messages": [GOOD[0].replace("|P|2.4|", "|P|3.0|"), *GOOD[1:]]},
    "src-hl7.control-ids": {"messages": [*GOOD, GOOD[5].replace("SMITH", "JONES")]},
    "src-hl7.message-types": {"messages": [*GOOD, _message(7).replace("ADT^A28^ADT_A05", "SIU^S12^SIU_S12")]},
    "src-hl7.pid": {"messages": [*GOOD, _message(7, nhs="9990000111")]},
    "src-hl7.required-segments": {"messages": [*GOOD, _message(7, "A01").replace("PV1|", "ZV1|")]},
    "src-hl7.resend-without-ack": {"resend": False},
    "src-hl7.move-on-after-ae": {"after_ae": "resend"},
    "src-hl7.encoding": {"messages": [GOOD[0].replace("|UNICODE UTF-8", "|"), *GOOD[1:]]},
}


async def _hl7_run(**variant: Any) -> Report:
    port = free_port()
    result: list[Report] = []

    async def runner() -> None:
        result.append(
            await run_pack("source-hl7", f"mllp://127.0.0.1:{port}", {"messages": "40", "wait": "10", "idle": "1.5"})
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(runner)
        await wait_for_listener(port)
        await _send(
            port,
            variant.get("messages", GOOD),
            frame=variant.get("frame", _mllp),
            resend=variant.get("resend", True),
            after_ae=variant.get("after_ae", "move on"),
        )
    return result[0]


async def test_the_scripted_sender_passes_the_hl7_pack() -> None:
    report = await _hl7_run()
    assert _not_passed(report) == set(), console_summary(report)


@pytest.mark.parametrize("check_id", sorted(HL7_BREAKS))
async def test_hl7_violation_fails_exactly_its_check(check_id: str) -> None:
    report = await _hl7_run(**HL7_BREAKS[check_id])
    assert _not_passed(report) == {check_id}, console_summary(report)
