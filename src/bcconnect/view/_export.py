"""``bcconnect export``: the view as a client sees it (golden Patients, references re-pointed), or the raw source
records, as NDJSON in the store's canonical form (sorted keys, id order) so two exports compare byte for byte."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio

from bcconnect.store import canonical_line
from bcconnect.view._view import View


async def export_view_ndjson(
    view: View,
    out: Path,
    *,
    with_store_meta: bool = False,
    raw: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Write ``<Type>.ndjson`` per resource type (resources in id order); returns counts per type.

    The view as served (default), or with ``raw`` the source records as stored. ``progress(type, written)``
    is called after each batch (progress bars).
    """
    await anyio.Path(out).mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for resource_type in await view.export_types():
        after = ""
        async with await anyio.open_file(out / f"{resource_type}.ndjson", "wb") as handle:
            while True:
                batch = await view.export_batch(resource_type, after_id=after, raw=raw)
                if not batch:
                    break
                lines = [
                    canonical_line(stored.body, with_store_meta=with_store_meta)
                    for stored in batch
                    if stored.body is not None
                ]
                await handle.write(b"".join(line + b"\n" for line in lines))
                counts[resource_type] = counts.get(resource_type, 0) + len(lines)
                after = batch[-1].id
                if progress is not None:
                    progress(resource_type, counts[resource_type])
    return counts
