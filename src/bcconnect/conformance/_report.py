"""Reports of a run: a console summary, JSON, JUnit XML (for a trust's CI) and one self-contained HTML page.

The HTML page has no external resources (styles inline, no scripts needed to read it): per check it shows the
verdict, why, the evidence and every request with its response excerpt, failures first.
"""

from __future__ import annotations

import html
from pathlib import Path
from xml.etree import ElementTree as ET

import orjson

from bcconnect.conformance._model import CheckResult, Outcome, Report, Severity

_ORDER = {Outcome.FAIL: 0, Outcome.ERROR: 1, Outcome.NOT_APPLICABLE: 2, Outcome.PASS: 3}
_SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


def _sorted(results: list[CheckResult]) -> list[CheckResult]:
    return sorted(results, key=lambda r: (_ORDER[r.outcome], _SEVERITY_ORDER[r.check.severity]))


def console_summary(report: Report, *, verbose: bool = False) -> str:
    """A few lines for a terminal: counts, then every failure (and with ``verbose`` every check)."""
    counts = report.counts()
    lines = [
        f"conformance pack {report.pack} against {report.target}: {len(report.results)} checks in "
        f"{report.seconds:.1f} s — {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['error']} without verdict, {counts['n/a']} not applicable",
    ]
    for r in _sorted(report.results):
        if r.outcome is Outcome.PASS and not verbose:
            continue
        if r.outcome is Outcome.NOT_APPLICABLE and not verbose:
            continue
        lines.append(f"  {r.outcome.value.upper():5} {r.check.severity.value:7} {r.check.id}: {r.why}")
    blocking = [r for r in report.results if r.blocking]
    if blocking:
        lines.append(f"RESULT: FAIL — {len(blocking)} error-severity check(s) did not pass")
    else:
        warnings = len(report.failures(Severity.WARNING)) + len(report.failures(Severity.INFO))
        suffix = f" ({warnings} warning/info check(s) did not pass)" if warnings else ""
        lines.append(f"RESULT: PASS — every error-severity check passed{suffix}")
    return "\n".join(lines)


def json_report(report: Report) -> bytes:
    """The whole report as indented JSON."""
    return orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2)


