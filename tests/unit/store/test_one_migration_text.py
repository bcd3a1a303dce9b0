"""One migration text for both dialects: a pair of texts is kept only where the dialects truly differ.

A migration is written once (``NNNN_name.sql``, PostgreSQL-flavoured) and rendered for SQLite by
``bcconnect.store._dialect``. A ``.sqlite.sql``/``.postgresql.sql`` pair is allowed only when the PostgreSQL text
has no SQLite rendering, or its rendering gives a different SQLite schema than the hand-written SQLite text; each
text of a pair says why on a ``-- two texts:`` line. The guard proves itself on injected pairs.
"""

from __future__ import annotations

import re
import sqlite3
from importlib import resources
from pathlib import Path

import pytest

from bcconnect.errors import StoreError
from bcconnect.store._dialect import render_for_sqlite
from bcconnect.store._migrate import available_migrations
from support.schema_catalogue import sqlite_catalogue

_PAIR = re.compile(r"^(?P<stem>\d{4}_[a-z0-9_]+)\.(?P<dialect>sqlite|postgresql)\.sql$")
_REASON = re.compile(r"^-- two texts: \S", re.MULTILINE)


def _sqlite_schema(script: str) -> dict[str, object]:
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(script)
        return sqlite_catalogue(conn)
    finally:
        conn.close()


def pair_problems(folder: Path) -> list[str]:
    """Why each dialect pair in ``folder`` should not be a pair (empty: every pair is needed and explained)."""
    stems: dict[str, set[str]] = {}
    for entry in folder.iterdir():
        match = _PAIR.match(entry.name)
        if match:
            stems.setdefault(match["stem"], set()).add(match["dialect"])
    problems = []
    for stem, dialects in sorted(stems.items()):
        if dialects != {"sqlite", "postgresql"}:
            problems.append(f"{stem}: only a {dialects.pop()} text (write one .sql for both, or the pair)")
            continue
        sqlite_text = (folder / f"{stem}.sqlite.sql").read_text(encoding="utf-8")
        postgres_text = (folder / f"{stem}.postgresql.sql").read_text(encoding="utf-8")
        problems += [
            f"{stem}.{d}.sql: no '-- two texts: <why>' line"
            for d, text in (("sqlite", sqlite_text), ("postgresql", postgres_text))
            if not _REASON.search(text)
        ]
        try:
            rendered = render_for_sqlite(postgres_text, source=f"{stem}.postgresql.sql")
        except StoreError:
            continue  # PostgreSQL-only constructs: the pair is needed
        if _sqlite_schema(rendered) == _sqlite_schema(sqlite_text):
            problems.append(f"{stem}: the PostgreSQL text renders to the same SQLite schema, so it could be one text")
    return problems


def _package_migrations() -> Path:
    return Path(str(resources.files("bcconnect.store").joinpath("migrations")))


def test_no_migration_pair_could_be_one_text() -> None:
    """Every .sqlite.sql/.postgresql.sql pair in the package is needed and says why."""
    assert pair_problems(_package_migrations()) == []


def test_every_common_text_renders_for_sqlite() -> None:
    """A one-text migration with a PostgreSQL-only construct fails here (and at start-up), naming its file."""
    assert available_migrations("sqlite")  # raises StoreError naming the file that cannot be rendered


PG_QUEUE = "-- owner: store\nCREATE TABLE q (id BIGSERIAL PRIMARY KEY, payload BYTEA NOT NULL, n BIGINT);\n"
SQLITE_QUEUE = (
    "-- owner: store\nCREATE TABLE q (id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL, n INTEGER);\n"
)


@pytest.mark.parametrize(
    ("sqlite_text", "postgres_text", "expected"),
    [
        # the injected violation: a pair whose PostgreSQL text renders to the SQLite text's schema
        (SQLITE_QUEUE + "-- two texts: habit\n", PG_QUEUE + "-- two texts: habit\n", "could be one text"),
        # a pair with no reason written beside it
        (
            SQLITE_QUEUE.replace("INTEGER);", "TEXT);"),
            PG_QUEUE,
            "no '-- two texts: <why>' line",
        ),
    ],
)
def test_the_guard_catches_an_injected_pair(
    tmp_path: Path, sqlite_text: str, postgres_text: str, expected: str
) -> None:
    """Copy the package's migrations, add a pair that breaks the rule, and see the guard name it."""
    for entry in _package_migrations().iterdir():
        if entry.name.endswith(".sql"):
            (tmp_path / entry.name).write_text(entry.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "0899_injected.sqlite.sql").write_text(sqlite_text, encoding="utf-8")
    (tmp_path / "0899_injected.postgresql.sql").write_text(postgres_text, encoding="utf-8")
    problems = pair_problems(tmp_path)
    assert problems
    assert all(p.startswith("0899_injected") for p in problems)
    assert any(expected in p for p in problems)


def test_a_pair_for_a_real_difference_passes(tmp_path: Path) -> None:
    """A table partitioned on PostgreSQL only has no SQLite rendering: two texts, each saying why, are right."""
    why = "-- two texts: monthly partitions exist only on PostgreSQL\n"
    (tmp_path / "0899_audit.sqlite.sql").write_text(why + "CREATE TABLE a (month TEXT, n INTEGER);\n")
    (tmp_path / "0899_audit.postgresql.sql").write_text(
        why + "CREATE TABLE a (month TEXT, n BIGINT) PARTITION BY LIST (month);\n"
    )
    assert pair_problems(tmp_path) == []
