"""The validation report as one self-contained HTML page (no scripts, no external assets).

Takes a `mloop.features.validation.ValidationReport` (not imported: validation imports this).
"""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;font-size:.9rem}
th{background:#f3f3f3}.error{color:#b00020;font-weight:600}.warning{color:#8a6d00}
.ok{color:#1b7f3b;font-weight:600}
"""


def render_html(report: Any) -> str:
    """The report: a summary line, one row per failing check, then each check's example rows."""
    status = (
        '<span class="ok">passed</span>'
        if report.ok
        else f'<span class="error">{len(report.errors)} error(s)</span>'
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Validation of {escape(report.source)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Validation of {escape(report.source)}</h1>",
        f"<p>{status}, {len(report.warnings)} warning(s); {report.rows} rows, "
        f"{report.columns} columns; checks run: {escape(', '.join(report.checks_run))}</p>",
    ]
    if report.failures:
        parts.append("<table><tr><th>level</th><th>check</th><th>column</th><th>count</th>")
        parts.append("<th>message</th></tr>")
        for r in report.failures:
            parts.append(
                f"<tr><td class='{r.level}'>{r.level}</td><td>{escape(r.check)}</td>"
                f"<td>{escape(r.column or '')}</td><td>{r.count}</td>"
                f"<td>{escape(r.message)}</td></tr>"
            )
        parts.append("</table>")
    for r in report.failures:
        if not r.examples:
            continue
        keys = list(dict.fromkeys(k for row in r.examples for k in row))
        parts.append(f"<h2>{escape(r.check)} {escape(r.column or '')}: examples</h2><table><tr>")
        parts.extend(f"<th>{escape(k)}</th>" for k in keys)
        parts.append("</tr>")
        for row in r.examples:
            cells = "".join(f"<td>{escape(str(row.get(k, '')))}</td>" for k in keys)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)
