"""The deployment report as one self-contained HTML page (inline CSS and SVG, no scripts)."""

from __future__ import annotations

from html import escape
from typing import Any

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2933;max-width:960px}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{border-bottom:1px solid #d9e2ec;padding:.4rem .6rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-size:1.3rem;font-weight:600;padding:.6rem 1rem;border-radius:6px;background:#e3f8ff}
.meta{color:#627d98}
"""


def render(report: dict[str, Any]) -> str:
    """HTML for `build_report`'s dict: verdict, per-variant table, accuracy chart with CIs."""
    variants = report["variants"]
    rows = "".join(
        "<tr>"
        f"<td>{escape(v['variant'])}</td><td>{escape(', '.join(v['versions']) or '-')}</td>"
        f"<td class='num'>{v['requests']:,}</td>"
        f"<td class='num'>{'-' if v['errors'] is None else v['errors']}</td>"
        f"<td class='num'>{_ms(v['latency_ms']['p50'])}</td>"
        f"<td class='num'>{_ms(v['latency_ms']['p95'])}</td>"
        f"<td class='num'>{v['labelled']:,}</td>"
        f"<td class='num'>{_acc(v)}</td></tr>"
        for v in variants
    )
    comparisons = "".join(
        f"<tr><td>{escape(c['treatment'])} vs {escape(c['control'])}</td>"
        f"<td class='num'>{_pct(c['accuracy_difference'])}</td>"
        f"<td class='num'>{c['p_value']:.4f}</td><td>{escape(c['verdict'])}</td>"
        f"<td>{escape(c['why'])}</td></tr>"
        for c in report["comparisons"]
    )
    recommendation = report["recommendation"]
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Deployment report: {escape(report['deployment'])}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>Deployment {escape(report['deployment'])}</h1>"
        f"<div class='meta'>policy {escape(report['policy'])} &middot; control "
        f"{escape(report['control'])} &middot; generated {escape(report['generated_at'])}</div>"
        f"<p class='verdict'>{escape(recommendation['verdict'])}: "
        f"{escape(recommendation['why'])}</p>"
        "<h2>Variants</h2><table><tr><th>variant</th><th>versions</th><th>requests</th>"
        "<th>errors</th><th>p50 ms</th><th>p95 ms</th><th>labelled</th><th>accuracy (95% CI)</th>"
        f"</tr>{rows}</table>"
        f"<h2>Accuracy with 95% Wilson intervals</h2>{_chart(variants)}"
        "<h2>Tests against the control</h2><table><tr><th>comparison</th><th>difference</th>"
        f"<th>p (two-proportion z)</th><th>verdict</th><th>why</th></tr>{comparisons}</table>"
        "</body></html>"
    )


def _chart(variants: list[dict[str, Any]]) -> str:
    labelled = [v for v in variants if v["accuracy"] is not None]
    if not labelled:
        return "<p class='meta'>No ground truth yet: send labels to POST /feedback.</p>"
    width, row = 640, 34
    height = row * len(labelled) + 30
    parts = []
    for index, v in enumerate(labelled):
        y = 10 + index * row
        low, high = v["accuracy_ci95"]
        x0, x1, xa = 140 + low * 480, 140 + high * 480, 140 + v["accuracy"] * 480
        parts.append(
            f"<text x='0' y='{y + 16}' font-size='13'>{escape(v['variant'])}</text>"
            f"<rect x='140' y='{y + 4}' width='{xa - 140:.1f}' height='18' fill='#9fb3c8'/>"
            f"<line x1='{x0:.1f}' x2='{x1:.1f}' y1='{y + 13}' y2='{y + 13}' stroke='#102a43' "
            "stroke-width='2'/>"
            f"<text x='{min(x1 + 6, 600):.1f}' y='{y + 17}' font-size='12'>{_acc(v)}</text>"
        )
    axis = f"<line x1='140' x2='620' y1='{height - 12}' y2='{height - 12}' stroke='#829ab1'/>"
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"role='img'>{''.join(parts)}{axis}</svg>"
    )


def _acc(v: dict[str, Any]) -> str:
    if v["accuracy"] is None:
        return "-"
    low, high = v["accuracy_ci95"]
    return f"{v['accuracy']:.1%} [{low:.1%}, {high:.1%}]"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
