"""Run a pack's checks one after another against a target and collect a :class:`Report`.

Checks run sequentially (a conformance run is a careful walk, not a load test) with a deadline each; a check
that crashes or times out is an ``error`` outcome with the reason, never a crash of the run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import anyio
import httpx

from bcconnect.conformance._context import Context, Session
from bcconnect.conformance._model import Check, CheckResult, Failed, NotApplicable, Outcome, Report
from bcconnect.conformance.packs import get_pack

#: how long one check may take (paging walks and HL7 probes included)
CHECK_TIMEOUT_SECONDS = 120.0
HTTP_TIMEOUT_SECONDS = 30.0
#: requests per second by default: a conformance run should not trip a server's rate limit
DEFAULT_RATE = 15.0


async def run_check(check: Check, session: Session, *, limit: float = CHECK_TIMEOUT_SECONDS) -> CheckResult:
    """Run one check and turn whatever happens into a result."""
    ctx = Context(session)
    started = time.perf_counter()
    try:
        with anyio.fail_after(limit):
            why = await check.run(ctx)
        outcome = Outcome.PASS
    except Failed as exc:
        outcome, why = Outcome.FAIL, str(exc)
    except NotApplicable as exc:
        outcome, why = Outcome.NOT_APPLICABLE, str(exc)
    except TimeoutError:
        outcome, why = Outcome.ERROR, f"no verdict within {limit:.0f} s"
    except httpx.HTTPError as exc:
        outcome, why = Outcome.ERROR, f"the target did not answer: {type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - a check's own bug must not stop the run; it is reported
        outcome, why = Outcome.ERROR, f"the check itself failed: {type(exc).__name__}: {exc}"
    return CheckResult(check, outcome, why, ctx.exchanges, ctx.evidence, time.perf_counter() - started)


async def run_pack(
    pack_name: str,
    target: str,
    options: Mapping[str, str] | None = None,
    *,
    only: Sequence[str] = (),
    transport: httpx.AsyncBaseTransport | None = None,
) -> Report:
    """Run the pack named ``pack_name`` against ``target``; ``only``: run just these check ids."""
    pack = get_pack(pack_name)
    checks = [c for c in pack.checks if not only or c.id in only]
    unknown = set(only) - {c.id for c in pack.checks}
    if unknown:
        raise KeyError(f"no check {', '.join(sorted(unknown))} in pack {pack_name}")
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    results: list[CheckResult] = []
    async with httpx.AsyncClient(
        timeout=HTTP_TIMEOUT_SECONDS,
        follow_redirects=False,
        transport=transport,
        headers={"user-agent": "bcconnect-conformance"},
    ) as client:
        opts = dict(options or {})
        session = Session(target.rstrip("/"), opts, client, rate=float(opts.get("rate", DEFAULT_RATE)))
        for check in checks:
            results.append(await run_check(check, session))
    return Report(pack.name, target, started_at, time.perf_counter() - started, results)
