"""Run the endpoint under uvicorn (for the CLI and tests)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import uvicorn

from bcconnect.api._app import (
    AsgiApp,
    Authenticate,
    FhirApp,
    RequestCompleteHook,
    create_app,
    ignore_completion,
    open_access,
)
from bcconnect.bulk import BulkExports
from bcconnect.config import Settings
from bcconnect.view import View


def make_server(
    settings: Settings,
    *,
    view: View | None = None,
    authenticate: Authenticate = open_access,
    on_request_complete: RequestCompleteHook = ignore_completion,
    page_key: bytes | None = None,
    mounts: Mapping[str, AsgiApp] | None = None,
    wrap: Callable[[FhirApp], Any] | None = None,
    bulk: BulkExports | None = None,
) -> uvicorn.Server:
    """A uvicorn server for the app on ``settings.api.host:port`` (not started).

    ``wrap`` puts an outer ASGI layer around the FHIR app (the operations layer: ids, metrics, probes).
    """
    app = create_app(
        settings,
        view,
        authenticate=authenticate,
        on_request_complete=on_request_complete,
        page_key=page_key,
        mounts=mounts,
        bulk=bulk,
    )
    config = uvicorn.Config(
        wrap(app) if wrap is not None else app,
        host=settings.api.host,
        port=settings.api.port,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
    )
    return uvicorn.Server(config)


async def serve(
    settings: Settings,
    *,
    view: View | None = None,
    authenticate: Authenticate = open_access,
    on_request_complete: RequestCompleteHook = ignore_completion,
    page_key: bytes | None = None,
    sockets: Sequence[socket.socket] | None = None,
) -> None:
    """Serve until cancelled or signalled (uvicorn handles SIGINT/SIGTERM on the main thread)."""
    server = make_server(
        settings, view=view, authenticate=authenticate, on_request_complete=on_request_complete, page_key=page_key
    )
    await server.serve(sockets=list(sockets) if sockets else None)
