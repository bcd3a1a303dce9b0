"""Store pieces that need no database: migration discovery, placeholder translation, hashing."""

from __future__ import annotations

from pathlib import Path

from bcconnect.store import content_hash
from bcconnect.store._migrate import available_migrations
from bcconnect.store._postgres import _pg_sql


def test_migrations_are_numbered_and_one_text_serves_both_dialects() -> None:
    """Both dialects get 0001 and 0002 from one file each, in order; SQLite's text is the rendered one."""
    for dialect in ("sqlite", "postgresql"):
        migrations = available_migrations(dialect)
        assert [m.number for m in migrations][:2] == [1, 2]
        assert migrations[0].filename == "0001_store.sql"
        numbers = [m.number for m in migrations]
        assert numbers == sorted(set(numbers))
    sqlite_text, postgres_text = (available_migrations(d)[0].sql for d in ("sqlite", "postgresql"))
    assert "BYTEA" in postgres_text
    assert "BYTEA" not in sqlite_text
    assert "BLOB" in sqlite_text


def test_a_dialect_variant_wins_over_the_common_text(tmp_path: Path) -> None:
    """A pair kept for a real difference is chosen per dialect; the common text of another number is shared."""
    (tmp_path / "0001_a.sqlite.sql").write_text("CREATE TABLE a (x INTEGER);")
    (tmp_path / "0001_a.postgresql.sql").write_text("CREATE TABLE a (x BIGINT) PARTITION BY RANGE (x);")
    (tmp_path / "0002_b.sql").write_text("CREATE TABLE b (y BIGINT);")
    sqlite, postgres = (available_migrations(d, tmp_path) for d in ("sqlite", "postgresql"))
    assert [m.filename for m in sqlite] == ["0001_a.sqlite.sql", "0002_b.sql"]
    assert [m.filename for m in postgres] == ["0001_a.postgresql.sql", "0002_b.sql"]
    assert sqlite[1].sql == "CREATE TABLE b (y INTEGER);"
    assert postgres[1].sql == "CREATE TABLE b (y BIGINT);"


def test_placeholders_are_translated_for_psycopg() -> None:
    """'?' becomes %s and a literal % is doubled."""
    assert _pg_sql("SELECT a FROM t WHERE b = ? AND c LIKE 'x%'") == "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%'"


def test_content_hash_ignores_store_owned_meta_and_key_order() -> None:
    """versionId/lastUpdated and key order do not change the hash; content does."""
    a = {"resourceType": "Patient", "id": "1", "meta": {"versionId": "3", "source": "s"}, "gender": "male"}
    b = {"gender": "male", "id": "1", "resourceType": "Patient", "meta": {"source": "s", "lastUpdated": "x"}}
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash({**a, "gender": "female"})
    assert content_hash({"resourceType": "Patient", "id": "1", "meta": {"versionId": "1"}}) == content_hash(
        {"resourceType": "Patient", "id": "1"}
    )
