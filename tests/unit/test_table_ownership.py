"""Each table has one owning package: declared on its migration's first line and in docs/ARCHITECTURE.md, and
named in SQL by no other package. The guard is proved on injected violations in a copy of the tree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support.import_contract import ENGINE_SRC
from support.table_ownership import documented_owners, ownership_problems


def test_every_table_has_one_owner_and_no_other_package_names_it() -> None:
    """Migrations, ARCHITECTURE.md and the SQL in every package agree on who owns each table."""
    assert ownership_problems() == []


@pytest.fixture
def engine(tmp_path: Path) -> Path:
    """A copy of the engine's code and migrations to inject violations into."""
    copy = tmp_path / "bcconnect"
    shutil.copytree(ENGINE_SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "*.json", "*.toml", "*.md"))
    return copy


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_sql_on_another_packages_table_is_caught(engine: Path) -> None:
    """A view module reading the store's cursors directly is reported with file, line and owner."""
    _write(engine / "view" / "_leak.py", 'SQL = "SELECT adapter, updated_at FROM cursors"\n')
    assert ownership_problems(engine) == [
        "bcconnect/view/_leak.py:1: view SQL names cursors, which store owns; call its functions"
    ]


def test_sql_in_an_f_string_is_caught(engine: Path) -> None:
    """Table names inside f-strings are SQL too."""
    _write(engine / "api" / "_leak.py", 'def q(n: int) -> str:\n    return f"SELECT * FROM audit_events LIMIT {n}"\n')
    assert ownership_problems(engine) == [
        "bcconnect/api/_leak.py:2: api SQL names audit_events, which security owns; call its functions"
    ]


def test_a_migration_without_an_owner_is_caught(engine: Path) -> None:
    """Each migration declares its owner on the first line."""
    _write(engine / "store" / "migrations" / "0899_orphan.sql", "-- no owner here\nSELECT 1;\n")
    assert ownership_problems(engine) == [
        "0899_orphan.sql: the first line must declare the owner ('-- owner: <package>')"
    ]


def test_a_migration_altering_another_packages_table_is_caught(engine: Path) -> None:
    """An ingest migration may not change the store's tables."""
    _write(
        engine / "store" / "migrations" / "0898_reach.sql",
        "-- owner: ingest\nALTER TABLE resources ADD COLUMN note TEXT;\n",
    )
    assert ownership_problems(engine) == ["0898_reach.sql: ingest touches resources, which store owns"]


def test_a_new_table_without_a_documented_owner_is_caught(engine: Path) -> None:
    """A table the ownership table does not list is reported."""
    _write(
        engine / "store" / "migrations" / "0897_new.sql", "-- owner: triage\nCREATE TABLE referral_queue (id TEXT);\n"
    )
    assert ownership_problems(engine) == [
        "table referral_queue (created by triage) has no row in the ownership table of ARCHITECTURE.md"
    ]


def test_a_document_that_disagrees_with_the_migration_is_caught(engine: Path) -> None:
    """The document's owner and the migration header must match."""
    owners = {**documented_owners(), "ingest_runs": "store"}
    problems = ownership_problems(engine, owners)
    assert "table ingest_runs is created by ingest but ARCHITECTURE.md says store owns it" in problems
