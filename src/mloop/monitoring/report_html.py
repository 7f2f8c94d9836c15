"""A self-contained HTML drift report: verdict, summary table, and a chart per feature.

No scripts, fonts or network: inline CSS and inline SVG only, so the file can be mailed,
attached to a CI run or opened offline. Numeric features are drawn as densities over the
reference's quantile bins (value on the x axis, share / bin width on the y axis), categorical
ones as side-by-side bars per category.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from mloop.stats.verdict import P_VALUES, DriftResult, FeatureDrift

REF_COLOR, CUR_COLOR = "#4477aa", "#ee7733"
WIDTH, HEIGHT, PAD = 470, 190, 30
MAX_BARS = 24

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px} .meta{color:#666;font-size:13px;margin-bottom:16px}
.verdict{padding:12px 16px;border-radius:6px;font-size:17px;margin:12px 0 20px}
.drift{background:#fde2e1;border:1px solid #e8a09c} .ok{background:#e3f4e1;border:1px solid #9cc796}
table{border-collapse:collapse;font-size:13px;margin-bottom:24px}
th,td{border-bottom:1px solid #ddd;padding:5px 10px;text-align:left}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
.yes{color:#b3261e;font-weight:600} .no{color:#2e7d32}
.grid{display:flex;flex-wrap:wrap;gap:16px}
.card{border:1px solid #ddd;border-radius:6px;padding:10px 12px;width:480px}
.card h3{margin:0 0 4px;font-size:15px} .card p{margin:2px 0 6px;font-size:12px;color:#555}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
svg text{font-size:10px;fill:#555}
"""


