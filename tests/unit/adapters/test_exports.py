"""The public surface of the adapter SDK and the HL7 v2 package: sorted, complete, nothing private."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["bcconnect.adapters", "bcconnect.hl7v2"])
def test_all_is_sorted_and_resolves(package: str) -> None:
    """__all__ is sorted, every name exists, and nothing private is exported."""
    module = importlib.import_module(package)
    names = list(module.__all__)
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        assert not name.startswith("_")
        assert hasattr(module, name), name


def test_adapters_never_import_store_mapping_or_sandbox() -> None:
    """The SDK knows nothing of storage, mapping or the sandboxes (checked on the source text)."""
    from pathlib import Path

    root = Path(importlib.import_module("bcconnect.adapters").__file__ or "").parent
    hl7 = Path(importlib.import_module("bcconnect.hl7v2").__file__ or "").parent
    for path in root.glob("*.py"):
        text = path.read_text()
        for banned in ("bcconnect.store", "bcconnect.mapping", "bcconnect_sandbox", "bcconnect.ingest"):
            assert banned not in text, f"{path.name} imports {banned}"
    for path in hl7.glob("*.py"):
        imports = [line for line in path.read_text().splitlines() if line.startswith(("import ", "from "))]
        engine = [line for line in imports if "bcconnect" in line]
        assert all("bcconnect.errors" in line or "bcconnect.hl7v2" in line for line in engine), path.name
