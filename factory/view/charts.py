"""Charts as inline SVG drawn on the server: histograms, grouped bars and line plots, no JavaScript library.

Every label passes through `escape`, and nothing uses a `style` attribute (the page's CSP forbids inline
styles); colours come from classes in view.css.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

W, H, PAD_L, PAD_B, PAD_T = 640, 220, 48, 36, 24


def _fmt(x: float) -> str:
    if not math.isfinite(x):  # a diverged run logs NaN or Infinity as its loss
        return str(x)
    if x == int(x) and abs(x) < 1e9:
        return str(int(x))
    return f"{x:.3g}"


def _frame(title: str, body: list[str], y_max: float, legend: Sequence[tuple[str, int]] = ()) -> Markup:
    parts = [f'<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f'<text class="title" x="{PAD_L}" y="16">{escape(title)}</text>']
    for frac in (0, 0.5, 1):
        y = H - PAD_B - frac * (H - PAD_B - PAD_T)
        parts.append(f'<line class="grid" x1="{PAD_L}" x2="{W - 8}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{PAD_L - 4}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{_fmt(y_max * frac)}</text>')
    for i, (name, series) in enumerate(legend):
        parts.append(f'<rect class="s{series}" x="{W - 150}" y="{8 + 14 * i}" width="10" height="10"/>'
                     f'<text class="tick" x="{W - 136}" y="{17 + 14 * i}">{escape(name)}</text>')
    return Markup("".join(parts + body + ["</svg>"]))


def bars(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]) -> Markup:
    """Grouped bars: one group per label, one bar per series."""
    y_max = max([v for _, values in series for v in values if math.isfinite(v)] + [0]) or 1
    n, k = max(len(labels), 1), max(len(series), 1)
    group = (W - PAD_L - 8) / n
    bar = max(1.0, group * 0.8 / k)
    body = []
    for i, label in enumerate(labels):
        x0 = PAD_L + i * group + group * 0.1
        for j, (name, values) in enumerate(series):
            v = values[i]
            h = (H - PAD_B - PAD_T) * v / y_max if math.isfinite(v) else 0.0
            body.append(f'<rect class="s{j}" x="{x0 + j * bar:.1f}" y="{H - PAD_B - h:.1f}" width="{bar:.1f}" '
                        f'height="{h:.1f}"><title>{escape(label)} {escape(name)}: {_fmt(v)}</title></rect>')
        if n <= 24 or i % math.ceil(n / 24) == 0:
            body.append(f'<text class="tick" x="{x0 + group * 0.4:.1f}" y="{H - PAD_B + 14}" text-anchor="middle">'
                        f'{escape(label[:14])}</text>')
    legend = [(name, j) for j, (name, _) in enumerate(series)] if len(series) > 1 else []
    return _frame(title, body, y_max, legend)


def histogram(title: str, values: Sequence[float], bins: int = 20) -> Markup:
    """Counts per bin; integer data with a small range gets one bar per value (judge scores 1..10)."""
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return Markup(f'<p class="muted">{escape(title)}: no values</p>')
    lo, hi = min(values), max(values)
    if all(v == int(v) for v in values) and hi - lo <= 30:
        labels = [_fmt(x) for x in range(int(lo), int(hi) + 1)]
        counts = [0] * len(labels)
        for v in values:
            counts[int(v) - int(lo)] += 1
    else:
        width = (hi - lo) / bins or 1
        counts = [0] * bins
        for v in values:
            counts[min(bins - 1, int((v - lo) / width))] += 1
        labels = [_fmt(lo + i * width) for i in range(bins)]
    return bars(f"{title} (n={len(values)})", labels, [("rows", counts)])


def lines(title: str, series: Sequence[tuple[str, Sequence[tuple[float, float]]]]) -> Markup:
    """Line plots sharing axes (a loss curve: step -> loss); NaN and infinite points are left out of the plot."""
    series = [(name, [(x, y) for x, y in pts if math.isfinite(x) and math.isfinite(y)]) for name, pts in series]
    points = [p for _, pts in series for p in pts]
    if not points:
        return Markup(f'<p class="muted">{escape(title)}: no points</p>')
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(0.0, min(p[1] for p in points)), max(p[1] for p in points) or 1
    sx = (W - PAD_L - 16) / ((x_hi - x_lo) or 1)
    sy = (H - PAD_B - PAD_T) / ((y_hi - y_lo) or 1)
    body = []
    for j, (name, pts) in enumerate(series):
        path = " ".join(f"{PAD_L + (x - x_lo) * sx:.1f},{H - PAD_B - (y - y_lo) * sy:.1f}" for x, y in pts)
        body.append(f'<polyline class="line s{j}" points="{path}"><title>{escape(name)}</title></polyline>')
    for x in (x_lo, x_hi):
        body.append(f'<text class="tick" x="{PAD_L + (x - x_lo) * sx:.1f}" y="{H - PAD_B + 14}" '
                    f'text-anchor="middle">{_fmt(x)}</text>')
    return _frame(title, body, y_hi, [(name, j) for j, (name, _) in enumerate(series)])
