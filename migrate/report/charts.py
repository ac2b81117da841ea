"""Tiny inline-SVG charts for the HTML report (no JavaScript, no network, no fonts to fetch).

Every label passes through ``html.escape``; numbers are formatted here. Colours are
fixed so the screenshot test can find the bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

OLD_COLOR = "#8c96a8"
NEW_COLOR = "#1f6feb"
EXTRA_COLORS = ("#e3902b", "#2da44e", "#a371f7")
LOSS_COLOR = "#cf222e"


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f'<figure class="chart"><figcaption>{escape(label)}</figcaption>'
            f'<svg class="chart" role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f'<title>{escape(label)}</title>' + "".join(body) + "</svg></figure>")


def grouped_bars(groups: Sequence[str], series: Sequence[tuple[str, str, Sequence[float]]], *,
                 label: str, vmax: float | None = None, width: int = 640, height: int = 260) -> str:
    """Bars per group (e.g. metric) for each series (name, colour, values in group order)."""
    pad_l, pad_b, pad_t = 40, 40, 24
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    top = vmax if vmax is not None else max([v for _, _, vals in series for v in vals] + [1e-9])
    top = top if top > 0 else 1.0
    n_s = max(1, len(series))
    gw = plot_w / max(1, len(groups))
    bw = max(2.0, (gw * 0.8) / n_s)
    body = [f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 10}" y2="{pad_t + plot_h}" stroke="#555"/>']
    for frac in (0.0, 0.5, 1.0):
        y = pad_t + plot_h * (1 - frac)
        body.append(f'<text x="{pad_l - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{top * frac:.2f}</text>')
        body.append(f'<line x1="{pad_l}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#ddd"/>')
    for gi, g in enumerate(groups):
        x0 = pad_l + gi * gw + gw * 0.1
        for si, (name, color, vals) in enumerate(series):
            v = max(0.0, float(vals[gi]))
            h = plot_h * min(1.0, v / top)
            x = x0 + si * bw
            body.append(f'<rect x="{x:.1f}" y="{pad_t + plot_h - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" '
                        f'fill="{color}"><title>{escape(name)} {escape(g)}: {v:.4f}</title></rect>')
        body.append(f'<text x="{x0 + gw * 0.4:.1f}" y="{height - pad_b + 16}" font-size="11" '
                    f'text-anchor="middle">{escape(g)}</text>')
    lx = pad_l
    for name, color, _ in series:
        body.append(f'<rect x="{lx}" y="6" width="10" height="10" fill="{color}"/>'
                    f'<text x="{lx + 14}" y="15" font-size="11">{escape(name)}</text>')
        lx += 24 + 7 * len(name)
    return _svg(width, height, body, label)


def count_ticks(top: int) -> list[int]:
    """Integer y-axis ticks 0, s, 2s, ... up to the first multiple of ``s`` >= ``top``, with ``s`` a
    1/2/5 x 10^n step giving at most 5 ticks (so both ends of the axis are labelled)."""
    top = max(1, int(top))
    mag = 1
    while True:
        for m in (1, 2, 5):
            step = m * mag
            if -(-top // step) <= 4:
                return list(range(0, -(-top // step) * step + 1, step))
        mag *= 10


def histogram(bins: Sequence[str], counts: Sequence[int], *, label: str, color: str = NEW_COLOR,
              colors: Sequence[str] | None = None, x_label: str = "", y_label: str = "queries",
              width: int = 640, height: int = 240) -> str:
    """Vertical bars of counts per bin: a labelled y axis with integer ticks from 0 to the
    largest count, bin labels under the x axis, and a title on each axis."""
    pad_l, pad_b, pad_t = 52, 48, 12
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    ticks = count_ticks(max(list(counts) + [1]))
    top = ticks[-1]
    bw = plot_w / max(1, len(bins))
    body = [f'<line class="axis x-axis" x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 10}" y2="{pad_t + plot_h}" '
            f'stroke="#555"/>',
            f'<line class="axis y-axis" x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + plot_h}" stroke="#555"/>']
    for t in ticks:
        y = pad_t + plot_h * (1 - t / top)
        body.append(f'<line x1="{pad_l - 4}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#eee"/>')
        body.append(f'<text class="y-tick" x="{pad_l - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{t}</text>')
    for i, (b, c) in enumerate(zip(bins, counts)):
        h = plot_h * c / top
        x = pad_l + i * bw
        col = colors[i] if colors else color
        body.append(f'<rect x="{x + 1:.1f}" y="{pad_t + plot_h - h:.1f}" width="{max(1.0, bw - 2):.1f}" '
                    f'height="{h:.1f}" fill="{col}"><title>{escape(b)}: {c}</title></rect>')
        if len(bins) <= 12 or i % max(1, len(bins) // 10) == 0:
            body.append(f'<text class="x-tick" x="{x + bw / 2:.1f}" y="{pad_t + plot_h + 14}" font-size="10" '
                        f'text-anchor="middle">{escape(b)}</text>')
    if x_label:
        body.append(f'<text class="x-label" x="{pad_l + plot_w / 2:.1f}" y="{height - 6}" font-size="11" '
                    f'text-anchor="middle">{escape(x_label)}</text>')
    if y_label:
        cy = pad_t + plot_h / 2
        body.append(f'<text class="y-label" x="12" y="{cy:.1f}" font-size="11" text-anchor="middle" '
                    f'transform="rotate(-90 12 {cy:.1f})">{escape(y_label)}</text>')
    return _svg(width, height, body, label)


def line_chart(xs: Sequence[float], series: Sequence[tuple[str, str, Sequence[float]]], *, label: str,
               x_labels: Sequence[str], width: int = 640, height: int = 260) -> str:
    """Lines over categorical x positions (e.g. Matryoshka dims), points labelled."""
    pad_l, pad_b, pad_t, pad_r = 44, 44, 24, 48
    plot_w, plot_h = width - pad_l - pad_r, height - pad_b - pad_t
    vals = [v for _, _, ys in series for v in ys]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.05, hi + 0.05
    margin = (hi - lo) * 0.1
    bounded = all(0.0 <= v <= 1.0 for v in vals)
    lo, hi = lo - margin, hi + margin
    if bounded:  # rates: keep the axis inside [0, 1]
        lo, hi = max(0.0, lo), min(1.0, hi)
    n = max(1, len(xs) - 1)

    def px(i: int) -> float:
        return pad_l + plot_w * (i / n if len(xs) > 1 else 0.5)

    def py(v: float) -> float:
        return pad_t + plot_h * (1 - (v - lo) / (hi - lo))

    body = [f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - pad_r}" y2="{pad_t + plot_h}" stroke="#555"/>']
    for frac in (0.0, 0.5, 1.0):
        v = lo + (hi - lo) * frac
        body.append(f'<text x="{pad_l - 4}" y="{py(v) + 4:.1f}" font-size="10" text-anchor="end">{v:.3f}</text>')
        body.append(f'<line x1="{pad_l}" y1="{py(v):.1f}" x2="{width - pad_r}" y2="{py(v):.1f}" stroke="#eee"/>')
    for i, xl in enumerate(x_labels):
        body.append(f'<text x="{px(i):.1f}" y="{height - pad_b + 16}" font-size="10" text-anchor="middle">'
                    f'{escape(xl)}</text>')
    lx = pad_l
    for name, color, ys in series:
        pts = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(ys))
        body.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, v in enumerate(ys):
            body.append(f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3.5" fill="{color}">'
                        f'<title>{escape(name)} @ {escape(x_labels[i])}: {v:.4f}</title></circle>')
        body.append(f'<rect x="{lx}" y="6" width="10" height="10" fill="{color}"/>'
                    f'<text x="{lx + 14}" y="15" font-size="11">{escape(name)}</text>')
        lx += 24 + 7 * len(name)
    return _svg(width, height, body, label)
