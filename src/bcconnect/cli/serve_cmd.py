"""``bcconnect serve``: the read-only FHIR endpoint over the configured store, authenticated and audited."""

from __future__ import annotations

import argparse
import gc
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import replace

import anyio

from bcconnect.api import FhirApp, make_server, security_hooks
from bcconnect.app import GatePageGuard, PagesApp, ops_pages, standard_pages
from bcconnect.bulk import BulkExports
from bcconnect.cli.common import SubParsers, settings_from, until_stopped
from bcconnect.cli.security_cmd import configured_sink, ship_once
from bcconnect.config import AuthMode, Settings, load_adapters
from bcconnect.errors import StoreError, UsageError
from bcconnect.logging import get_logger
from bcconnect.ops import OpsApp, OpsService, readiness_checks, replica_check, replica_scrape, store_scrape
from bcconnect.security import AuditAnchor, SecurityGate, Sink
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
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="API processes sharing the port (default 1); stateless, they share the store, rate limits and metrics",
    )
    # a worker started by `serve --workers N`: the listening sockets it inherits, as file descriptors
    p.add_argument("--inherit-fds", default=None, help=argparse.SUPPRESS)
    p.set_defaults(handler=_serve)


async def serve_api(
    settings: Settings,
    *,
    store: Store,
    read_store: Store | None = None,
    allow_no_auth: bool = False,
    on_ready: Callable[[], Awaitable[None]] | None = None,
    listening: Sequence[socket.socket] = (),
) -> None:
    """Serve the endpoint over ``store`` until cancelled; ``on_ready`` runs once the socket accepts.

    ``read_store``: a streaming replica of ``store`` (``[store] read_url``) the view reads from — every FHIR
    interaction and page; the security gate's writes (audit trail, rate limits) and the operations facts stay on
    ``store``. Its lag is folded into the freshness the view reports, ``/readyz`` and ``/metrics``.

    ``listening``: sockets bound beforehand by :func:`listen_all` (closed here on exit); bound here if empty.
    """
    if settings.auth.mode is AuthMode.NONE and not allow_no_auth:
        raise UsageError("auth mode is 'none' in the configuration: start with --no-auth to confirm it")
    gate = SecurityGate.from_settings(settings, store, allow_no_auth=allow_no_auth)
    sink = configured_sink(settings)  # the audit log service (a missing credential stops the start, exit 2)
    authenticate, on_complete = security_hooks(gate)
    adapters_dir = settings.resolve(settings.paths.adapters_dir)
    adapters = load_adapters(adapters_dir) if adapters_dir.is_dir() else []

    def view_over(over: Store) -> View:
        return View(
            over,
            default_count=settings.api.default_count,
            max_count=settings.api.max_count,
            sensitivity=gate.policy,
            source_ods={a.name: a.ods_code for a in adapters},
            staleness_limits={a.name: a.staleness_limit_seconds for a in adapters},
        )

    view = view_over(read_store or store)
    # the view on the primary, for services that write beside their reads (Bulk Data jobs are rows in the store;
    # a replica is read-only)
    primary_view = view if read_store is None else view_over(store)
    checks = readiness_checks(store, keys_ready=gate.authenticator.keys_ready)
    if read_store is not None:
        checks.append(replica_check(read_store, max_lag_seconds=settings.store.read_max_lag_seconds))
    scrape = store_scrape(
        store,
        ods_codes={a.name: a.ods_code for a in adapters},
        staleness_limits={a.name: a.staleness_limit_seconds for a in adapters},
        extra=replica_scrape(read_store) if read_store is not None else None,
    )

    def wrap(app: FhirApp) -> OpsApp:
        return OpsApp(app, metrics_settings=settings.metrics, checks=checks, scrape=scrape)

    operations = OpsService(
        store,
        ods_codes={a.name: a.ods_code for a in adapters},
        staleness_limits={a.name: a.staleness_limit_seconds for a in adapters},
    )
    pages = PagesApp(
        [*standard_pages(view), *ops_pages(operations)],
        guard=GatePageGuard(gate, prefix=PAGES_PREFIX),
        prefix=PAGES_PREFIX,
    )
    # Bulk Data exports: kicked off here, worked by the task below (jobs in the store resume after a restart)
    bulk = BulkExports.from_settings(settings, primary_view)
    server = make_server(
        settings,
        view=view,
        bulk=bulk,
        authenticate=authenticate,
        on_request_complete=on_complete,
        mounts={PAGES_PREFIX: pages},
        wrap=wrap,
        page_key=page_signing_key(),
    )
    sockets = list(listening) if listening else listen_all(settings)
    try:
        async with anyio.create_task_group() as group:

            async def run_server() -> None:
                # shielded: a cancelled caller asks uvicorn to stop (should_exit) and it closes its sockets itself
                with anyio.CancelScope(shield=True):
                    await server.serve(sockets=sockets)
                group.cancel_scope.cancel()  # the server stopped on its own (a signal): nothing left to wait for

            group.start_soon(run_server)
            group.start_soon(bulk.run_worker)
            if sink is not None and gate.anchor is not None and settings.audit.ship_interval_seconds > 0:
                group.start_soon(_ship_audit_segments, settings, store, gate.anchor, sink)
            try:
                while not server.started:
                    if server.should_exit:
                        return
                    await anyio.sleep(0.02)
                log.info("api_listening", host=settings.api.host, port=settings.api.port, auth=settings.auth.mode.value)
                freeze_start_up_heap()
                if on_ready is not None:
                    await on_ready()
                await anyio.sleep_forever()
            finally:
                server.should_exit = True
    finally:
        gc.unfreeze()  # a process that served and goes on (tests, the demo) collects its start-up objects again
        for sock in sockets:
            sock.close()
        # this process's audit segment ends with it: a final signed checkpoint, and it can be shipped
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            await gate.audit_writer.close()


