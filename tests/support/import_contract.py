"""The import contract of docs/ARCHITECTURE.md, checked by walking every import of the engine and the sandbox.

The allowed edges and the known exceptions are read from the two marked tables in ARCHITECTURE.md, so the page a
reader consults and the rule the tests enforce are one text. :func:`violations` returns one sentence per broken
rule; an empty list means the code keeps the documented shape.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = PROJECT_ROOT / "docs" / "ARCHITECTURE.md"
ENGINE_SRC = PROJECT_ROOT / "src" / "bcconnect"
SANDBOX_SRC = PROJECT_ROOT / "sandbox" / "src" / "bcconnect_sandbox"

#: packages every engine package may import: the error tree, configuration, logging, FHIR constants and rules
BASE = frozenset({"errors", "config", "logging", "metrics", "fhir", "bcconnect"})
#: packages that are the outside world: they meet the engine only over the wire
OUTSIDE_WORLD = frozenset({"sandbox", "conformance"})
#: the few engine modules an outside-world package may share: shared vocabulary (code systems, the NHS number check),
#: no behaviour. The sandbox is a separate distribution and shares nothing.
OUTSIDE_WORLD_MAY_USE: dict[str, frozenset[str]] = {
    "conformance": frozenset({"bcconnect.fhir.constants", "bcconnect.fhir.nhs_number"}),
}
SANDBOX_MODULE = "bcconnect_sandbox"
#: (importer, imported package, imported module) → whether a known exception covers the edge
Excepted = Callable[[str, str, str], bool]


def marked_table(text: str, marker: str) -> list[list[str]]:
    """The body rows (cells stripped) of the markdown table between ``<!-- marker -->`` and ``<!-- /marker -->``."""
    match = re.search(rf"<!-- {re.escape(marker)} -->\n(.*?)<!-- /{re.escape(marker)} -->", text, re.DOTALL)
    if match is None:
        raise ValueError(f"ARCHITECTURE.md has no table marked {marker!r}")
    rows = [line.strip().strip("|").split("|") for line in match[1].splitlines() if line.strip().startswith("|")]
    return [[cell.strip() for cell in row] for row in rows[2:]]  # header and separator rows first


@dataclass(frozen=True, slots=True)
class Contract:
    """Who may import whom (package → allowed packages; ``*`` for every engine package) and the known exceptions."""

    allowed: dict[str, frozenset[str]]
    #: (importer package, imported package or module) → the issue it waits on
    exceptions: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def from_architecture(cls, path: Path = ARCHITECTURE) -> Contract:
        """Read both tables from ARCHITECTURE.md."""
        text = path.read_text(encoding="utf-8")
        allowed: dict[str, frozenset[str]] = {}
        for package, targets in marked_table(text, "import-contract"):
            if targets.startswith("("):  # "(outside world: …)": nothing
                allowed[package] = frozenset()
                continue
            targets = re.sub(r"\([^)]*\)", "", targets)  # a parenthesised remark is prose
            names = {t.strip() for t in targets.split(",") if t.strip()}
            allowed[package] = frozenset("sandbox" if n == SANDBOX_MODULE else n for n in names)
        exceptions = {(row[0], row[1]): row[2] for row in marked_table(text, "import-exceptions")}
        return cls(allowed, exceptions)


@dataclass(frozen=True, slots=True)
class Import:
    """One imported module (and the names taken from it) at a line of a file."""

    path: Path
    line: int
    module: str
    names: tuple[str, ...]
    relative: bool


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((root.name, *parts))


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    """Every import in one file, relative ones resolved against the file's package (``__init__.py`` included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = _module_name(path, root)
    # the package a relative import starts from: the module itself for an __init__.py, else its parent
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name, (), False)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield Import(path, node.lineno, target, tuple(a.name for a in node.names), node.level > 0)


def _package_of(module: str) -> str | None:
    """The engine package (``store``, ``config`` …, ``bcconnect`` for the root) a module belongs to."""
    parts = module.split(".")
    if parts[0] == SANDBOX_MODULE:
        return "sandbox"
    if parts[0] != "bcconnect":
        return None
    return parts[1] if len(parts) > 1 else "bcconnect"


