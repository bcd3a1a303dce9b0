"""Derive the official FHIR R4 reference facts the tests compare the engine against, into ``tests/data/``.

Usage: ``python scripts/derive_test_references.py DEFINITIONS_DIR`` where the folder holds the official R4
``search-parameters.json`` (a Bundle of SearchParameter, CC0). The tests never read outside the repository: they
read the file this writes, which is small, deterministic and committed.

Written: ``tests/data/r4-search-parameters.json`` — every official search parameter code and type per base
resource type (what a server could be asked; the CapabilityStatement tests check that anything not advertised
is refused).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "r4-search-parameters.json"


def main(source: Path) -> None:
    """Read the official bundle and write the per-type code table."""
    bundle = json.loads((source / "search-parameters.json").read_text(encoding="utf-8"))
    by_base: dict[str, dict[str, str]] = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        for base in resource.get("base", []):
            by_base.setdefault(base, {})[resource["code"]] = resource["type"]
    out = {
        "source": "HL7 FHIR R4 (4.0.1) SearchParameter resources, search-parameters.json (CC0)",
        "parameters": {base: dict(sorted(codes.items())) for base, codes in sorted(by_base.items())},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: derive_test_references.py DEFINITIONS_DIR")
    main(Path(sys.argv[1]))