def freeze_start_up_heap() -> None:
    """Move every object alive once the server has started (modules, settings, the view, the pools: hundreds of
    thousands of objects that live as long as the process) out of the collector's reach.

    Why: a request that builds many container objects (``$everything``'s cold first page makes ~10,000 tuples for a
    5,000-resource person) sets off the collector, and every so often a full collection, which walks every tracked
    object the process holds (~90,000 after a served start-up). Measured on cold first pages (40 in one process,
    SQLite) with the index of the time: CPU p90 94–105 ms tracked, 56–63 ms frozen. With today's lighter index
    (a tuple per row) the difference is within the noise (served over HTTP at load 9: CPU median 45 ms either
    way); it stays as cheap insurance for any request that makes many containers. Garbage made while serving is
    still collected; only what start-up left behind is not walked again while the server runs (``gc.freeze``).
    """
    gc.collect()  # what start-up left as garbage goes now, not frozen into the process for good
    gc.freeze()


async def _ship_audit_segments(settings: Settings, store: Store, anchor: AuditAnchor, sink: Sink) -> None:
    """Ship closed audit segments to the log service every ``[audit] ship_interval_seconds`` (never fails the
    server: a round that cannot reach the store is logged and tried again; shipments keep their own retries)."""
    while True:
        await anyio.sleep(settings.audit.ship_interval_seconds)
        try:
            await ship_once(settings, store, anchor, sink)
        except StoreError as exc:
            log.warning("audit_shipping_round_failed", error=str(exc))


#: environment variable with the key (hex) page tokens are signed with; every API process behind one address
#: must share it, or a next-page link made by one is refused by another
PAGE_KEY_ENV = "BCCONNECT_PAGE_KEY"


def page_signing_key() -> bytes | None:
    """The shared page-token key from ``$BCCONNECT_PAGE_KEY`` (None: a random key for this process alone)."""
    text = os.environ.get(PAGE_KEY_ENV)
    if not text:
        return None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"the environment variable {PAGE_KEY_ENV} must be hexadecimal") from None
    if len(key) < 16:
        raise UsageError(f"the environment variable {PAGE_KEY_ENV} must hold at least 16 bytes (32 hex digits)")
    return key


