"""The server pack against a FHIR server nobody here wrote: SEKMET (``sekmet-fhir``), on loopback.

SEKMET is installed into a test-owned virtual environment (its dependencies are not the engine's), started
with its own CLI, given a little data through its FHIR API (it accepts writes), and tested black-box. The
report is kept in ``test-artifacts/conformance/sekmet/`` and must name SEKMET's real deviations from a
read-only shared care record server.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from bcconnect.conformance import Outcome, console_summary, run_pack, write_reports
from support.loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("BCCONNECT_SEKMET_VENV", ROOT / ".cache" / "sekmet-venv"))
ARTEFACTS = ROOT / "test-artifacts" / "conformance" / "sekmet"
SEKMET = "sekmet-fhir==0.1.1"
NHS = "https://fhir.nhs.uk/Id/nhs-number"

pytestmark = pytest.mark.slow


def _sekmet_bin() -> Path:
    """SEKMET's CLI in the test-owned venv, installed the first time (skips when it cannot be installed)."""
    binary = VENV / "bin" / "sekmet"
    if binary.exists():
        return binary
    if VENV.exists():
        shutil.rmtree(VENV)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=300)
    done = subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", SEKMET],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0 or not binary.exists():
        pytest.skip(f"{SEKMET} could not be installed into {VENV}: {done.stderr.strip()[-300:]}")
    return binary


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running SEKMET on a free loopback port with five seeded patients; yields its FHIR base."""
    binary = _sekmet_bin()
    folder = tmp_path_factory.mktemp("sekmet")
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    config = folder / "settings.yaml"
    config.write_text(f"base_url: {base}\nhost: 127.0.0.1\nport: {port}\ndata_dir: {folder / 'data'}\n")
    log = (folder / "sekmet.log").open("w")
    child = subprocess.Popen(
        [str(binary), "serve", "-c", str(config)], cwd=folder, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/metadata", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail(f"SEKMET did not start: {(folder / 'sekmet.log').read_text()[-2000:]}")
        subprocess.run(
            [str(binary), "seed", "-c", str(config), "--count", "5"],
            cwd=folder,
            check=True,
            capture_output=True,
            timeout=300,
        )
        _add_clinical_data(base)
        yield base
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
        log.close()


def _add_clinical_data(base: str) -> None:
    """A patient with an NHS number, four Observations and a three-day Encounter, through SEKMET's API."""
    with httpx.Client(base_url=base, headers={"content-type": "application/fhir+json"}, timeout=10) as client:
        patient = client.post(
            "/Patient",
            json={
                "resourceType": "Patient",
                "identifier": [
                    {
                        "system": NHS,
                        "value": "9990000115",
                        "extension": [
                            {
                                "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
                                "valueCodeableConcept": {
                                    "coding": [
                                        {
                                            "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
                                            "code": "01",
                                        }
                                    ]
                                },
                            }
                        ],
                    }
                ],
                "name": [{"family": "Conformance", "given": ["Olive"]}],
                "gender": "female",
                "birthDate": "1971-04-02",
            },
        )
        pid = patient.json()["id"]
        for day in range(1, 5):
            client.post(
                "/Observation",
                json={
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
                    "subject": {"reference": f"Patient/{pid}"},
                    "effectiveDateTime": f"2024-01-0{day}T10:00:00Z",
                    "valueQuantity": {"value": 5 + day, "unit": "mmol/L"},
                },
            )
        client.post(
            "/Encounter",
            json={
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"code": "IMP"},
                "subject": {"reference": f"Patient/{pid}"},
                "period": {"start": "2024-03-01T10:00:00Z", "end": "2024-03-04T10:00:00Z"},
            },
        )


def test_the_server_pack_names_sekmets_real_deviations(sekmet: str) -> None:
    """SEKMET accepts writes and answers types it does not list: the report says so, with evidence."""
    report = anyio.run(lambda: run_pack("server", sekmet, {"rate": "0"}))
    paths = write_reports(report, ARTEFACTS)
    (ARTEFACTS / "summary.txt").write_text(console_summary(report, verbose=True) + "\n", encoding="utf-8")
    outcomes = {r.check.id: r for r in report.results}
    assert not report.passed
    assert outcomes["ig.read-only"].outcome is Outcome.FAIL
    assert "POST Patient → HTTP 201" in outcomes["ig.read-only"].why
    assert outcomes["srv.capability.unlisted-refused"].outcome is Outcome.FAIL
    # what we wrote through its API comes back intact: no UK Core finding is SEKMET's
    assert outcomes["ukcore.nhs-verification"].outcome is Outcome.PASS, console_summary(report)
    # the search checks found data to judge and reached verdicts on a server we did not write
    for check_id in ("srv.read", "srv.search.string", "srv.search.date", "srv.search.reference", "srv.search.paging"):
        assert outcomes[check_id].outcome is not Outcome.NOT_APPLICABLE, console_summary(report)
    assert all(p.exists() for p in paths.values())
