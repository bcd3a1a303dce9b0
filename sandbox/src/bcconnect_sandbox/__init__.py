"""The outside world: four simulated trust EPRs serving one synthetic population, with faults on demand.

It imports nothing of the engine but :mod:`bcconnect.fhir.constants` and :mod:`bcconnect.fhir.nhs_number`.
See ``README.md`` beside this file and ``docs/sandbox-wire-contract.md``.
"""

from bcconnect_sandbox.generate import generate_to_directory
from bcconnect_sandbox.settings import Credentials, FaultSettings, NoiseSettings, SandboxSettings
from bcconnect_sandbox.world import World, running_sandboxes

__all__ = [
    "Credentials",
    "FaultSettings",
    "NoiseSettings",
    "SandboxSettings",
    "World",
    "generate_to_directory",
    "running_sandboxes",
]
