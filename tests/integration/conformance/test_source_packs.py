"""Each sandbox passes its source pack, over real loopback HTTP and MLLP; fault knobs make the right check fail."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from bcconnect.conformance import Outcome, Report, console_summary, run_pack, write_reports
from bcconnect_sandbox import FaultSettings, SandboxSettings, running_sandboxes
from bcconnect_sandbox.world import World
from support.loopback import free_port, wait_for_listener

pytestmark = pytest.mark.anyio


def _fhir_options(world: World, trust: str) -> dict[str, str]:
    cred = world.credentials(trust)
    assert cred.client_id
    assert cred.client_secret
    return {
        "client_id": cred.client_id,
        "client_secret": cred.client_secret,
        "token_url": f"{world.base_url(trust)}/oauth2/token",
        "types": "Patient,Encounter,Observation,Condition",
        "rate": "0",
    }


def _outcomes(report: Report) -> dict[str, Outcome]:
    return {r.check.id: r.outcome for r in report.results}


def _failed(report: Report) -> set[str]:
    return {r.check.id for r in report.results if r.outcome in (Outcome.FAIL, Outcome.ERROR)}


@pytest.mark.slow
async def test_rl4_passes_the_fhir_source_pack(tmp_path: Path) -> None:
    """RL4 (after time moved, so there are deletes) passes every check of source-fhir; reports are written."""
    async with running_sandboxes(SandboxSettings(density=0, persons=60, seed=3, trusts=("RL4",))) as world:
        await world.advance(days=20)
        report = await run_pack("source-fhir", f"{world.base_url('RL4')}/fhir/R4", _fhir_options(world, "RL4"))
    paths = write_reports(report, tmp_path)
    assert report.passed, console_summary(report)
    assert not _failed(report), console_summary(report)
    assert _outcomes(report)["src-fhir.rate-limit"] is Outcome.NOT_APPLICABLE  # RL4 does not throttle
    assert all(p.exists() for p in paths.values())


@pytest.mark.slow
async def test_rxk_passes_with_a_warning_for_retired_codes_and_shows_its_rate_limit() -> None:
    """RXK passes the error checks; its retired verification codes are a warning; its 429s carry Retry-After."""
    # A limit far below what even a loaded machine serves, so the unpaced probe always meets it; the rest of the
    # pack is paced under it, as a user pointing the kit at a throttled trust would pace it.
    settings = SandboxSettings(density=0, persons=60, seed=3, trusts=("RXK",), rxk_requests_per_second=10)
    async with running_sandboxes(settings) as world:
        options = _fhir_options(world, "RXK") | {"rate": "8"}
        report = await run_pack("source-fhir", f"{world.base_url('RXK')}/fhir/R4", options)
    assert report.passed, console_summary(report)
    assert _failed(report) == {"src-fhir.ukcore.verification-current-codes"}, console_summary(report)
    assert _outcomes(report)["src-fhir.rate-limit"] is Outcome.PASS, console_summary(report)


@pytest.mark.slow
async def test_rna_passes_the_json_source_pack() -> None:
    """RNA's change feed passes every check, deletes included once time has moved."""
    async with running_sandboxes(SandboxSettings(density=0, persons=60, seed=3, trusts=("RNA",))) as world:
        await world.advance(days=30)
        key = world.credentials("RNA").api_key
        assert key
        report = await run_pack("source-json", world.base_url("RNA"), {"api_key": key, "rate": "0"})
    assert report.passed, console_summary(report)
    assert not _failed(report), console_summary(report)
    assert _outcomes(report)["src-json.deletes-reported"] is Outcome.PASS, console_summary(report)


async def _hl7_report(settings: SandboxSettings) -> Report:
    port = free_port()
    target = f"mllp://127.0.0.1:{port}"
    options = {"messages": "30", "wait": "20", "idle": "3"}
    result: list[Report] = []
    async with running_sandboxes(settings, hl7_target=("127.0.0.1", port)) as world:

        async def runner() -> None:
            result.append(await run_pack("source-hl7", target, options))

        async with anyio.create_task_group() as tg:
            tg.start_soon(runner)
            await wait_for_listener(port)  # a sender that finds no listener gives the message up
            await world.deliver_hl7(limit=30)
    return result[0]


@pytest.mark.slow
async def test_rbk_passes_the_hl7_source_pack() -> None:
    """RBK's sender passes: framing, MSH, PID, segments, resend without an ACK, moving on after an AE."""
    report = await _hl7_report(SandboxSettings(density=0, persons=40, seed=6, trusts=("RBK",), hl7_ack_timeout=0.5))
    assert report.passed, console_summary(report)
    assert not _failed(report), console_summary(report)
    assert _outcomes(report)["src-hl7.resend-without-ack"] is Outcome.PASS
    assert _outcomes(report)["src-hl7.move-on-after-ae"] is Outcome.PASS


@pytest.mark.slow
async def test_a_malformed_hl7_fault_fails_the_msh_check() -> None:
    """The sandbox's malformed-message knob (a broken field separator in segment two) fails src-hl7.pid/MSH."""
    settings = SandboxSettings(
        density=0,
        persons=40,
        seed=6,
        trusts=("RBK",),
        hl7_ack_timeout=0.5,
        faults=FaultSettings(hl7_malformed_rate=0.5),
    )
    report = await _hl7_report(settings)
    assert not report.passed
    assert "src-hl7.pid" in _failed(report), console_summary(report)
