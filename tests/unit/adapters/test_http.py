"""HTTP plumbing: retry classification, backoff, Retry-After, token refresh, breaker, cancellation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx
import orjson
import pytest

from bcconnect.adapters._auth import make_authenticator
from bcconnect.adapters._http import SourceHttp
from bcconnect.adapters._retry import backoff_delay
from bcconnect.config import AdapterConfig, BreakerSettings, SourceAuthSettings, SourceAuthType
from bcconnect.errors import CircuitOpen, SourceAuthError, SourceProtocolError, SourceUnavailable

Responder = Callable[[httpx.Request], httpx.Response]
URL = "https://rl4.test/fhir/R4/Patient"


def ok(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"resourceType": "Bundle"})


def status(code: int, **headers: str) -> Responder:
    return lambda _: httpx.Response(code, headers=headers, json={"resourceType": "OperationOutcome"})


def raises(exc: type[Exception]) -> Responder:
    def respond(request: httpx.Request) -> httpx.Response:
        raise exc("boom", request=request)  # type: ignore[call-arg]

    return respond


class FakeServer:
    """A token endpoint plus a data endpoint answering from a script (the last step repeats)."""

    def __init__(self, *script: Responder, secret: str = "s3cret") -> None:  # noqa: S107 - a fake
        self.script = list(script) or [ok]
        self.secret = secret
        self.tokens: list[str] = []
        self.revoked: set[str] = set()
        self.data_requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            form = dict(httpx.QueryParams(request.content.decode()))
            if form.get("client_secret") != self.secret or form.get("grant_type") != "client_credentials":
                return httpx.Response(401, json={"error": "invalid_client"})
            token = f"t{len(self.tokens) + 1}"
            self.tokens.append(token)
            return httpx.Response(200, json={"access_token": token, "token_type": "Bearer", "expires_in": 300})
        self.data_requests.append(request)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer t") and (auth[7:] not in self.tokens or auth[7:] in self.revoked):
            return httpx.Response(401, headers={"WWW-Authenticate": "Bearer"})
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return step(request)


def make_http(config: AdapterConfig, server: Any, fake_time: Any, environ: dict[str, str]) -> SourceHttp:
    runtime = fake_time.runtime()
    client = httpx.AsyncClient(transport=httpx.MockTransport(server))
    auth = make_authenticator(config, environ=environ, clock=runtime.monotonic, utcnow=runtime.utcnow)
    return SourceHttp(config, client=client, auth=auth, runtime=runtime)


@pytest.mark.anyio
@pytest.mark.parametrize("code", [429, 500, 502, 503, 504])
async def test_retryable_statuses_are_retried(code: int, make_config: Any, fake_time: Any, environ: Any) -> None:
    """429 and the transient 5xx statuses are retried; the call then succeeds."""
    server = FakeServer(status(code), status(code), ok)
    http = make_http(make_config(), server, fake_time, environ)
    body, _ = await http.get_json(URL)
    assert body == {"resourceType": "Bundle"}
    assert len(server.data_requests) == 3
    assert http.stats.retries == 2


@pytest.mark.anyio
@pytest.mark.parametrize("code", [400, 404, 410, 422])
async def test_client_errors_are_not_retried(code: int, make_config: Any, fake_time: Any, environ: Any) -> None:
    """A 4xx other than 401/403/429 is our mistake or a gone resource: no retry, a protocol error."""
    server = FakeServer(status(code), ok)
    http = make_http(make_config(), server, fake_time, environ)
    with pytest.raises(SourceProtocolError, match=f"HTTP {code}"):
        await http.get_json(URL)
    assert len(server.data_requests) == 1
    assert fake_time.delays == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError],
)
async def test_transport_errors_are_retried(
    error: type[Exception], make_config: Any, fake_time: Any, environ: Any
) -> None:
    """Connect errors, timeouts, resets and dropped connections are transient."""
    server = FakeServer(raises(error), ok)
    http = make_http(make_config(), server, fake_time, environ)
    await http.get_json(URL)
    assert len(server.data_requests) == 2


@pytest.mark.anyio
async def test_gives_up_with_source_unavailable_chained(make_config: Any, fake_time: Any, environ: Any) -> None:
    """After max_retries the error is SourceUnavailable, chained to what happened last."""
    server = FakeServer(raises(httpx.ConnectError))
    http = make_http(make_config(max_retries=3), server, fake_time, environ)
    with pytest.raises(SourceUnavailable, match="gave up after 4 attempts") as info:
        await http.get_json(URL)
    assert info.value.__cause__ is not None
    assert isinstance(info.value.__cause__.__cause__, httpx.ConnectError)
    assert len(server.data_requests) == 4


@pytest.mark.anyio
async def test_backoff_is_full_jitter_from_the_injected_rng(make_config: Any, fake_time: Any, environ: Any) -> None:
    """Delays are uniform in [0, min(cap, base·2^n)], drawn from the injected Random (deterministic)."""
    import random

    server = FakeServer(status(503), status(503), status(503), ok)
    http = make_http(make_config(backoff_base_seconds=1.0, backoff_max_seconds=3.0), server, fake_time, environ)
    await http.get_json(URL)
    rng = random.Random(7)
    expected = [backoff_delay(n, base=1.0, cap=3.0, rng=rng) for n in range(3)]
    assert fake_time.delays == expected
    assert all(d <= c for d, c in zip(fake_time.delays, [1.0, 2.0, 3.0], strict=True))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("12", 12.0),
        ("Sun, 22 Nov 2026 10:00:05 GMT", 5.0),
        ("600", 30.0),
        ("Sun, 22 Nov 2026 09:00:00 GMT", 0.0),
    ],
)
async def test_retry_after_both_forms_capped(
    header: str, expected: float, make_config: Any, fake_time: Any, environ: Any
) -> None:
    """Retry-After as seconds or an HTTP date (against the injected wall clock), capped at the max backoff."""
    server = FakeServer(status(429, **{"Retry-After": header}), ok)
    http = make_http(make_config(backoff_max_seconds=30.0), server, fake_time, environ)
    await http.get_json(URL)
    assert fake_time.delays == [expected]
    assert http.stats.throttled == 1


@pytest.mark.anyio
async def test_malformed_json_is_transient_and_counted(make_config: Any, fake_time: Any, environ: Any) -> None:
    """A truncated body is retried and counted."""
    truncated: Responder = lambda _: httpx.Response(200, content=b'{"resourceType": "Bun')  # noqa: E731
    server = FakeServer(truncated, ok)
    http = make_http(make_config(), server, fake_time, environ)
    await http.get_json(URL)
    assert http.stats.malformed_bodies == 1
    assert len(server.data_requests) == 2


@pytest.mark.anyio
async def test_token_is_cached_and_refreshed_on_expiry(make_config: Any, fake_time: Any, environ: Any) -> None:
    """One token serves many calls; after its lifetime (minus a margin) a new one is fetched."""
    server = FakeServer(ok)
    http = make_http(make_config(), server, fake_time, environ)
    for _ in range(3):
        await http.get_json(URL)
    assert server.tokens == ["t1"]
    fake_time.now += 300
    await http.get_json(URL)
    assert server.tokens == ["t1", "t2"]
    assert server.data_requests[-1].headers["Authorization"] == "Bearer t2"


@pytest.mark.anyio
async def test_401_refreshes_token_once_then_succeeds(make_config: Any, fake_time: Any, environ: Any) -> None:
    """A revoked token gives 401; one fresh token is fetched and the call retried."""
    server = FakeServer(ok)
    http = make_http(make_config(), server, fake_time, environ)
    await http.get_json(URL)
    server.revoked.add("t1")
    await http.get_json(URL)
    assert server.tokens == ["t1", "t2"]
    assert http.stats.auth_refreshes == 1


@pytest.mark.anyio
async def test_401_after_refresh_is_auth_error(make_config: Any, fake_time: Any, environ: Any) -> None:
    """When the fresh token is refused too, the call fails with SourceAuthError (no endless refresh)."""
    server = FakeServer(status(401))
    http = make_http(make_config(), server, fake_time, environ)
    with pytest.raises(SourceAuthError, match="HTTP 401"):
        await http.get_json(URL)
    assert server.tokens == ["t1", "t2"]
    assert len(server.data_requests) == 2


@pytest.mark.anyio
async def test_wrong_client_secret_is_auth_error(make_config: Any, fake_time: Any, environ: Any) -> None:
    """The token endpoint's refusal is SourceAuthError, not retried."""
    server = FakeServer(ok, secret="other")
    http = make_http(make_config(), server, fake_time, environ)
    with pytest.raises(SourceAuthError, match="refused the client credentials"):
        await http.get_json(URL)
    assert server.data_requests == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        (SourceAuthSettings(type=SourceAuthType.API_KEY, api_key_env="RNA_KEY"), "X-API-Key", "key-1"),
        (
            SourceAuthSettings(type=SourceAuthType.BEARER, token_env="TOKEN"),
            "Authorization",
            "Bearer static-token",
        ),
    ],
)
async def test_static_credentials(
    auth: SourceAuthSettings, header: str, value: str, make_config: Any, fake_time: Any, environ: Any
) -> None:
    """API key and static bearer are sent as headers; a 401 with them is an auth error at once."""
    server = FakeServer(ok, status(401))
    http = make_http(make_config(auth=auth), server, fake_time, environ)
    await http.get_json(URL)
    assert server.data_requests[0].headers[header] == value
    with pytest.raises(SourceAuthError):
        await http.get_json(URL)
    assert len(server.data_requests) == 2


