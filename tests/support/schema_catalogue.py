"""What a migrated database's schema is, read from its catalogue: tables, columns, keys, indexes, foreign keys.

Two databases with equal catalogues behave alike for every statement the store runs. On SQLite a column's
behaviour is its *affinity* (``BIGINT`` and ``INTEGER`` both store integers), so the declared type is compared
by affinity; whether the integer key is the rowid, and whether it takes ``AUTOINCREMENT``, are compared too.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

Catalogue = dict[str, Any]


def sqlite_affinity(declared: str) -> str:
    """SQLite's column affinity rules (section 3.1 of its datatype page), in their order.

    >>> [sqlite_affinity(t) for t in ("BIGINT", "TEXT", "BLOB", "", "DOUBLE PRECISION", "BYTEA")]
    ['INTEGER', 'TEXT', 'BLOB', 'BLOB', 'REAL', 'NUMERIC']
    """
    upper = declared.upper()
    if "INT" in upper:
        return "INTEGER"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in upper or not upper:
        return "BLOB"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def sqlite_catalogue(conn: sqlite3.Connection) -> Catalogue:
    """The schema of a SQLite database (``schema_migrations`` and SQLite's own tables left out)."""
    out: Catalogue = {}
    tables = [
        (str(r[0]), str(r[1]))
        for r in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name != 'schema_migrations' ORDER BY name"
        )
    ]
    for table, sql in tables:
        columns = [
            {
                "name": r[1],
                "affinity": sqlite_affinity(str(r[2])),
                "not_null": bool(r[3]),
                "default": r[4],
                "pk": r[5],
            }
            for r in conn.execute(f"PRAGMA table_info('{table}')")
        ]
        pk = [c["name"] for c in columns if c["pk"]]
        rowid_key = len(pk) == 1 and any(
            r[1] == pk[0] and str(r[2]).upper() == "INTEGER" for r in conn.execute(f"PRAGMA table_info('{table}')")
        )
        indexes = []
        for row in conn.execute(f"PRAGMA index_list('{table}')"):
            name, unique, origin, partial = str(row[1]), bool(row[2]), str(row[3]), bool(row[4])
            cols = [str(r[2]) for r in conn.execute(f"PRAGMA index_info('{name}')")]
            where = None
            if partial:
                found = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()
                where = _where(str(found[0])) if found else None
            # automatic indexes (for UNIQUE/PRIMARY KEY) are named by SQLite: compare them by what they cover
            indexes.append(
                {"name": name if origin == "c" else f"<{origin}>", "unique": unique, "columns": cols, "where": where}
            )
        foreign = sorted((str(r[2]), str(r[3]), str(r[4])) for r in conn.execute(f"PRAGMA foreign_key_list('{table}')"))
        checks = sorted(re.findall(r"CHECK\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)", sql, re.IGNORECASE))
        out[table] = {
            "columns": columns,
            "rowid_key": rowid_key,
            "autoincrement": "AUTOINCREMENT" in sql.upper(),
            "indexes": sorted(indexes, key=lambda i: (i["name"], i["columns"])),
            "foreign_keys": foreign,
            "checks": [" ".join(c.split()) for c in checks],
        }
    return out


def _where(sql: str) -> str:
    return " ".join(sql.split(" WHERE ", 1)[1].split()) if " WHERE " in sql else ""


def postgres_catalogue(conn: Any) -> Catalogue:
    """The schema of a PostgreSQL database's public schema (a psycopg connection), ``schema_migrations`` left out."""
    out: Catalogue = {}
    tables = [
        str(r[0])
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            " AND table_type = 'BASE TABLE' AND table_name != 'schema_migrations' ORDER BY table_name"
        ).fetchall()
    ]
    for table in tables:
        columns = [
            {"name": r[0], "type": r[1], "not_null": r[2] == "NO", "default": r[3], "collation": r[4]}
            for r in conn.execute(
                "SELECT column_name, data_type, is_nullable, column_default, collation_name"
                " FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s"
                " ORDER BY ordinal_position",
                (table,),
            ).fetchall()
        ]
        indexes = sorted(
            # the definition names the schema (``ON public.t``): left out, so two schemas compare alike
            re.sub(r" ON \S+?\.", " ON ", str(r[0]))
            for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s", (table,)
            ).fetchall()
        )
        constraints = sorted(
            (str(r[0]), str(r[1]))
            for r in conn.execute(
                "SELECT contype, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass",
                (table,),
            ).fetchall()
        )
        out[table] = {"columns": columns, "indexes": indexes, "constraints": constraints}
    return out