def listen_all(settings: Settings) -> list[socket.socket]:
    """The server's listening sockets: the API port, and the metrics port when it has its own.

    Bound before any work starts, so a busy port is one clear error up front (not after a sync).
    With a metrics port, one server has two listeners: the ops layer answers /metrics only on the metrics
    port, and FHIR only on the API's.
    """
    sockets = [listen(settings.api.host, settings.api.port)]
    if settings.metrics.enabled and settings.metrics.port:
        try:
            sockets.append(listen(settings.api.host, settings.metrics.port))
        except UsageError:
            sockets[0].close()
            raise
    return sockets


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; UsageError (one sentence, exit 2) when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # the protocol named, not left 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say they are TCP,
    # and with Nagle on, a response written in two parts waits for the client's delayed ACK (40 ms a request on a
    # kept-alive connection)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    api = settings.api
    settings = replace(settings, api=replace(api, host=args.host or api.host, port=args.port or api.port))
    if args.no_auth:
        settings = replace(settings, auth=replace(settings.auth, mode=AuthMode.NONE))

    async def go() -> None:
        async with open_store(settings.store_url()) as store, AsyncExitStack() as stack:
            read_store = None
            if settings.store.read_url:
                read_store = await stack.enter_async_context(open_store(settings.store.read_url, migrate=False))
                if not read_store.is_replica:
                    raise UsageError("[store] read_url is not a streaming replica (the server is not in recovery)")

            async def announce() -> None:
                root = f"http://{settings.api.host}:{settings.api.port}"
                print(f"FHIR endpoint: {root}{settings.api.base_path}")
                print(f"web pages: {root}{PAGES_PREFIX}/")
                if read_store is not None:
                    print("reads: from the streaming replica in [store] read_url")

            await serve_api(
                settings,
                store=store,
                read_store=read_store,
                allow_no_auth=args.no_auth,
                on_ready=announce,
                listening=listening,
            )

    if args.workers < 1:
        raise UsageError(f"--workers must be 1 or more, got {args.workers}")
    if args.inherit_fds:
        listening = [socket.socket(fileno=int(fd)) for fd in args.inherit_fds.split(",")]
    else:
        listening = listen_all(settings)  # a busy port is reported before anything else starts
    try:
        if args.workers > 1 and not args.inherit_fds:
            return _supervise(args, listening)
        anyio.run(until_stopped, go)  # returns when the server stops or SIGINT/SIGTERM arrives
    finally:
        for sock in listening:
            sock.close()
    return 0


def _supervise(args: argparse.Namespace, listening: Sequence[socket.socket]) -> int:
    """Run ``args.workers`` API processes on the sockets bound here; stop them all when one stops or on a signal.

    Each worker is this command again (a fresh interpreter, so prometheus-client's multiprocess mode is on from
    its first import), inheriting the listening sockets; the kernel spreads connections across them. Their
    metrics files go to one folder, and /metrics in any worker sums them.
    """
    metrics_dir = tempfile.mkdtemp(prefix="bcconnect-metrics-")
    fds = [sock.fileno() for sock in listening]
    command = [sys.executable, "-m", "bcconnect.cli.main"]
    for flag, value in (("--config", args.config), ("--log-level", args.log_level), ("--log-format", args.log_format)):
        if value:
            command += [flag, value]
    command += ["serve", "--inherit-fds", ",".join(map(str, fds))]
    command += [f"--host={args.host}"] if args.host else []
    command += [f"--port={args.port}"] if args.port else []
    command += ["--no-auth"] if args.no_auth else []
    # the workers share one page-token key, so a next link made by one is honoured by every other
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    env.setdefault(PAGE_KEY_ENV, secrets.token_hex(32))
    workers = [subprocess.Popen(command, env=env, pass_fds=fds) for _ in range(args.workers)]  # noqa: S603
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    log.info("api_workers_started", workers=[w.pid for w in workers])
    try:
        while not stopping and all(w.poll() is None for w in workers):
            time.sleep(0.2)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    failed = [w.returncode for w in workers if w.returncode not in (0, -signal.SIGTERM)]
    if failed and not stopping:
        log.error("api_worker_exited", codes=failed)
        return 1
    return 0