@pytest.mark.anyio
async def test_breaker_opens_and_refuses_without_calling(make_config: Any, fake_time: Any, environ: Any) -> None:
    """After N consecutive failures the breaker opens: the next call fails fast with CircuitOpen."""
    config = make_config(max_retries=10, breaker=BreakerSettings(failure_threshold=3, reset_seconds=60.0))
    server = FakeServer(status(503))
    http = make_http(config, server, fake_time, environ)
    with pytest.raises(CircuitOpen, match="3 consecutive failures"):
        await http.get_json(URL)
    assert len(server.data_requests) == 3
    with pytest.raises(CircuitOpen):
        await http.get_json(URL)
    assert len(server.data_requests) == 3


@pytest.mark.anyio
async def test_throttling_does_not_open_the_breaker(make_config: Any, fake_time: Any, environ: Any) -> None:
    """429 says busy, not broken: it is retried but never trips the breaker."""
    config = make_config(max_retries=5, breaker=BreakerSettings(failure_threshold=2, reset_seconds=60.0))
    server = FakeServer(status(429), status(429), status(429), ok)
    http = make_http(config, server, fake_time, environ)
    await http.get_json(URL)
    assert http.breaker.state.value == "closed"


@pytest.mark.anyio
async def test_cancellation_during_backoff_is_reraised(make_config: Any, environ: Any) -> None:
    """Cancelling a call while it waits to retry cancels it; nothing swallows the cancellation."""
    import random

    from bcconnect.adapters import Runtime

    waiting = anyio.Event()

    async def sleep(_: float) -> None:
        waiting.set()
        await anyio.sleep_forever()

    server = FakeServer(status(503))
    client = httpx.AsyncClient(transport=httpx.MockTransport(server))
    config = make_config()
    runtime = Runtime(rng=random.Random(1), sleep=sleep)
    http = SourceHttp(config, client=client, auth=make_authenticator(config, environ=environ), runtime=runtime)
    outcome: list[str] = []

    async def call() -> None:
        try:
            await http.get_json(URL)
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise
        outcome.append("returned")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await waiting.wait()
            tg.cancel_scope.cancel()
    assert outcome == ["cancelled"]
    assert len(server.data_requests) == 1


