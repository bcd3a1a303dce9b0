"""The HL7 v2 file drop: one message per ``*.hl7`` file, read in name order, moved away once committed."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from pathlib import Path

import anyio
import anyio.to_thread
import orjson
import structlog

from bcconnect.adapters._hl7_record import hl7_record
from bcconnect.adapters._types import Page, RawRecord, RawReject
from bcconnect.config import AdapterConfig
from bcconnect.errors import ConfigError

log = structlog.get_logger()

PROCESSED_DIR = "processed"


class Hl7FileSource:
    """Reads ``*.hl7`` files from ``config.hl7v2.drop_dir``, up to ``page_size`` files a page.

    The cursor names the last file of the page. :meth:`acknowledge` moves every file this source handed out
    up to that page into ``processed/``. Files still in the folder are always read, whatever the cursor says:
    a file that arrived late with a lower name is not skipped, and after a crash between commit and
    acknowledgement the files are read again (ingest de-duplicates them by ``source_key``). Senders write a
    temporary name and rename, so a half-written file is never a ``*.hl7``.
    """

    def __init__(self, config: AdapterConfig) -> None:
        if not config.hl7v2.drop_dir:
            where = str(config.source_file) if config.source_file else None
            raise ConfigError("a file-drop HL7 v2 source needs hl7v2.drop_dir", file=where, key="hl7v2.drop_dir")
        self.name = config.name
        root = Path(config.hl7v2.drop_dir)
        if not root.is_absolute() and config.source_file is not None:
            root = config.source_file.parent / root
        self._dir = root
        self._page_size = config.fetch.page_size
        # page cursor → the files that page handed out, waiting for acknowledge
        self._pending: dict[str, list[str]] = {}

    @property
    def directory(self) -> Path:
        """The folder files are dropped into."""
        return self._dir

    async def pages(self, cursor: str | None) -> AsyncGenerator[Page, None]:
        """Pages of the files now in the folder, in name order."""
        # a new read supersedes pages never acknowledged: their files are still here and are read again
        self._pending.clear()
        names = await anyio.to_thread.run_sync(self._list)
        for start in range(0, len(names), self._page_size):
            chunk = names[start : start + self._page_size]
            contents = await anyio.to_thread.run_sync(self._read_all, chunk)
            records: list[RawRecord] = []
            rejects: list[RawReject] = []
            for name, payload in contents:
                if payload is None:
                    continue  # taken away between listing and reading (another reader): not ours
                _, item = hl7_record(payload)
                if isinstance(item, RawRecord):
                    records.append(item)
                else:
                    rejects.append(RawReject(item.payload, item.record_type, f"file {name}: {item.reason}"))
            page_cursor = orjson.dumps({"file": chunk[-1]}).decode()
            self._pending[page_cursor] = list(chunk)
            log.info("hl7_files_read", source=self.name, files=len(chunk), rejects=len(rejects))
            yield Page(tuple(records), tuple(rejects), page_cursor)

    async def acknowledge(self, cursor: str) -> None:
        """Move the files of every page up to and including this cursor's into ``processed/``."""
        if cursor not in self._pending:
            return
        done: list[str] = []
        for page_cursor in list(self._pending):
            done.extend(self._pending.pop(page_cursor))
            if page_cursor == cursor:
                break
        await anyio.to_thread.run_sync(self._move, done)

    def _list(self) -> list[str]:
        if not self._dir.is_dir():
            return []
        return sorted(p.name for p in self._dir.glob("*.hl7") if p.is_file())

    def _read_all(self, names: list[str]) -> list[tuple[str, bytes | None]]:
        out: list[tuple[str, bytes | None]] = []
        for name in names:
            try:
                out.append((name, (self._dir / name).read_bytes()))
            except FileNotFoundError:
                out.append((name, None))
        return out

    def _move(self, names: list[str]) -> None:
        target = self._dir / PROCESSED_DIR
        target.mkdir(exist_ok=True)
        for name in names:
            try:
                os.replace(self._dir / name, target / name)
            except FileNotFoundError:
                log.warning("hl7_file_gone", source=self.name, file=name)
