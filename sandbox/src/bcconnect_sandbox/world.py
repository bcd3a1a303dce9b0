"""A running simulated world: the trusts' servers on loopback, one population, simulated time, fault counts."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import anyio
import uvicorn

from bcconnect_sandbox.asgi import FaultyWire, RateLimiter
from bcconnect_sandbox.cohort_facts import cohort_truth_row, write_cohort_truth
from bcconnect_sandbox.dialects.rxk import rxk_quirks
from bcconnect_sandbox.faults import FaultPlan
from bcconnect_sandbox.fhir_server import FhirApp
from bcconnect_sandbox.ground_truth import ground_truth_rows, write_ground_truth, write_referral_truth
from bcconnect_sandbox.hl7_sender import Hl7Sender
from bcconnect_sandbox.rna_server import RnaApp
from bcconnect_sandbox.settings import Credentials, SandboxSettings
from bcconnect_sandbox.state import Population, TrustState
from bcconnect_sandbox.timeline import Timeline

HTTP_TRUSTS: Final = ("RL4", "RXK", "RNA")
_START_TIMEOUT: Final = 15.0
_STOP_GRACE: Final = 2.0


@dataclass(slots=True)
class _Http:
    app: FhirApp | RnaApp
    server: uvicorn.Server
    port: int
    done: anyio.Event


class _GuestServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to its host.

    uvicorn would take the signals over for itself; the sandboxes live inside the caller's process and stop when
    the caller's task group does, so the signals stay the caller's.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class World:
    """Handle on the running sandboxes (see :func:`running_sandboxes`)."""

    def __init__(
        self, settings: SandboxSettings, *, hl7_target: tuple[str, int] | None, hl7_drop_dir: Path | None
    ) -> None:
        self.settings = settings
        self.population = Population(settings)
        self.states = {t: TrustState(settings, t, self.population) for t in settings.trusts}
        self.plans = {t: FaultPlan(settings.faults, t) for t in settings.trusts}
        self.wires = {t: FaultyWire(self.plans[t]) for t in settings.trusts}
        self.timeline = Timeline(settings, self.states)
        self._http: dict[str, _Http] = {}
        self.hl7: Hl7Sender | None = None
        if "RBK" in settings.trusts:
            self.hl7 = Hl7Sender(
                settings, self.states["RBK"], self.plans["RBK"], target=hl7_target, drop_dir=hl7_drop_dir
            )

    @property
    def now(self) -> datetime:
        """The simulated "now"."""
        return self.timeline.now

    def base_url(self, trust: str) -> str:
        """``http://127.0.0.1:PORT`` of an HTTP trust (FHIR base is this + ``/fhir/R4``)."""
        if trust not in self._http:
            raise KeyError(f"{trust} has no HTTP server in this world (RBK sends HL7; serving: {list(self._http)})")
        return f"http://{self.settings.host}:{self._http[trust].port}"

    def credentials(self, trust: str) -> Credentials:
        """Client id and secret (RL4, RXK) or API key (RNA)."""
        return self.settings.credentials(trust)

    async def advance(self, days: float = 1.0) -> dict[str, int]:
        """Move simulated time on: new activity, corrections, cancellations, deletions, merges.

        Returns how many versions each trust gained. RBK's changes queue as HL7 messages for
        :meth:`deliver_hl7`.
        """
        if days <= 0:
            raise ValueError(f"days must be positive, got {days}")
        return self.timeline.advance(timedelta(days=days))

    def request_log(self, trust: str) -> list[tuple[str, str, int]]:
        """The latest requests to ``trust`` as ``(method, path+query, status)``, oldest first (bounded)."""
        return list(self.wires[trust].log)

    def fault_counts(self) -> dict[str, dict[str, int]]:
        """Faults served so far per trust, by name (``http_503``, ``reset``, ``hl7_duplicate`` …)."""
        return {t: dict(sorted(p.counts.items())) for t, p in self.plans.items()}

    def write_ground_truth(self, path: Path) -> int:
        """Write ``ground_truth.csv`` for the records served so far (merges included); returns rows written.

        The referral truth (``rtt_truth.csv``, ``referral_truth.csv``) is written beside it.
        """
        self.write_referral_truth(path.parent)
        self.write_cohort_truth(path.parent / "cohort_truth.csv")
        return write_ground_truth(path, list(self.states.values()), persons=self.settings.persons)

    def write_cohort_truth(self, path: Path) -> int:
        """Write ``cohort_truth.csv`` (conditions, distinct emergency stays, A&E attendances as first sent)."""
        population = next(iter(self.states.values())).population
        rows = (
            cohort_truth_row(population.person(i), {t: s.base_records(i) for t, s in self.states.items()})
            for i in range(self.settings.persons)
        )
        return write_cohort_truth(path, rows)

    def write_referral_truth(self, directory: Path) -> tuple[int, int]:
        """Write ``rtt_truth.csv`` and ``referral_truth.csv`` (clocks counted at the world's start)."""
        population = next(iter(self.states.values())).population
        people = (population.person(i) for i in range(self.settings.persons))
        return write_referral_truth(directory, people, reference=self.settings.now.date())

    def ground_truth_rows(self) -> list[tuple[str, str, str, str]]:
        """The ground-truth rows as a list (small worlds; use :meth:`write_ground_truth` for large ones)."""
        return list(ground_truth_rows(list(self.states.values()), persons=self.settings.persons))

    async def deliver_hl7(self, *, limit: int | None = None) -> dict[str, int]:
        """RBK: send pending messages by MLLP and/or file drop; returns counts (sent, acked, files, …)."""
        if self.hl7 is None:
            raise KeyError("RBK is not part of this world")
        return await self.hl7.deliver(limit=limit)

    def expire_tokens(self) -> None:
        """Expire every OAuth token (tests of re-authentication)."""
        for http in self._http.values():
            if isinstance(http.app, FhirApp):
                http.app.tokens.expire_all()

    # --- servers ------------------------------------------------------------------------------------
    def _make_app(self, trust: str) -> FhirApp | RnaApp:
        state, wire = self.states[trust], self.wires[trust]
        if trust == "RL4":
            return FhirApp(self.settings, state, wire)
        if trust == "RXK":
            return FhirApp(
                self.settings,
                state,
                wire,
                transform=rxk_quirks,
                limiter=RateLimiter(self.settings.rxk_requests_per_second),
            )
        return RnaApp(self.settings, state, wire, self.plans[trust])

    async def _serve(self, trust: str, task_group: anyio.abc.TaskGroup) -> None:
        app = self._make_app(trust)
        # proto IPPROTO_TCP matters: asyncio sets TCP_NODELAY only then (else ~40 ms per answer, Nagle)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.host, self.settings.port(trust)))
        port = sock.getsockname()[1]
        app.base_url = f"http://{self.settings.host}:{port}"
        config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=1)
        server = _GuestServer(config)
        http = _Http(app, server, port, anyio.Event())
        self._http[trust] = http

        async def run() -> None:
            try:
                await server.serve([sock])
            finally:
                http.done.set()

        task_group.start_soon(run)
        with anyio.fail_after(_START_TIMEOUT):
            # uvicorn exposes readiness only as a flag, so poll it (bounded by the deadline)
            while not server.started:  # noqa: ASYNC110
                await anyio.sleep(0.005)


@asynccontextmanager
async def running_sandboxes(
    settings: SandboxSettings, hl7_target: tuple[str, int] | None = None, hl7_drop_dir: Path | None = None
) -> AsyncIterator[World]:
    """Serve the trusts of ``settings`` on loopback inside the caller's task; stop them on exit."""
    world = World(settings, hl7_target=hl7_target, hl7_drop_dir=hl7_drop_dir)
    try:
        async with anyio.create_task_group() as tg:
            for trust in settings.trusts:
                if trust in HTTP_TRUSTS:
                    await world._serve(trust, tg)
            try:
                yield world
            finally:
                for http in world._http.values():
                    http.server.should_exit = True
                with anyio.move_on_after(_STOP_GRACE, shield=True):
                    for http in world._http.values():
                        await http.done.wait()
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # the servers only ever stop by cancellation, so a lone error is the caller's own: give it back bare
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group.exceptions[0].__cause__
        raise
