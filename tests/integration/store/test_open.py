"""Opening stores: URL forms and refusals."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bcconnect.errors import ConfigError, StoreError
from bcconnect.store import ResourceWrite, open_store, put_resources, read_current

pytestmark = pytest.mark.anyio


async def test_in_memory_sqlite_reads_what_it_wrote() -> None:
    """sqlite:///:memory: uses one connection for writes and reads, so reads see the data."""
    body = orjson.dumps({"resourceType": "Patient", "id": "a"})
    async with open_store("sqlite:///:memory:") as store:
        await store.write(lambda tx: put_resources(tx, [ResourceWrite("Patient", "a", body, "test", "a")]))
        found = await store.read(lambda tx: read_current(tx, "Patient", "a"))
    assert found is not None
    assert found.version == 1


async def test_relative_and_absolute_sqlite_paths(tmp_path: Path) -> None:
    """sqlite:////abs/path creates the file (and its folder)."""
    target = tmp_path / "deep" / "store.db"
    async with open_store(f"sqlite:///{target}") as store:
        assert store.dialect == "sqlite"
    assert target.exists()


async def test_unknown_scheme_is_refused() -> None:
    """A wrong scheme is a ConfigError naming the key."""
    with pytest.raises(ConfigError, match=r"store\.url"):
        async with open_store("mysql://localhost/x"):
            pass


async def test_unwritable_sqlite_folder_is_a_store_error(tmp_path: Path) -> None:
    """A path below a file cannot be created: StoreError, not OSError."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError):
        async with open_store(f"sqlite:///{blocker}/store.db"):
            pass
