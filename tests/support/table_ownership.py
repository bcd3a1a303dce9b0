"""One owner per table: the migrations' ``-- owner:`` headers, the ownership table of docs/ARCHITECTURE.md, and
the SQL text in every package must agree.

:func:`ownership_problems` returns one sentence per disagreement; an empty list means every table is created by a
migration of the package the document names, and no other package's SQL names it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from support.import_contract import ARCHITECTURE, ENGINE_SRC, marked_table

MIGRATIONS = ENGINE_SRC / "store" / "migrations"
OWNER_HEADER = re.compile(r"\A-- owner: (?P<owner>[a-z_]+)\s*\n")
#: a string is SQL when it carries an upper-case statement keyword (prose and log messages do not)
SQL_KEYWORD = re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE|ALTER TABLE|DROP|TRUNCATE)\b")
CREATE_TABLE = re.compile(r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)", re.IGNORECASE)
#: where a statement names a table: after these words (ON is the table of an index or a conflict target's table)
TABLE_AFTER = re.compile(
    r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE(?:\s+IF\s+(?:NOT\s+)?EXISTS)?|ON)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE
)


def documented_owners(path: Path = ARCHITECTURE) -> dict[str, str]:
    """Table → owning package, from the ``table-owners`` table of ARCHITECTURE.md."""
    return {row[0]: row[1] for row in marked_table(path.read_text(encoding="utf-8"), "table-owners")}


def _sql_strings(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_KEYWORD.search(node.value):
            yield node.lineno, node.value


def _package_of(path: Path, engine: Path) -> str:
    first = path.relative_to(engine).parts[0]
    return "bcconnect" if first in ("__init__.py", "__main__.py") else first.removesuffix(".py")


def ownership_problems(engine: Path = ENGINE_SRC, owners: dict[str, str] | None = None) -> list[str]:
    """Every disagreement between migrations, the document and the SQL in the code."""
    owners = documented_owners() if owners is None else owners
    problems: list[str] = []
    created: dict[str, str] = {}
    for migration in sorted((engine / "store" / "migrations").glob("*.sql")):
        text = migration.read_text(encoding="utf-8")
        header = OWNER_HEADER.match(text)
        if header is None:
            problems.append(f"{migration.name}: the first line must declare the owner ('-- owner: <package>')")
            continue
        owner = header["owner"]
        body = "\n".join(line.split("--", 1)[0] for line in text.splitlines())  # SQL, not its comments
        for table in CREATE_TABLE.findall(body):
            created[table] = owner
        for table in set(TABLE_AFTER.findall(body)):
            if table in owners and owners[table] != owner:
                problems.append(f"{migration.name}: {owner} touches {table}, which {owners[table]} owns")
    for path in sorted(engine.rglob("*.py")):
        package = _package_of(path, engine)
        for line, sql in _sql_strings(path):
            for table in CREATE_TABLE.findall(sql):
                created.setdefault(table, package)
            for table in sorted(owners):
                if owners[table] != package and re.search(rf"\b{table}\b", sql):
                    where = path.relative_to(engine.parent)
                    problems.append(
                        f"{where}:{line}: {package} SQL names {table}, which {owners[table]} owns; call its functions"
                    )
    for table, owner in sorted(created.items()):
        if table not in owners:
            problems.append(f"table {table} (created by {owner}) has no row in the ownership table of ARCHITECTURE.md")
        elif owners[table] != owner:
            problems.append(f"table {table} is created by {owner} but ARCHITECTURE.md says {owners[table]} owns it")
    problems += [f"ARCHITECTURE.md lists {t}, which nothing creates" for t in sorted(set(owners) - set(created))]
    return problems
