"""``bcconnect serve``: the read-only FHIR endpoint over the configured store, authenticated and audited."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import replace

import anyio

from bcconnect.api import make_server, security_hooks
from bcconnect.app import GatePageGuard, PagesApp, standard_pages
from bcconnect.cli.common import SubParsers, settings_from, until_stopped
from bcconnect.config import AuthMode, Settings, load_adapters
from bcconnect.errors import UsageError
from bcconnect.logging import get_logger
from bcconnect.security import SecurityGate
from bcconnect.store import Store, open_store
from bcconnect.view import View

log = get_logger("bcconnect.serve")

#: where the web pages are served, beside the FHIR endpoint
PAGES_PREFIX = "/app"


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add ``serve``."""
    p = sub.add_parser("serve", help="serve the read-only FHIR endpoint over the configured store")
    p.add_argument("--host", help="bind address (default: [api] host)")
    p.add_argument("--port", type=int, help="port (default: [api] port)")
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without authentication (development only; logged as a warning on every start)",
    )
    p.set_defaults(handler=_serve)


async def serve_api(
    settings: Settings,
    *,
    store: Store,
    allow_no_auth: bool = False,
    on_ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve the endpoint over ``store`` until cancelled; ``on_ready`` runs once the socket accepts."""
    if settings.auth.mode is AuthMode.NONE and not allow_no_auth:
        raise UsageError("auth mode is 'none' in the configuration: start with --no-auth to confirm it")
    gate = SecurityGate.from_settings(settings, store, allow_no_auth=allow_no_auth)
    authenticate, on_complete = security_hooks(gate)
    adapters_dir = settings.resolve(settings.paths.adapters_dir)
    adapters = load_adapters(adapters_dir) if adapters_dir.is_dir() else []
    view = View(
        store,
        default_count=settings.api.default_count,
        max_count=settings.api.max_count,
        sensitivity=gate.policy,
        source_ods={a.name: a.ods_code for a in adapters},
        staleness_limits={a.name: a.staleness_limit_seconds for a in adapters},
    )
    pages = PagesApp(standard_pages(view), guard=GatePageGuard(gate, prefix=PAGES_PREFIX), prefix=PAGES_PREFIX)
    server = make_server(
        settings, view=view, authenticate=authenticate, on_request_complete=on_complete, mounts={PAGES_PREFIX: pages}
    )
    async with anyio.create_task_group() as group:

        async def run_server() -> None:
            # shielded: a cancelled caller asks uvicorn to stop (should_exit) and it closes its sockets itself
            with anyio.CancelScope(shield=True):
                await server.serve()
            group.cancel_scope.cancel()  # the server stopped on its own (a signal): nothing left to wait for

        group.start_soon(run_server)
        try:
            while not server.started:
                if server.should_exit:
                    return
                await anyio.sleep(0.02)
            log.info("api_listening", host=settings.api.host, port=settings.api.port, auth=settings.auth.mode.value)
            if on_ready is not None:
                await on_ready()
            await anyio.sleep_forever()
        finally:
            server.should_exit = True


def _serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    api = settings.api
    settings = replace(settings, api=replace(api, host=args.host or api.host, port=args.port or api.port))
    if args.no_auth:
        settings = replace(settings, auth=replace(settings.auth, mode=AuthMode.NONE))

    async def go() -> None:
        async with open_store(settings.store_url()) as store:

            async def announce() -> None:
                root = f"http://{settings.api.host}:{settings.api.port}"
                print(f"FHIR endpoint: {root}{settings.api.base_path}")
                print(f"web pages: {root}{PAGES_PREFIX}/")

            await serve_api(settings, store=store, allow_no_auth=args.no_auth, on_ready=announce)

    anyio.run(until_stopped, go)  # returns when the server stops or SIGINT/SIGTERM arrives
    return 0