@pytest.mark.anyio
async def test_concurrency_is_limited_per_source(make_config: Any, fake_time: Any, environ: Any) -> None:
    """No more than fetch.concurrency requests are in flight at once."""
    in_flight = 0
    peak = 0
    release = anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        if request.url.path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        in_flight += 1
        peak = max(peak, in_flight)
        if peak >= 2:
            release.set()
        await release.wait()
        in_flight -= 1
        return httpx.Response(200, content=orjson.dumps({"ok": True}))

    config = make_config(concurrency=2)
    runtime = fake_time.runtime()
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    http = SourceHttp(config, client=client, auth=make_authenticator(config, environ=environ), runtime=runtime)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(http.get_json, URL)
    assert peak == 2


def test_next_link_to_another_origin_is_refused(make_config: Any, fake_time: Any, environ: Any) -> None:
    """Credentials never follow a link to another host."""
    http = make_http(make_config(), FakeServer(ok), fake_time, environ)
    http.check_same_origin("https://rl4.test/fhir/R4/Patient?page=2")
    with pytest.raises(SourceProtocolError, match="another origin"):
        http.check_same_origin("https://evil.test/fhir/R4/Patient?page=2")


@pytest.mark.anyio
async def test_a_server_that_never_answers_is_timed_out_and_retried(
    make_config: Any, fake_time: Any, environ: Any
) -> None:
    """An answer that never comes is cut off by the call's deadline and counts as a transient fault."""
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        if request.url.path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        calls += 1
        if calls == 1:
            await anyio.sleep_forever()
        return httpx.Response(200, json={"ok": True})

    config = make_config(timeout_seconds=0.05)
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    auth = make_authenticator(config, environ=environ)
    http = SourceHttp(config, client=client, auth=auth, runtime=fake_time.runtime())
    with anyio.fail_after(5):
        body, _ = await http.get_json(URL)
    assert body == {"ok": True}
    assert calls == 2
    assert http.stats.retries == 1
