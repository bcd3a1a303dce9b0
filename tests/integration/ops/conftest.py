"""Fixtures of the operations tests: a free loopback port, the served endpoint with its ops layer, scrapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bcconnect.config import ApiSettings, AuthMode, AuthSettings, PathSettings, Settings
from bcconnect.store import Store
from support.loopback import free_port, serving_bcconnect

#: one sample: metric name and its labels, sorted
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def parse_exposition(text: str) -> dict[SampleKey, float]:
    """Every sample of a Prometheus text exposition, by name and labels."""
    samples: dict[SampleKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[SampleKey, float], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 when there are none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def no_auth_settings(tmp_path: Path, **api: object) -> Settings:
    """Settings for an endpoint without authentication on a free loopback port."""
    return Settings(
        api=replace(ApiSettings(), port=free_port(), **api),  # type: ignore[arg-type]
        auth=AuthSettings(mode=AuthMode.NONE),
        paths=PathSettings(adapters_dir=str(tmp_path / "no-adapters")),
        root=tmp_path,
    )


@asynccontextmanager
async def serving(
    settings: Settings, store: Store, *, read_store: Store | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """``bcconnect serve`` in-process (uvicorn on loopback); yields a client on its root URL.

    ``read_store``: the streaming replica the view reads from (``[store] read_url``).
    """
    async with (
        serving_bcconnect(settings, store, read_store=read_store, allow_no_auth=True) as base,
        httpx.AsyncClient(base_url=base, timeout=20) as client,
    ):
        yield client


async def scrape(client: httpx.AsyncClient, path: str = "/metrics") -> dict[SampleKey, float]:
    """One scrape, parsed."""
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse_exposition(response.text)
