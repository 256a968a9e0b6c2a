"""Small inline-SVG charts drawn from data (line curves, bars, heatmaps, labelled scatter).

Colour-blind-safe throughout: the Okabe-Ito palette for categories, a blue-white-orange diverging map and a
white-to-blue sequential one for heatmaps. Layer axes get integer ticks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
DASHES = ("", "6 3", "2 2", "8 3 2 3")

W, H = 560, 300
ML, MR, MT, MB = 58, 16, 30, 44


def _fmt(v: int | float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000 or a < 0.01:
        return f"{v:.2g}"
    return f"{v:.3g}"


def _finite(vals) -> list:
    out = []
    for v in vals:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def _ticks(lo: int | float, hi: int | float, n: int = 5) -> list:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    out, v = [], start
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    return out


def _frame(title: str, xlabel: str, ylabel: str, width: int, height: int, top: int = MT) -> list[str]:
    return [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img"><title>{escape(title)}</title>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
        _title(title, width),
        f'<text x="{ML + (width - ML - MR) / 2}" y="{height - 6}" text-anchor="middle" font-size="11">{escape(xlabel)}</text>',
        f'<text transform="translate(13 {top + (height - top - MB) / 2}) rotate(-90)" text-anchor="middle" '
        f'font-size="11">{escape(ylabel)}</text>',
    ]


def _title(title: str, width: int) -> str:
    """The chart's title, smaller when long and never wider than the chart (squeezed past 10 px type)."""
    room = width - 16
    size = max(10.0, min(13.0, room / (0.62 * max(len(title), 1))))
    fit = f' textLength="{room}" lengthAdjust="spacingAndGlyphs"' if 0.62 * size * len(title) > room else ""
    return (f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="{size:.1f}" font-weight="600"{fit}>'
            f"{escape(title)}</text>")


def _legend(labels: Sequence[str], width: int, extra: Sequence[str] = ()) -> tuple[list[tuple[str, int, int]], int]:
    """Legend items laid out in rows between the title and the plot (never over the data): ``[(label, x, y)]``
    and the height the rows take. ``extra`` = labels of swatches drawn after the series (e.g. a band)."""
    items, x, row = [], ML, 0
    for label in [*labels, *extra]:
        w = 26 + 6 * len(label)
        if x + w > width - MR and x > ML:
            x, row = ML, row + 1
        items.append((label, x, row))
        x += w + 10
    return items, (row + 1) * 14 if items else 0


