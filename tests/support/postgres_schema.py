"""A fresh PostgreSQL schema for a longer-lived fixture (a package or module's store), dropped afterwards."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import quote

import pytest

PG_ENV = "BCCONNECT_TEST_POSTGRES_URL"


def postgres_schema_url() -> Iterator[str]:
    """Yield a store URL on its own new schema of the test server (skip without one; fail in CI)."""
    base = os.environ.get(PG_ENV)
    if not base:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set: CI must test PostgreSQL (scripts/test starts one)")
        pytest.skip(f"{PG_ENV} is not set (scripts/test-postgres start prints one)")
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{base}{'&' if '?' in base else '?'}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
