"""One migration text for both dialects: written in a PostgreSQL-flavoured subset, rendered for SQLite here.

A migration is written once, in the types PostgreSQL wants (``BIGINT``, ``SMALLINT``, ``DOUBLE PRECISION``,
``BYTEA``, ``BIGSERIAL`` or identity keys, ``COLLATE "C"``), and runs as written on PostgreSQL. For SQLite,
:func:`render_for_sqlite` rewrites just those words into SQLite's own spelling, so a database migrated from the
rendered text has the schema the hand-written SQLite text used to give (same declared types, the integer key as
the rowid, ``AUTOINCREMENT`` where PostgreSQL has a sequence):

=========================================================  ==================================================
PostgreSQL (as written)                                    SQLite (rendered)
=========================================================  ==================================================
``BIGSERIAL PRIMARY KEY``,                                 ``INTEGER PRIMARY KEY AUTOINCREMENT``
``BIGINT GENERATED … AS IDENTITY PRIMARY KEY``
``BIGINT PRIMARY KEY``, ``SMALLINT PRIMARY KEY``           ``INTEGER PRIMARY KEY`` (the rowid, as SQLite keys
                                                           integers)
``BIGINT``, ``SMALLINT``                                   ``INTEGER`` (SQLite stores every integer in 8 bytes)
``DOUBLE PRECISION``                                       ``REAL``
``BYTEA``                                                  ``BLOB``
``COLLATE "C"``                                            nothing: SQLite's default (BINARY) already compares
                                                           bytes, as the C collation does
=========================================================  ==================================================

Comments and quoted strings are left alone. A construct with no SQLite rendering (a sequence or identity that
is not the primary key, ``SERIAL`` types, ``JSONB``, ``TIMESTAMPTZ``, table partitions, index methods) is an
error naming the file: such a migration keeps two texts, ``NNNN_name.sqlite.sql`` and ``NNNN_name.postgresql.sql``,
each with a ``-- two texts:`` line saying why.
"""

from __future__ import annotations

import re
from typing import Final

from bcconnect.errors import StoreError

#: comments and quoted literals/identifiers, which the rewrite never touches, or one run of other text
_PIECES: Final = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[^-/'\"]+|.", re.DOTALL)
_WORDS: Final = re.IGNORECASE
#: (pattern, replacement) in order: the key forms before the bare types they contain
_RULES: Final = (
    (re.compile(r"\bBIGSERIAL\s+PRIMARY\s+KEY\b", _WORDS), "INTEGER PRIMARY KEY AUTOINCREMENT"),
    (
        re.compile(
            r"\b(?:BIGINT|INTEGER|INT|SMALLINT)\s+GENERATED\s+(?:BY\s+DEFAULT|ALWAYS)\s+AS\s+IDENTITY\s+PRIMARY\s+KEY\b",
            _WORDS,
        ),
        "INTEGER PRIMARY KEY AUTOINCREMENT",
    ),
    (re.compile(r"\b(?:BIGINT|SMALLINT)\s+PRIMARY\s+KEY\b", _WORDS), "INTEGER PRIMARY KEY"),
    (re.compile(r"\b(?:BIGINT|SMALLINT)\b", _WORDS), "INTEGER"),
    (re.compile(r"\bDOUBLE\s+PRECISION\b", _WORDS), "REAL"),
    (re.compile(r"\bBYTEA\b", _WORDS), "BLOB"),
    (re.compile(r"\s+COLLATE\s+\"C\"", _WORDS), ""),
)
#: PostgreSQL-only constructs left after the rules: the migration needs a second text
_UNRENDERABLE: Final = re.compile(
    r"\b(?:SMALLSERIAL|BIGSERIAL|SERIAL|GENERATED\s+(?:BY\s+DEFAULT|ALWAYS)\s+AS\s+IDENTITY|JSONB|TIMESTAMPTZ"
    r"|PARTITION\s+(?:BY|OF)|USING\s+(?:GIN|GIST|BRIN|HASH|BTREE)|COLLATE|CREATE\s+SEQUENCE)\b",
    _WORDS,
)


def render_for_sqlite(sql: str, *, source: str = "migration") -> str:
    """The SQLite text of a migration written for PostgreSQL; StoreError names what cannot be rendered.

    >>> print(render_for_sqlite("(id BIGSERIAL PRIMARY KEY, body BYTEA, n bigint NOT NULL, x DOUBLE PRECISION)"))
    (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB, n INTEGER NOT NULL, x REAL)
    >>> print(render_for_sqlite('(v BIGINT PRIMARY KEY, norm TEXT COLLATE "C" NOT NULL) -- BYTEA'))
    (v INTEGER PRIMARY KEY, norm TEXT NOT NULL) -- BYTEA
    >>> render_for_sqlite("SELECT 'BIGINT'")
    "SELECT 'BIGINT'"
    >>> render_for_sqlite("(d JSONB)", source="0999_p.sql")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bcconnect.errors.StoreError: 0999_p.sql has no SQLite rendering (JSONB): write it as a .sqlite.sql and ...
    """
    # the collation rule spans a quoted identifier, so it runs on the text with comments and literals masked
    out: list[str] = []
    code = ""
    for piece in _PIECES.findall(sql):
        if piece.startswith(("--", "/*", "'")) or (piece.startswith('"') and piece != '"C"'):
            out.append(_render_code(code, source))
            out.append(piece)
            code = ""
        else:
            code += piece
    out.append(_render_code(code, source))
    return "".join(out)


def _render_code(code: str, source: str) -> str:
    for pattern, replacement in _RULES:
        code = pattern.sub(replacement, code)
    left = _UNRENDERABLE.search(code)
    if left:
        raise StoreError(
            f"{source} has no SQLite rendering ({' '.join(left.group(0).split())}): write it as a .sqlite.sql and"
            " a .postgresql.sql pair, each with a '-- two texts:' line saying why"
        )
    return code
