"""Store pieces that need no database: migration discovery, placeholder translation, hashing."""

from __future__ import annotations

from bcconnect.store import content_hash
from bcconnect.store._migrate import available_migrations
from bcconnect.store._postgres import _pg_sql


def test_migrations_are_numbered_and_dialect_variants_win() -> None:
    """Both dialects get 0001 (their own variant) and the shared 0002, in order."""
    for dialect in ("sqlite", "postgresql"):
        migrations = available_migrations(dialect)
        assert [m.number for m in migrations][:2] == [1, 2]
        assert migrations[0].filename == f"0001_store.{dialect}.sql"
        numbers = [m.number for m in migrations]
        assert numbers == sorted(set(numbers))


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
