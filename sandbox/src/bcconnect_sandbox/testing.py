"""Test helpers shipped with the sandbox: a token, a page walker, and an MLLP receiver that records messages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import httpx

from bcconnect_sandbox.hl7_sender import END_BLOCK, START_BLOCK
from bcconnect_sandbox.world import World

MAX_PAGES = 10_000


async def bearer(client: httpx.AsyncClient, world: World, trust: str) -> dict[str, str]:
    """Headers with a fresh client-credentials token for ``trust`` (RL4 or RXK)."""
    cred = world.credentials(trust)
    response = await client.post(
        f"{world.base_url(trust)}/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": cred.client_id, "client_secret": cred.client_secret},
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def next_link(bundle: dict[str, Any]) -> str | None:
    """The bundle's ``next`` link, if any."""
    return next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)


async def walk(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every page from ``url`` on, following ``next`` links (raises on a non-200 or endless paging)."""
    pages: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        response = await client.get(url, headers=headers)
        response.raise_for_status()
        pages.append(response.json())
        link = next_link(pages[-1])
        if link is None:
            return pages
        url = link
    raise RuntimeError(f"paging from {url} did not end after {MAX_PAGES} pages")


def ack_for(message: str, code: str = "AA") -> bytes:
    """A framed ACK for ``message`` with ``MSA-1 = code``."""
    control = message.split("\r", 1)[0].split("|")[9] if message.count("|") > 9 else ""
    ack = f"MSH|^~\\&|BCCONNECT|BCC|CAREFLOW|RBK|20260101000000||ACK|A{control}|P|2.4\rMSA|{code}|{control}\r"
    return START_BLOCK + ack.encode() + END_BLOCK


@dataclass
class MllpReceiver:
    """A loopback MLLP listener; ``answer`` picks the reply per message (None: stay silent)."""

    port: int = 0
    received: list[str] = field(default_factory=list)
    answer: Callable[[str, int], str | None] = field(default=lambda message, n: "AA")


@asynccontextmanager
async def mllp_receiver(answer: Callable[[str, int], str | None] | None = None) -> AsyncIterator[MllpReceiver]:
    """Run an :class:`MllpReceiver` on 127.0.0.1 for the duration of the block."""
    receiver = MllpReceiver()
    if answer is not None:
        receiver.answer = answer
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    receiver.port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio, not Django

    async def handle(stream: anyio.abc.SocketStream) -> None:
        buffer = b""
        async with stream:
            while True:
                try:
                    buffer += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                while END_BLOCK in buffer:
                    raw, buffer = buffer.split(END_BLOCK, 1)
                    message = raw.lstrip(START_BLOCK).decode("utf-8")
                    receiver.received.append(message)
                    code = receiver.answer(message, len(receiver.received))
                    if code is not None:
                        await stream.send(ack_for(message, code))

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield receiver
        finally:
            tg.cancel_scope.cancel()
