"""Is the direct-row store of ``bulk_synthetic.py`` what ingest would have stored, as far as an export sees it?

    python bench/bulk_synthetic_check.py --persons 300

Builds the same persons twice: once with ``bulk_synthetic`` (rows written directly) and once through the store's
own ``put_resources`` (every index) with the persons' aliases set by ``set_aliases``; runs a system export of each
with and without the sensitive grant, and compares the files resource by resource (``meta.lastUpdated`` aside:
the direct store stamps a fixed instant). Exit 1 and the differences when they are not equal.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bulk_synthetic

from bcconnect.bulk import ExportRequest, Level, export_to_folder
from bcconnect.security import NationalOptOut
from bcconnect.store import ResourceWrite, open_store, put_resources, set_aliases
from bcconnect.view import AccessContext, View

GRANTS = {
    "plain": AccessContext(user="check", client_id="check", readable_types=None),
    "sensitive": AccessContext(user="check", client_id="check", readable_types=None, allow_sensitive=True),
}


def _read(folder: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in folder.glob("*.ndjson"):
        for line in path.read_bytes().splitlines():
            resource = orjson.loads(line)
            resource.get("meta", {}).pop("lastUpdated", None)
            out[f"{resource['resourceType']}/{resource['id']}"] = resource
    return out


async def main(persons: int, work: Path) -> int:
    direct, ingested = f"sqlite:///{work / 'direct.db'}", f"sqlite:///{work / 'ingested.db'}"
    rows = bulk_synthetic.Rows()
    for batch in bulk_synthetic.batches(persons, 30):
        rows.versions += batch.versions
        rows.aliases += batch.aliases
    async with open_store(direct) as store:
        await bulk_synthetic.build(store, persons, 30)
    writes = []
    for _, rtype, rid, *_rest, body, compartment in rows.versions:
        resource = orjson.loads(body)
        resource["meta"] = {k: v for k, v in resource["meta"].items() if k not in ("versionId", "lastUpdated")}
        writes.append(ResourceWrite(rtype, rid, orjson.dumps(resource), "bench", compartment))
    async with open_store(ingested) as store:
        await store.write(lambda tx: put_resources(tx, writes))
        golden: dict[str, list[str]] = {}
        for _, member, canonical in rows.aliases:
            golden.setdefault(str(canonical), []).append(str(member))
        await store.write(lambda tx: [set_aliases(tx, "Patient", g, m) for g, m in golden.items()])
    differences = 0
    for name, grant in GRANTS.items():
        found = []
        for url in (direct, ingested):
            out = work / f"{name}-{len(found)}"
            async with open_store(url) as store:
                await export_to_folder(View(store), grant, ExportRequest(Level.SYSTEM), out, opt_out=NationalOptOut())
            found.append(_read(out))
        a, b = found
        missing, extra = sorted(set(b) - set(a)), sorted(set(a) - set(b))
        changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
        print(f"{name}: {len(a)} resources direct, {len(b)} ingested; {len(missing)} only ingested, "
              f"{len(extra)} only direct, {len(changed)} differ {(missing + extra + changed)[:5]}")  # fmt: skip
        differences += len(missing) + len(extra) + len(changed)
    return 1 if differences else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bulk-synthetic-check-") as folder:
        raise SystemExit(anyio.run(main, args.persons, Path(folder)))
