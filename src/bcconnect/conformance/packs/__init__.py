"""The packs: each module registers its checks on a :class:`~bcconnect.conformance.Pack`."""

from __future__ import annotations

from bcconnect.conformance._model import Pack
from bcconnect.conformance.packs import server, server_profile, source_fhir, source_hl7, source_json

# server_profile adds the profile and UK Core checks to the server pack
_ = server_profile

PACKS: dict[str, Pack] = {p.name: p for p in (server.PACK, source_fhir.PACK, source_json.PACK, source_hl7.PACK)}


def get_pack(name: str) -> Pack:
    """The pack called ``name`` (KeyError naming the known packs otherwise)."""
    try:
        return PACKS[name]
    except KeyError:
        raise KeyError(f"no conformance pack {name!r}; known: {', '.join(PACKS)}") from None
