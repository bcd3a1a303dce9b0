"""The packs: each module registers its checks on a :class:`~bcconnect.conformance.Pack`."""

from __future__ import annotations

from bcconnect.conformance._model import Pack
from bcconnect.conformance.packs import (
    _server_common,
    server_capability,
    server_profile,
    server_search,
    source_fhir,
    source_hl7,
    source_json,
)

# the server pack's checks live in three modules, each attaching its functions to the one pack
_ = (server_capability, server_search, server_profile)

PACKS: dict[str, Pack] = {p.name: p for p in (_server_common.PACK, source_fhir.PACK, source_json.PACK, source_hl7.PACK)}


def get_pack(name: str) -> Pack:
    """The pack called ``name`` (KeyError naming the known packs otherwise)."""
    try:
        return PACKS[name]
    except KeyError:
        raise KeyError(f"no conformance pack {name!r}; known: {', '.join(PACKS)}") from None
