"""The HL7 v2 file drop on a real folder: name order, pages, rejects kept, processed files moved."""

from __future__ import annotations

import contextlib
from pathlib import Path

import orjson
import pytest

from bcconnect.adapters import Hl7FileSource, Page, open_source
from bcconnect.config import AdapterConfig, FetchSettings, Hl7Settings, SourceKind


def config_for(folder: Path, page_size: int = 2) -> AdapterConfig:
    return AdapterConfig(
        name="RBK",
        ods_code="RBK",
        kind=SourceKind.HL7V2,
        mapping_set="rbk",
        hl7v2=Hl7Settings(mode="file", drop_dir=str(folder)),
        fetch=FetchSettings(page_size=page_size),
    )


def message(control_id: str) -> bytes:
    return f"MSH|^~\\&|PAS|RBK|||20261122101500||ADT^A08|{control_id}|P|2.4\rPID|1||M1^^^RBK^MR\r".encode()


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.hl7"))


async def collect(source: Hl7FileSource) -> list[Page]:
    async with contextlib.aclosing(source.pages(None)) as pages:
        return [page async for page in pages]


@pytest.mark.anyio
async def test_reads_in_name_order_pages_and_moves_on_acknowledge(tmp_path: Path) -> None:
    """Files come in name order, page_size per page; acknowledge moves exactly the committed pages' files."""
    for seq, cid in [(3, "C3"), (1, "C1"), (2, "C2")]:
        (tmp_path / f"{seq:06d}_{cid}.hl7").write_bytes(message(cid))
    (tmp_path / "000004_C4.hl7.tmp").write_bytes(b"half-written")
    (tmp_path / "000000_BAD.hl7").write_bytes(b"this is not HL7")
    async with open_source(config_for(tmp_path)) as source:
        assert isinstance(source, Hl7FileSource)
        pages = await collect(source)
        assert [r.source_key for p in pages for r in p.records] == ["RBK|C1", "RBK|C2", "RBK|C3"]
        assert [orjson.loads(p.cursor)["file"] for p in pages] == ["000001_C1.hl7", "000003_C3.hl7"]
        (reject,) = [r for p in pages for r in p.rejects]
        assert reject.payload == b"this is not HL7"
        assert reject.reason.startswith("file 000000_BAD.hl7: missing MSH")
        record = pages[0].records[0]
        assert (record.record_type, record.last_updated, record.version) == ("ADT^A08", "20261122101500", None)

        await source.acknowledge(pages[0].cursor)
        assert names(tmp_path) == ["000002_C2.hl7", "000003_C3.hl7"]
        assert names(tmp_path / "processed") == ["000000_BAD.hl7", "000001_C1.hl7"]

        # a late file with a lower name is still read: nothing is skipped because of the cursor
        (tmp_path / "000001_LATE.hl7").write_bytes(message("LATE"))
        again = await collect(source)
        assert [r.source_key for p in again for r in p.records] == ["RBK|LATE", "RBK|C2", "RBK|C3"]
        await source.acknowledge(again[-1].cursor)
    assert names(tmp_path) == []
    assert (tmp_path / "000004_C4.hl7.tmp").exists()


@pytest.mark.anyio
async def test_empty_or_missing_folder_yields_nothing(tmp_path: Path) -> None:
    """No folder yet, or no files: no pages, no error."""
    async with open_source(config_for(tmp_path / "absent")) as source:
        assert isinstance(source, Hl7FileSource)
        assert await collect(source) == []
