"""``bcconnect mappings test|explain|lint``: work on mapping sets without reading engine code."""

from __future__ import annotations

import argparse
from pathlib import Path

from bcconnect.cli import common
from bcconnect.errors import MappingDefinitionError, RecordError, UsageError
from bcconnect.mapping import MappingContext, load_mapping_set
from bcconnect.mapping.explain import explain_lines
from bcconnect.mapping.golden import CASES_FILE, GOLDEN_DIR, load_cases, run_golden
from bcconnect.mapping.lint import lint_all
from bcconnect.mapping.loader import SET_FILE

DEFAULT_ROOT = Path("mappings")


def register(subparsers: common.SubParsers[argparse.ArgumentParser]) -> None:
    """Add the ``mappings`` command group."""
    group = subparsers.add_parser("mappings", help="test, explain and lint mapping sets")
    sub = group.add_subparsers(dest="mappings_command", metavar="SUBCOMMAND")
    test = sub.add_parser("test", help="run the golden cases of mapping sets")
    test.add_argument("paths", nargs="*", type=Path, help="mapping set directories or their parent (default: mappings)")
    test.add_argument("--update", action="store_true", help="rewrite expected files from the current output")
    test.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    test.set_defaults(handler=_test)
    explain = sub.add_parser("explain", help="show which rule and source value produced each output field")
    explain.add_argument("file", type=Path, help="an input record (e.g. a golden input file)")
    explain.add_argument("--set", dest="set_dir", type=Path, help="the mapping set (default: found from FILE)")
    explain.add_argument("--record-type", help="record type (default: from the golden case naming FILE)")
    explain.add_argument("--source-key", default="explain/1", help="source key of the record")
    explain.add_argument("--ods", help="ODS code of the trust (default: from the golden cases)")
    explain.add_argument("--source-system", help="source system url (default: from the golden cases)")
    explain.set_defaults(handler=_explain)
    lint = sub.add_parser("lint", help="check mapping sets: schema, unused rules, uuid4 use, missing golden cases")
    lint.add_argument("paths", nargs="*", type=Path, help="mapping set directories or their parent (default: mappings)")
    lint.add_argument("--strict", action="store_true", help="warnings fail the lint too")
    lint.set_defaults(handler=_lint)


def set_dirs(paths: list[Path]) -> list[Path]:
    """The mapping set directories named by ``paths`` (a set directory, or a directory of sets)."""
    found: list[Path] = []
    for path in paths or [DEFAULT_ROOT]:
        if (path / SET_FILE).is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p.parent for p in path.glob(f"*/{SET_FILE}")))
        else:
            raise UsageError(f"{path} is not a mapping set directory (no {SET_FILE}) nor a directory of sets")
    if not found:
        raise UsageError(f"no mapping sets ({SET_FILE}) under {', '.join(map(str, paths or [DEFAULT_ROOT]))}")
    return found


def _test(args: argparse.Namespace) -> int:
    failed = total = 0
    for set_dir in set_dirs(args.paths):
        try:
            ms = load_mapping_set(set_dir)
        except MappingDefinitionError as exc:
            print(f"{set_dir}: {exc}")
            failed += 1
            continue
        outcomes = run_golden(set_dir, ms, update=args.update)
        set_failed = [o for o in outcomes if not o.passed]
        print(f"{ms.id} {ms.version}: {len(outcomes) - len(set_failed)}/{len(outcomes)} golden cases pass")
        for outcome in outcomes:
            if not outcome.passed or args.verbose:
                mark = "ok  " if outcome.passed else "FAIL"
                print(f"  {mark} {outcome.case.name}: {outcome.message}")
        report = ms.unmapped_report()
        if report:
            print("  unmapped codes (most frequent first):")
            for item in report:
                print(f"    {item.count:5d}  {item.concept_map}  {item.system}  {item.code}")
        failed += len(set_failed)
        total += len(outcomes)
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0


def _explain(args: argparse.Namespace) -> int:
    file: Path = args.file
    if not file.is_file():
        raise UsageError(f"{file} does not exist")
    set_dir: Path = args.set_dir or (file.parent.parent if file.parent.name == GOLDEN_DIR else file.parent)
    if not (set_dir / SET_FILE).is_file():
        raise UsageError(f"cannot tell the mapping set of {file}; name it with --set")
    case = next((c for c in load_cases(set_dir) if c.input.resolve() == file.resolve()), None)
    cases = load_cases(set_dir) if (set_dir / GOLDEN_DIR / CASES_FILE).is_file() else []
    record_type = args.record_type or (case.record_type if case else None)
    if record_type is None:
        raise UsageError(f"{file} is not a golden input; name its record type with --record-type")
    base = case.context if case else (cases[0].context if cases else None)
    ods = args.ods or (base.ods_code if base else None)
    system = args.source_system or (base.source_system if base else None)
    if ods is None or system is None:
        raise UsageError("name the trust with --ods and --source-system")
    key = case.context.source_key if case and args.source_key == "explain/1" else args.source_key
    ms = load_mapping_set(set_dir)
    context = MappingContext(ods, system, key, base.received_at if base else "1970-01-01T00:00:00Z")
    try:
        result = ms.map(record_type, file.read_bytes(), context=context, explain=True)
    except RecordError as exc:
        print(f"{type(exc).__name__}: {exc}")
        for detail in exc.details:
            print(f"  {detail}")
        return 1
    print("\n".join(explain_lines(result)))
    return 0


def _lint(args: argparse.Namespace) -> int:
    findings = lint_all(set_dirs(args.paths))
    for finding in findings:
        print(finding)
    errors = sum(1 for f in findings if f.level == "error")
    warnings = len(findings) - errors
    print(f"{errors} error(s), {warnings} warning(s)")
    return 1 if errors or (args.strict and warnings) else 0
