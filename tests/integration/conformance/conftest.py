"""Our FHIR endpoint over the fixture record (tests/support/conformance_target.py), with real JWT
authentication, served on loopback for the module's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from bcconnect.api import create_app
from bcconnect.api._security import security_hooks
from bcconnect.config import load_settings
from bcconnect.identity import link_patients
from bcconnect.security import SecurityGate, add_objection, ensure_local_issuer
from bcconnect.store import open_store, put_resources
from bcconnect.view import View
from support.conformance_target import BROWN, GREEN, FhirTarget, fixture_record
from support.loopback import serve


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def fhir_target(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FhirTarget]:
    """Our endpoint over the fixture record with JWT authentication (the local issuer), on a free port."""
    folder: Path = tmp_path_factory.mktemp("conformance-server")
    issuer = ensure_local_issuer(folder)
    config = folder / "bcconnect.toml"
    config.write_text(
        f"""
[store]
url = "sqlite:///{folder / "store.db"}"
[auth]
mode = "jwt"
issuers = [{{ issuer = "{issuer.issuer}", audience = "{issuer.audience}", jwks_file = "{issuer.jwks_path}" }}]
# the identity provider a deployment names for SMART App Launch discovery (it is not called here)
authorization_endpoint = "https://idp.example.nhs.uk/authorize"
token_endpoint = "https://idp.example.nhs.uk/token"
[security]
rate_limit_per_second = 10000
rate_limit_burst = 10000
user_rate_limit_per_second = 10000
user_rate_limit_burst = 10000
""",
        encoding="utf-8",
    )
    settings = load_settings(config, required=True)
    async with open_store(settings.store_url()) as store:
        record = fixture_record()
        # one write per resource: distinct lastUpdated times make _sort observable
        for item in record:
            await store.write(lambda tx, item=item: put_resources(tx, [item]))
        patients = [orjson.loads(w.body) for w in record if w.resource_type == "Patient"]
        # identity links make persons of the source Patients, as ingest does
        await store.write(lambda tx: link_patients(tx, patients, ods_code="RL4"))
        await store.write(lambda tx: add_objection(tx, GREEN))
        gate = SecurityGate.from_settings(settings, store, allow_no_auth=False)
        authenticate, on_complete = security_hooks(gate)
        view = View(store, default_count=20, max_count=1000, sensitivity=gate.policy)
        app = create_app(settings, view, authenticate=authenticate, on_request_complete=on_complete)
        token = issuer.issue(scopes="user/*.rs", user="555123456789", org="RL4")
        async with serve(app) as origin:
            yield FhirTarget(f"{origin}/fhir", origin, token, GREEN, BROWN)