def _is_module(path: Path) -> bool:
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _public_api(package_dir: Path) -> frozenset[str] | None:
    """The names in a package's ``__all__`` (None when it declares none) plus its public submodules."""
    init = package_dir / "__init__.py"
    if not init.is_file():
        return None
    names: set[str] = set()
    declared = False
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
                declared = True
                names |= {e.value for e in ast.walk(node.value) if isinstance(e, ast.Constant)}
    modules = {p.stem for p in package_dir.glob("*.py") if not p.stem.startswith("_")}
    modules |= {p.name for p in package_dir.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return frozenset(names | modules) if declared else None


def _files(engine: Path, sandbox: Path) -> Iterator[tuple[Path, Path, str]]:
    for path in sorted(engine.rglob("*.py")):
        parts = path.relative_to(engine).parts
        own = "bcconnect" if parts[0] in ("__init__.py", "__main__.py") else parts[0].removesuffix(".py")
        yield path, engine, own
    if sandbox.is_dir():
        for path in sorted(sandbox.rglob("*.py")):
            yield path, sandbox, "sandbox"


def violations(engine: Path = ENGINE_SRC, sandbox: Path = SANDBOX_SRC, contract: Contract | None = None) -> list[str]:
    """One sentence per import that breaks the contract, and per exception that is no longer needed."""
    contract = contract or Contract.from_architecture()
    problems: set[str] = set()
    used_exceptions: set[tuple[str, str]] = set()
    public: dict[str, frozenset[str] | None] = {}

    def excepted(own: str, target_package: str, module: str) -> bool:
        for key in ((own, module), (own, target_package)):
            if key in contract.exceptions:
                used_exceptions.add(key)
                return True
        return False

    for path, root, own in _files(engine, sandbox):
        rel = path.relative_to(root.parent)
        if own not in contract.allowed and own not in BASE:
            problems.add(f"{rel}: package {own!r} has no row in the import contract (docs/ARCHITECTURE.md)")
            continue
        for imp in imports_of(path, root):
            where = f"{rel}:{imp.line}"
            if imp.relative:
                problems.add(f"{where}: relative import of {imp.module}; name the absolute module")
            # `from bcconnect import store` imports the package bcconnect.store: check each name as a module
            modules = [imp.module]
            if imp.module == "bcconnect" and imp.names:
                modules = [f"bcconnect.{n}" for n in imp.names if _is_module(engine / n)] or [imp.module]
            for module in modules:
                target = _package_of(module)
                if target is None or target == own:
                    continue
                problems.update(_check_edge(where, own, target, module, imp, contract, excepted))
                problems.update(_check_public(where, own, target, module, imp, engine, public, excepted))
    for key, issue in contract.exceptions.items():
        if key not in used_exceptions:
            problems.add(f"exception {key[0]} → {key[1]} ({issue}) is no longer needed: remove it from the contract")
    return sorted(problems)


def _check_edge(
    where: str, own: str, target: str, module: str, imp: Import, contract: Contract, excepted: Excepted
) -> Iterator[str]:
    if own in OUTSIDE_WORLD:
        shared = OUTSIDE_WORLD_MAY_USE.get(own, frozenset())
        if not any(module == m or module.startswith(m + ".") for m in shared):
            yield f"{where}: {own} is the outside world and may not import the engine ({module})"
        return
    if target == "sandbox":
        if "sandbox" not in contract.allowed.get(own, frozenset()):
            yield f"{where}: only cli may import the sandbox ({module})"
        return
    if target == "cli":
        yield f"{where}: nothing imports cli ({module})"
        return
    if own in BASE and target not in BASE:
        yield f"{where}: the base package {own} may not import {target}"
        return
    allowed = contract.allowed.get(own, frozenset())
    if target in BASE or target in allowed or "*" in allowed or excepted(own, target, module):
        return
    yield f"{where}: {own} may not import {target} ({module}); see the import contract in docs/ARCHITECTURE.md"


def _check_public(
    where: str,
    own: str,
    target: str,
    module: str,
    imp: Import,
    engine: Path,
    public: dict[str, frozenset[str] | None],
    excepted: Excepted,
) -> Iterator[str]:
    if target in ("sandbox", "bcconnect") or own in OUTSIDE_WORLD:
        return
    parts = module.split(".")
    private = [p for p in parts[2:] if p.startswith("_") and not p.startswith("__")]
    if private and not excepted(own, target, module):
        yield f"{where}: {own} reaches into the private module {module}; import from bcconnect.{target}"
        return
    if imp.relative or imp.module in ("bcconnect",):
        return
    for name in imp.names:
        if name.startswith("_"):
            yield f"{where}: {own} imports the private name {name} from {module}"
    if len(parts) == 2 and imp.names:  # from bcconnect.<package> import names: its __all__
        if target not in public:
            public[target] = _public_api(engine / target)
        api = public[target]
        if api is None:
            return
        for name in imp.names:
            if name not in api and not name.startswith("_"):
                yield f"{where}: {name} is not in bcconnect.{target}.__all__ (its public interface)"
