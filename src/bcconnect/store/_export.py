"""Export of the store's current resources as NDJSON, one file per resource type, in a canonical form (sorted
keys, id order) so two exports of the same data compare byte for byte."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import anyio
import orjson

from bcconnect.store._listing import iter_current, resource_types
from bcconnect.store._store import Store


def canonical_line(body: bytes, *, with_store_meta: bool) -> bytes:
    """One NDJSON line: sorted keys; without the store's own versionId/lastUpdated unless asked for.

    >>> canonical_line(b'{"id":"1","resourceType":"Patient","meta":{"versionId":"2","lastUpdated":"x"}}',
    ...                with_store_meta=False)
    b'{"id":"1","resourceType":"Patient"}'
    """
    resource = orjson.loads(body)
    meta = resource.get("meta")
    if not with_store_meta and isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        if meta:
            resource["meta"] = meta
        else:
            del resource["meta"]
    return orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)


async def export_ndjson(store: Store, out: Path, *, with_store_meta: bool = False) -> dict[str, int]:
    """Write ``<Type>.ndjson`` per resource type (resources in id order); returns counts per type."""
    await anyio.Path(out).mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for resource_type in await store.read(resource_types):
        after = ""
        async with await anyio.open_file(out / f"{resource_type}.ndjson", "wb") as handle:
            while True:
                batch = await store.read(partial(iter_current, resource_type=resource_type, after_id=after))
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
    return counts