def junit_xml(report: Report) -> bytes:
    """JUnit XML: one testcase per check; a failed error-severity check is a failure, others are noted."""
    counts = report.counts()
    suite = ET.Element(
        "testsuite",
        name=f"conformance.{report.pack}",
        tests=str(len(report.results)),
        failures=str(sum(1 for r in report.results if r.outcome is Outcome.FAIL and r.blocking)),
        errors=str(sum(1 for r in report.results if r.outcome is Outcome.ERROR and r.blocking)),
        skipped=str(counts["n/a"]),
        time=f"{report.seconds:.3f}",
        timestamp=report.started,
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="target", value=report.target)
    for r in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{report.pack}.{r.check.severity.value}",
            name=r.check.id,
            time=f"{r.seconds:.3f}",
        )
        detail = "\n".join([r.check.title, f"spec: {r.check.spec.url} ({r.check.spec.section})", *r.evidence])
        if r.outcome is Outcome.NOT_APPLICABLE:
            ET.SubElement(case, "skipped", message=r.why)
        elif r.blocking:
            tag = "failure" if r.outcome is Outcome.FAIL else "error"
            ET.SubElement(case, tag, message=r.why, type=r.check.severity.value).text = detail
        elif r.outcome in (Outcome.FAIL, Outcome.ERROR):
            # a warning or info finding does not fail the build; CI shows it in the case's output
            ET.SubElement(case, "system-out").text = f"{r.check.severity.value.upper()} not passed: {r.why}\n{detail}"
    ET.indent(suite)
    text: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
    return text


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1d1d1f;max-width:75rem}
h1{font-size:1.5rem;margin-bottom:.25rem} .sub{color:#555;margin-top:0}
.summary{display:flex;gap:1rem;margin:1rem 0;flex-wrap:wrap}
.tile{padding:.5rem 1rem;border-radius:.4rem;background:#f2f2f2;min-width:7rem}
.tile b{display:block;font-size:1.4rem}
.verdict{padding:.75rem 1rem;border-radius:.4rem;font-weight:600;margin:1rem 0}
.verdict.pass{background:#e3f4e8;color:#14532d} .verdict.fail{background:#fde8e8;color:#7f1d1d}
details{border:1px solid #ddd;border-radius:.4rem;margin:.5rem 0;padding:.25rem .75rem}
summary{cursor:pointer;padding:.25rem 0}
.badge{display:inline-block;min-width:3.5rem;text-align:center;border-radius:.3rem;padding:0 .4rem;font-size:.8rem;
font-weight:700;margin-right:.4rem}
.o-pass{background:#d1f0da;color:#14532d} .o-fail{background:#fbd5d5;color:#7f1d1d}
.o-error{background:#fde68a;color:#713f12} .o-na{background:#e5e7eb;color:#374151}
.sev{font-size:.8rem;color:#555;margin-right:.4rem} .id{font-family:ui-monospace,monospace;font-size:.85rem}
.why{margin:.25rem 0 .5rem} pre{background:#f7f7f9;padding:.5rem;overflow-x:auto;white-space:pre-wrap;
word-break:break-all;font-size:.8rem;max-height:24rem;overflow-y:auto}
table.ex{border-collapse:collapse;width:100%;margin:.5rem 0} table.ex td{vertical-align:top;padding:.25rem;
border-top:1px solid #eee;width:50%}
ul.evidence{margin:.25rem 0 .5rem 1rem;padding:0}
"""


def _headers(headers: dict[str, str]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in headers.items())


def _result_html(r: CheckResult) -> str:
    outcome_class = {"pass": "o-pass", "fail": "o-fail", "error": "o-error", "n/a": "o-na"}[r.outcome.value]
    e = html.escape
    parts = [
        f'<details class="check" data-check-id="{e(r.check.id)}" data-outcome="{e(r.outcome.value)}"'
        f"{' open' if r.outcome in (Outcome.FAIL, Outcome.ERROR) else ''}>",
        f'<summary><span class="badge {outcome_class}">{e(r.outcome.value.upper())}</span>'
        f'<span class="sev">{e(r.check.severity.value)}</span><span class="id">{e(r.check.id)}</span> — '
        f"{e(r.check.title)}</summary>",
        f'<p class="why"><strong>Why:</strong> {e(r.why)}</p>',
        f'<p class="judges"><strong>What it judges:</strong> {e(r.check.description)}</p>',
        f'<p>Specification: <a href="{e(r.check.spec.url)}">{e(r.check.spec.url)}</a> — {e(r.check.spec.section)}</p>',
    ]
    if r.evidence:
        parts.append('<ul class="evidence">' + "".join(f"<li>{e(x)}</li>" for x in r.evidence) + "</ul>")
    for n, x in enumerate(r.exchanges, 1):
        status = "no answer" if x.status is None else f"HTTP {x.status}" if x.method != "MLLP" else "ACK"
        request = f"{x.method} {x.url}\n{_headers(x.request_headers)}" + (
            f"\n\n{x.request_body}" if x.request_body else ""
        )
        response = f"{status} ({x.elapsed_ms:.0f} ms)\n{_headers(x.response_headers)}" + (
            f"\n\n{x.response_body}" if x.response_body else ""
        )
        note = f" — {e(x.note)}" if x.note else ""
        parts.append(
            f'<table class="ex"><tr><td><strong>Request {n}</strong>{note}<pre>{e(request)}</pre></td>'
            f"<td><strong>Response</strong><pre>{e(response)}</pre></td></tr></table>"
        )
    parts.append("</details>")
    return "\n".join(parts)


def html_report(report: Report) -> str:
    """One self-contained HTML page (no external resources) a person reads."""
    e = html.escape
    counts = report.counts()
    blocking = [r for r in report.results if r.blocking]
    verdict = (
        f'<div class="verdict fail" id="verdict">FAIL — {len(blocking)} error-severity check(s) did not pass</div>'
        if blocking
        else '<div class="verdict pass" id="verdict">PASS — every error-severity check passed</div>'
    )
    tiles = "".join(
        f'<div class="tile" data-count="{e(k)}"><b>{v}</b>{e(label)}</div>'
        for k, v, label in (
            ("total", len(report.results), "checks"),
            ("pass", counts["pass"], "passed"),
            ("fail", counts["fail"], "failed"),
            ("error", counts["error"], "no verdict"),
            ("n/a", counts["n/a"], "not applicable"),
        )
    )
    body = "\n".join(_result_html(r) for r in _sorted(report.results))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Conformance report — {e(report.pack)} — {e(report.target)}</title>"
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head><body>'
        f"<h1>Conformance report: {e(report.pack)} pack</h1>"
        f'<p class="sub">Target <code>{e(report.target)}</code> · started {e(report.started)} · '
        f'{report.seconds:.1f} s · {e(report.tool)}</p>{verdict}<div class="summary">{tiles}</div>'
        f"<main>{body}</main></body></html>\n"
    )


def write_reports(report: Report, directory: Path) -> dict[str, Path]:
    """Write ``report.json``, ``junit.xml`` and ``report.html`` into ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / "report.json", "junit": directory / "junit.xml", "html": directory / "report.html"}
    paths["json"].write_bytes(json_report(report))
    paths["junit"].write_bytes(junit_xml(report))
    paths["html"].write_text(html_report(report), encoding="utf-8")
    return paths
