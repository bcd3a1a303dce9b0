"""The socket ``bcconnect serve`` listens on gives every connection Nagle off (TCP_NODELAY).

With Nagle on, a response written in two parts (head, then body) waits for the client's delayed ACK: 40 ms for
every request on a kept-alive connection, whatever the request costs. asyncio turns Nagle off only on sockets
that name their protocol as TCP, so the guard accepts a real connection through asyncio on the socket
``serve`` makes and reads the option there.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from bcconnect.cli.serve_cmd import listen

pytestmark = pytest.mark.anyio


async def _nodelay_of_an_accepted_connection(listening: socket.socket) -> int:
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=listening)
    try:
        port = listening.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(accepted, 10)
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_serve_s_socket_gives_each_connection_nagle_off() -> None:
    assert await _nodelay_of_an_accepted_connection(listen("127.0.0.1", 0)) != 0


async def test_the_guard_catches_a_socket_that_leaves_its_protocol_unnamed() -> None:
    """The violation the guard exists for: a TCP socket made without naming the protocol keeps Nagle on."""
    bare = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    bare.bind(("127.0.0.1", 0))
    bare.listen(8)
    assert await _nodelay_of_an_accepted_connection(bare) == 0