def line_chart(series: dict[str, tuple[Sequence, Sequence]], title: str, xlabel: str = "layer",
               ylabel: str = "", integer_x: bool = True, band: tuple[Sequence, Sequence, Sequence] | None = None,
               width: int = W, height: int = H, band_label: str = "",
               ylim: tuple[float, float] | None = None) -> str:
    """One line per series (x values, y values); ``band`` = (x, low, high) drawn as a shaded range (in the
    legend as ``band_label`` when given). With two or more series (or a band) the legend sits above the plot.
    The y axis starts at 0 when every value is >= 0 (no truncated axis exaggerating a small difference); with
    negative values it spans them; ``ylim`` fixes the range (widened only if a value falls outside it)."""
    xs_all = _finite(x for xs, _ in series.values() for x in xs)
    ys_all = _finite(y for _, ys in series.values() for y in ys)
    if band is not None:
        xs_all += _finite(band[0])
        ys_all += _finite(band[1]) + _finite(band[2])
    if not xs_all or not ys_all:
        return f'<p class="empty">{escape(title)}: no finite values to plot</p>'
    x0, x1 = min(xs_all), max(xs_all)
    y0, y1 = min(ys_all), max(ys_all)
    nonnegative = y0 >= 0  # a quantity >= 0 (KL, NLL, TV): the axis starts at 0, so a small change looks small
    if y0 == y1:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.06
    y0, y1 = (0.0 if nonnegative else y0 - pad), y1 + pad
    if ylim is not None:  # a fixed range (fractions: 0 to 1), widened only if a value falls outside it
        y0, y1 = min(ylim[0], min(ys_all)), max(ylim[1], max(ys_all))
    if x0 == x1:
        x0, x1 = x0 - 0.5, x1 + 0.5
    show_legend = len(series) >= 2 or (band is not None and band_label)
    legend, legend_h = _legend(list(series), width, [band_label] if band is not None and band_label else []) \
        if show_legend else ([], 0)
    top = MT + legend_h + (4 if legend_h else 0)
    height += legend_h
    pw, ph = width - ML - MR, height - top - MB

    def sx(x):
        return ML + (x - x0) / (x1 - x0) * pw

    def sy(y):
        return top + ph - (y - y0) / (y1 - y0) * ph

    out = _frame(title, xlabel, ylabel, width, height, top)
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{ML}" x2="{ML + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#e5e5e5"/>'
                   f'<text x="{ML - 4}" y="{sy(t) + 4:.1f}" text-anchor="end" font-size="10">{_fmt(t)}</text>')
    if integer_x:
        xt = sorted({int(round(x)) for x in xs_all})
        step = max(1, math.ceil(len(xt) / 16))
        xt = xt[::step]
    else:
        xt = _ticks(x0, x1)
    for t in xt:
        out.append(f'<text x="{sx(t):.1f}" y="{top + ph + 14}" text-anchor="middle" font-size="10">{_fmt(t)}</text>'
                   f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top + ph}" y2="{top + ph + 3}" stroke="#333"/>')
    out.append(f'<rect x="{ML}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    if band is not None:
        pts = [(sx(float(x)), sy(float(lo))) for x, lo in zip(band[0], band[1])]
        pts += [(sx(float(x)), sy(float(hi))) for x, hi in reversed(list(zip(band[0], band[2])))]
        out.append('<polygon class="band" fill="#999" fill-opacity="0.3" points="'
                   + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + f'"><title>{escape(band_label or "band")}</title></polygon>')
    for i, (label, (xs, ys)) in enumerate(series.items()):
        colour, dash = OKABE_ITO[i % len(OKABE_ITO)], DASHES[i % len(DASHES)]
        pts = [(sx(float(x)), sy(float(y))) for x, y in zip(xs, ys) if _finite([x]) and _finite([y])]
        if not pts:
            continue
        d = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="2"{dash_attr} points="{d}">'
                   f'<title>{escape(label)}</title></polyline>')
        out.extend(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.8" fill="{colour}"/>' for a, b in pts)
    names = list(series)
    for label, x, row in legend:
        y = MT + 5 + row * 14
        if label in names:
            i = names.index(label)
            colour, dash = OKABE_ITO[i % len(OKABE_ITO)], DASHES[i % len(DASHES)]
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            swatch = f'<line x1="{x}" x2="{x + 20}" y1="{y - 3}" y2="{y - 3}" stroke="{colour}" stroke-width="2"{dash_attr}/>'
        else:
            swatch = f'<rect x="{x}" y="{y - 8}" width="20" height="9" fill="#999" fill-opacity="0.3"/>'
        out.append(f'<g class="legend">{swatch}<text x="{x + 24}" y="{y + 1}" font-size="10">{escape(label)}</text></g>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(labels: Sequence, values: Sequence, title: str, xlabel: str = "value",
              width: int = W, max_bars: int = 20) -> str:
    """Horizontal bars, largest first as given (token labels shown with their whitespace visible)."""
    labels, values = list(labels)[:max_bars], _finite(list(values)[:max_bars])
    if not values:
        return f'<p class="empty">{escape(title)}: nothing to plot</p>'
    bh, left = 16, 120
    height = MT + len(values) * bh + 36
    out = _frame(title, xlabel, "", width, height)
    lo, hi = min(0.0, min(values)), max(0.0, max(values))
    span = (hi - lo) or 1.0
    pw = width - left - MR - 40

    def sx(v):
        return left + (v - lo) / span * pw

    for i, (lab, v) in enumerate(zip(labels, values)):
        y = MT + i * bh
        a, b = sorted((sx(0.0), sx(v)))
        colour = OKABE_ITO[0] if v >= 0 else OKABE_ITO[5]
        out.append(f'<text x="{left - 4}" y="{y + 12}" text-anchor="end" font-size="11" font-family="monospace">'
                   f'{escape(_clip(token_label(lab), 18))}</text><rect x="{a:.1f}" y="{y + 2}" width="{max(b - a, 0.5):.1f}" '
                   f'height="{bh - 4}" fill="{colour}"><title>{escape(str(lab))}: {v:.4g}</title></rect>'
                   f'<text x="{b + 3:.1f}" y="{y + 12}" font-size="9">{_fmt(v)}</text>')
    out.append("</svg>")
    return "".join(out)


def _colour(v: int | float, lo: int | float, hi: int | float, diverging: bool) -> str:
    if diverging:
        m = max(abs(lo), abs(hi)) or 1.0
        t = max(-1.0, min(1.0, v / m))
        # blue (negative) - white - orange (positive): Okabe-Ito ends
        end = (0, 114, 178) if t < 0 else (230, 159, 0)
        t = abs(t)
    else:
        t = 0.0 if hi == lo else (v - lo) / (hi - lo)
        end = (0, 114, 178)
    r, g, b = (round(255 + (e - 255) * t) for e in end)
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(matrix: Sequence, rows: Sequence, cols: Sequence, title: str, row_label: str = "layer",
            col_label: str = "", diverging: bool = False, max_rows: int = 64, max_cols: int = 64) -> str:
    """A matrix as coloured cells (hover shows the value); rows are usually the layers."""
    mat = [list(r)[:max_cols] for r in list(matrix)[:max_rows]]
    vals = _finite(v for r in mat for v in r)
    if not vals:
        return f'<p class="empty">{escape(title)}: no values</p>'
    lo, hi = min(vals), max(vals)
    nr, nc = len(mat), max(len(r) for r in mat)
    cell = max(6, min(28, (W - 80) // max(nc, 1)))
    chh = max(6, min(22, 360 // max(nr, 1)))
    left, top = 84, MT + 4
    width = max(left + nc * cell + 70, 420, int(7.6 * len(title)) + 24)  # room for the title
    height = max(top + nr * chh + 40, top + 114)  # room for the colour key
    out = _frame(title, col_label, row_label, width, height)
    for i, r in enumerate(mat):
        for j, v in enumerate(r):
            f = _finite([v])
            fill = _colour(f[0], lo, hi, diverging) if f else "#eee"
            out.append(f'<rect x="{left + j * cell}" y="{top + i * chh}" width="{cell}" height="{chh}" fill="{fill}">'
                       f'<title>{escape(str(rows[i]) if i < len(rows) else str(i))}, '
                       f'{escape(str(cols[j]) if j < len(cols) else str(j))}: {_fmt(f[0]) if f else "nan"}</title></rect>')
    rstep = max(1, math.ceil(nr / 16))
    for i in range(0, nr, rstep):
        out.append(f'<text x="{left - 4}" y="{top + i * chh + chh / 2 + 4}" text-anchor="end" font-size="10">'
                   f'{escape(str(rows[i]) if i < len(rows) else str(i))}</text>')
    cstep = max(1, math.ceil(nc / 16))
    for j in range(0, nc, cstep):
        out.append(f'<text x="{left + j * cell + cell / 2}" y="{top + nr * chh + 12}" text-anchor="middle" '
                   f'font-size="10">{escape(str(cols[j]) if j < len(cols) else str(j))}</text>')
    lx = left + nc * cell + 12
    for k in range(10):
        v = hi - (hi - lo) * k / 9 if not diverging else max(abs(lo), abs(hi)) * (1 - 2 * k / 9)
        out.append(f'<rect x="{lx}" y="{top + k * 10}" width="10" height="10" fill="{_colour(v, lo, hi, diverging)}"/>')
    top_v = max(abs(lo), abs(hi)) if diverging else hi
    bot_v = -top_v if diverging else lo
    out.append(f'<text x="{lx + 13}" y="{top + 8}" font-size="9">{_fmt(top_v)}</text>'
               f'<text x="{lx + 13}" y="{top + 100}" font-size="9">{_fmt(bot_v)}</text></svg>')
    return "".join(out)


def token_label(token: str) -> str:
    """A token as a chart label: escapes for control bytes, leading / trailing spaces shown as a visible mark."""
    text = repr(str(token))[1:-1]
    core = text.strip(" ")
    lead, trail = len(text) - len(text.lstrip(" ")), len(text) - len(text.rstrip(" "))
    return "\u2423" * lead + core + "\u2423" * trail if core else "\u2423" * len(text)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _overlaps(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def scatter(points: Sequence[tuple], title: str, xlabel: str, ylabel: str, label_top: int = 8,
            count_in_title: bool = False) -> str:
    """Points (x, y, label) in rank order; up to the first ``label_top`` are labelled, each label offset beside
    its point (right, left, above or below: the first place inside the plot that overlaps no other label nor a
    labelled point; a label with no free place is left to the point's tooltip). ``count_in_title`` adds how
    many are drawn: "(top N labelled)" when they are the top N, else "(N of the top M labelled)"."""
    pts = [(float(x), float(y), str(t)) for x, y, t in points if _finite([x]) and _finite([y])]
    if not pts:
        return f'<p class="empty">{escape(title)}: nothing to plot</p>'
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    x0, x1 = (x0 - 0.5, x1 + 0.5) if x0 == x1 else (x0 - (x1 - x0) * 0.04, x1 + (x1 - x0) * 0.04)
    y0, y1 = (y0 - 0.5, y1 + 0.5) if y0 == y1 else (y0 - (y1 - y0) * 0.06, y1 + (y1 - y0) * 0.06)
    pw, ph = W - ML - MR, H - MT - MB
    sx = lambda x: ML + (x - x0) / (x1 - x0) * pw  # noqa: E731
    sy = lambda y: MT + ph - (y - y0) / (y1 - y0) * ph  # noqa: E731
    out = [f'<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for t in _ticks(y0, y1):
        out.append(f'<text x="{ML - 4}" y="{sy(t) + 4:.1f}" text-anchor="end" font-size="10">{_fmt(t)}</text>')
    for t in _ticks(x0, x1):
        out.append(f'<text x="{sx(t):.1f}" y="{MT + ph + 14}" text-anchor="middle" font-size="10">{_fmt(t)}</text>')
    top = pts[:label_top]
    for k, (x, y, t) in enumerate(pts):
        colour = OKABE_ITO[5] if k < len(top) else OKABE_ITO[0]
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}" fill-opacity="0.75">'
                   f'<title>{escape(token_label(t))}: ({_fmt(x)}, {_fmt(y)})</title></circle>')
    taken = [(sx(x) - 3, sy(y) - 3, sx(x) + 3, sy(y) + 3) for x, y, _ in top]
    labelled = []
    for k, (x, y, t) in enumerate(top):
        label = token_label(t)
        w, h, px, py = 6.1 * len(label) + 2, 11, sx(x), sy(y)
        for anchor, lx, ly in (("start", px + 5, py + 4), ("end", px - 5, py + 4), ("middle", px, py - 6),
                               ("middle", px, py + 14)):
            left = lx if anchor == "start" else lx - w if anchor == "end" else lx - w / 2
            box = (left, ly - h + 2, left + w, ly + 2)
            inside = box[0] >= ML + 1 and box[2] <= ML + pw - 1 and box[1] >= MT + 1 and box[3] <= MT + ph - 1
            if inside and not any(_overlaps(box, o) for o in taken):
                taken.append(box)
                out.append(f'<text class="label" x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}" font-size="10" '
                           f'font-family="monospace">{escape(label)}</text>')
                labelled.append(k)
                break
    if count_in_title:
        n = len(labelled)
        title += f" (top {n} labelled)" if labelled == list(range(n)) else f" ({n} of the top {len(top)} labelled)"
    out = _frame(title, xlabel, ylabel, W, H) + out
    out.append("</svg>")
    return "".join(out)