def render(
    result: DriftResult,
    *,
    title: str = "Data drift report",
    reference_name: str = "reference",
    current_name: str = "current",
) -> str:
    """The whole report as one HTML string."""
    drifted = result.number_of_drifted_columns
    total = len(result.columns)
    verdict = (
        f"Dataset drift detected: {drifted} of {total} columns drifted "
        f"({result.share_of_drifted_columns:.0%}, threshold {result.drift_share:.0%})"
        if result.dataset_drift
        else f"No dataset drift: {drifted} of {total} columns drifted "
        f"({result.share_of_drifted_columns:.0%}, threshold {result.drift_share:.0%})"
    )
    features = sorted(result.columns, key=lambda c: (not c.drift_detected, c.column))
    outputs = [f for f in (result.prediction, result.probability) if f is not None]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<div class='meta'>{escape(reference_name)} ({result.reference_rows:,} rows) vs "
        f"{escape(current_name)} ({result.current_rows:,} rows) &middot; method "
        f"{escape(result.method)} &middot; {when}</div>",
        f"<div class='verdict {'drift' if result.dataset_drift else 'ok'}'>{escape(verdict)}</div>",
        _table(features + outputs),
        "<div class='legend'>",
        f"<span style='background:{REF_COLOR}'></span>{escape(reference_name)}",
        f"<span style='background:{CUR_COLOR}'></span>{escape(current_name)}</div>",
        "<h2>Features</h2><div class='grid'>",
        *(_card(f) for f in features),
        "</div>",
    ]
    if outputs:
        parts += [
            "<h2>Model outputs</h2><div class='grid'>",
            *(_card(f) for f in outputs),
            "</div>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts)


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"


def _table(items: list[FeatureDrift]) -> str:
    rows = []
    for f in items:
        op = "<" if f.statistic in P_VALUES else "&ge;"
        extra = f.unseen if f.kind == "categorical" else f.out_of_range
        rows.append(
            "<tr>"
            f"<td>{escape(f.column)}</td><td>{escape(f.kind)}</td><td>{escape(f.statistic)}</td>"
            f"<td class='num'>{_fmt(f.value)}</td><td class='num'>{op} {_fmt(f.threshold)}</td>"
            f"<td class='{'yes' if f.drift_detected else 'no'}'>"
            f"{'drifted' if f.drift_detected else 'no'}</td>"
            f"<td class='num'>{f.missing_rate.get('reference', 0):.1%} &rarr; "
            f"{f.missing_rate.get('current', 0):.1%}</td><td class='num'>{extra:,}</td></tr>"
        )
    head = (
        "<table><tr><th>column</th><th>type</th><th>statistic</th><th>value</th>"
        "<th>threshold</th><th>drift</th><th>missing (ref &rarr; cur)</th>"
        "<th>out of range / unseen</th></tr>"
    )
    return head + "".join(rows) + "</table>"


def _card(f: FeatureDrift) -> str:
    state = "<span class='yes'>drifted</span>" if f.drift_detected else "<span class='no'>ok</span>"
    others = ", ".join(
        f"{escape(k)} {_fmt(v)}" for k, v in f.statistics.items() if k != f.statistic
    )
    notes = []
    if f.out_of_range:
        notes.append(
            f"{f.out_of_range:,} current values outside the reference range (in the end bins)"
        )
    if f.unseen:
        notes.append(f"{f.unseen:,} current values of categories the reference never had")
    if f.mean:
        notes.append(f"mean {_fmt(f.mean.get('reference'))} &rarr; {_fmt(f.mean.get('current'))}")
    chart = _numeric_svg(f) if "edges" in f.histogram else _bars_svg(f)
    return (
        f"<div class='card'><h3>{escape(f.column)} &middot; {state}</h3>"
        f"<p>{escape(f.statistic)} = {_fmt(f.value)} (threshold {_fmt(f.threshold)})"
        f"{'; ' + others if others else ''}</p>"
        f"{''.join(f'<p>{n}</p>' for n in notes)}{chart}</div>"
    )


def _numeric_svg(f: FeatureDrift) -> str:
    edges = [float(e) for e in f.histogram["edges"]]
    ref, cur = f.histogram["reference"], f.histogram["current"]
    if len(edges) < 2 or edges[-1] <= edges[0]:
        return _bars_svg(f)
    lo, hi = edges[0], edges[-1]
    widths = [max(b - a, (hi - lo) * 1e-3) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    dens_ref = [s / w for s, w in zip(ref, widths, strict=True)]
    dens_cur = [s / w for s, w in zip(cur, widths, strict=True)]
    # A point mass (a very narrow bin) would flatten everything else: cap the scale.
    positive = sorted(d for d in dens_ref + dens_cur if d > 0)
    top = min(positive[-1], 4 * positive[len(positive) // 2]) if positive else 1.0

    def x(v: float) -> float:
        return PAD + (v - lo) / (hi - lo) * (WIDTH - 2 * PAD)

    def path(dens: list[float], color: str) -> str:
        base = HEIGHT - PAD
        points = [f"{x(lo):.1f},{base}"]
        for a, b, d in zip(edges[:-1], edges[1:], dens, strict=True):
            y = base - min(d / top, 1.05) * (HEIGHT - 2 * PAD)
            points += [f"{x(a):.1f},{y:.1f}", f"{x(b):.1f},{y:.1f}"]
        points.append(f"{x(hi):.1f},{base}")
        return (
            f"<polygon points='{' '.join(points)}' fill='{color}' fill-opacity='0.35' "
            f"stroke='{color}' stroke-width='1.2'/>"
        )

    ticks = "".join(
        f"<text x='{x(v):.1f}' y='{HEIGHT - PAD + 14}' text-anchor='middle'>{v:.4g}</text>"
        for v in (lo, (lo + hi) / 2, hi)
    )
    return _svg(path(dens_ref, REF_COLOR) + path(dens_cur, CUR_COLOR) + ticks, "density")


def _bars_svg(f: FeatureDrift) -> str:
    labels = list(f.histogram.get("labels", []))[:MAX_BARS]
    ref = f.histogram.get("reference", [])[:MAX_BARS]
    cur = f.histogram.get("current", [])[:MAX_BARS]
    if not labels:
        return "<p>no data</p>"
    top = max(ref + cur) or 1.0
    slot = (WIDTH - 2 * PAD) / len(labels)
    bar = max(slot * 0.4, 1.0)
    base = HEIGHT - PAD
    body = []
    for i, (label, r, c) in enumerate(zip(labels, ref, cur, strict=True)):
        x0 = PAD + i * slot + slot * 0.1
        for j, (share, color) in enumerate(((r, REF_COLOR), (c, CUR_COLOR))):
            h = share / top * (HEIGHT - 2 * PAD)
            body.append(
                f"<rect x='{x0 + j * bar:.1f}' y='{base - h:.1f}' width='{bar:.1f}' "
                f"height='{h:.1f}' fill='{color}'><title>{escape(str(label))}: "
                f"{share:.1%}</title></rect>"
            )
        short = str(label) if len(str(label)) <= 12 else str(label)[:11] + "…"
        body.append(
            f"<text x='{x0 + bar:.1f}' y='{base + 12}' text-anchor='end' "
            f"transform='rotate(-35 {x0 + bar:.1f} {base + 12})'>{escape(short)}</text>"
        )
    return _svg("".join(body), "share")


def _svg(body: str, unit: str) -> str:
    axis = (
        f"<line x1='{PAD}' y1='{HEIGHT - PAD}' x2='{WIDTH - PAD}' y2='{HEIGHT - PAD}' "
        f"stroke='#999'/><text x='4' y='{PAD - 8}'>{unit}</text>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT + 20}' "
        f"viewBox='0 0 {WIDTH} {HEIGHT + 20}' role='img'>{axis}{body}</svg>"
    )
