"""The security gate over a real store: admission decisions and one durable AuditEvent per request."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcconnect.config import AuthSettings, SecuritySettings, Settings
from bcconnect.errors import Forbidden, InvalidRequest, NotAuthenticated, RequestError, TooManyRequests
from bcconnect.security import (
    Interaction,
    LocalIssuer,
    SecurityGate,
    count_audit_events,
    ensure_local_issuer,
    search_audit_events,
    verify_audit_chain,
)
from bcconnect.store import Store

pytestmark = pytest.mark.anyio


def gate_for(store: Store, tmp_path: Path, **security: object) -> tuple[SecurityGate, LocalIssuer]:
    issuer = ensure_local_issuer(tmp_path)
    settings = Settings(
        auth=AuthSettings(issuers=(issuer.as_jwt_issuer(),)),
        security=SecuritySettings(**security),  # type: ignore[arg-type]
        root=tmp_path,
    )
    return SecurityGate.from_settings(settings, store), issuer


async def test_n_requests_give_n_audit_events_refused_ones_included(store: Store, tmp_path: Path) -> None:
    """Allowed, 401, 403 and 400 requests are each audited once, and the chain verifies."""
    gate, issuer = gate_for(store, tmp_path)
    good = "Bearer " + issuer.issue(scopes="user/Patient.rs", user="912345678901", org="RL4")
    attempts: list[tuple[str | None, str, str]] = [
        (good, "Patient", ""),
        (None, "Patient", ""),
        ("Bearer x.y.z", "Patient", ""),
        (good, "Observation", ""),
        (good, "Patient", "_count=abc"),
    ]
    statuses = []
    for authorization, resource_type, query in attempts:
        principal, status, error = None, 200, None
        try:
            principal = await gate.authenticate(authorization)
            gate.admit_request(principal, resource_type=resource_type, interaction=Interaction.SEARCH, query=query)
        except RequestError as exc:
            error = exc
            status = {NotAuthenticated: 401, Forbidden: 403, InvalidRequest: 400}[type(exc)]
        statuses.append(status)
        await gate.record(
            principal=principal,
            method="GET",
            path=f"/fhir/{resource_type}",
            query=query,
            interaction="search-type",
            status=status,
            resource_type=resource_type,
            patients=["Patient/p1"],
            error=error,
        )
    assert statuses == [200, 401, 401, 403, 400]
    assert await store.read(count_audit_events) == len(attempts)
    assert (await store.read(verify_audit_chain)).ok
    events = await store.read(lambda tx: search_audit_events(tx, patient="p1"))
    assert len(events) == len(attempts)
    assert b'"outcome":"4"' in events[0]
    assert b"HTTP 400: incorrect" in events[0]


async def test_unauthenticated_floods_are_rate_limited_by_address(store: Store, tmp_path: Path) -> None:
    """After the burst, bad tokens from one address get 429 rather than 401; other callers are unaffected."""
    gate, issuer = gate_for(store, tmp_path, address_rate_limit_burst=2, address_rate_limit_per_second=0.001)
    for _ in range(2):
        with pytest.raises(NotAuthenticated):
            await gate.authenticate(None, remote_address="10.0.0.9")
    with pytest.raises(TooManyRequests) as refused:
        await gate.authenticate(None, remote_address="10.0.0.9")
    assert refused.value.retry_after >= 1
    good = "Bearer " + issuer.issue(scopes="user/*.rs", user="u1", org="RL4")
    assert (await gate.authenticate(good, remote_address="10.0.0.9")).user == "u1"
