"""routing: expert-usage heatmaps (each side, their difference, the significant cells: q < 0.05 in the all view,
X4A's largest-|difference| map in every view), the per-layer curves, the top cells table (ranked by |difference|,
signed) and the mask sweep curve with its random band."""

from __future__ import annotations

import numpy as np

from ...commands.routing.artifacts import LAYER_METRICS, MASK_SWEEP, MATRICES
from .. import svg
from ..finding import num, signed
from ..html import esc, table
from ..registry import comparer, headliner, renderer

CURVES = (("tv_topk", "TV of the top-k routing", "TV"), ("jaccard_topk", "Jaccard of the top-k sets", "Jaccard"),
          ("intersection_topk", "top-k intersection", "intersection"), ("usage_js", "JS of expert usage", "JS"),
          ("js", "JS of router probabilities", "JS"))


@renderer("routing")
def render(run, ctx) -> str:
    h = run.headline
    a, b = str(h.get("a", "a")), str(h.get("b", "b"))
    data = run.datasets
    out = []
    m = run.read(MATRICES)
    if m is not None and "usage_a_weight" in m:
        views = [str(v) for v in m.get("views", ["all"])]
        layers = [int(x) for x in m["layers"]]
        experts = list(range(m["usage_a_weight"].shape[-1]))
        out.append('<h2>Expert usage</h2><div class="tabs">')
        panels = []
        for vi, view in enumerate(views):
            pid = ctx.ids("view")
            out.append(f'<button data-panel="{pid}">{esc(view)}</button>')
            maps = [svg.heatmap(m["usage_a_weight"][vi].tolist(), layers, experts, f"{a}: weight usage ({view}) on {data}", col_label="expert"),
                    svg.heatmap(m["usage_b_weight"][vi].tolist(), layers, experts, f"{b}: weight usage ({view}) on {data}", col_label="expert"),
                    svg.heatmap(m["diff_weight"][vi].tolist(), layers, experts, f"usage {b} - {a} ({view}) on {data}", col_label="expert", diverging=True)]
            if vi == 0 and "q" in m:
                sig = significance(m)
                maps.append(svg.heatmap(sig.tolist(), layers, experts,
                                        f"significant cells ({view}, q < {_alpha(m):g}: +1 up in {b}, -1 down; "
                                        f"{int(np.abs(sig).sum())} cells) on {data}", col_label="expert", diverging=True))
            if "thresholded" in m:
                thr = m["thresholds"][vi] if "thresholds" in m else None
                size = f"|diff| >= {float(thr):.3g}, " if thr is not None else ""
                maps.append(svg.heatmap(m["thresholded"][vi].tolist(), layers, experts,
                                        f"largest differences ({view}; {size}X4A's 99th-percentile map, not a test) "
                                        f"on {data}", col_label="expert", diverging=True))
            panels.append(f'<div id="{pid}" class="grid">' + "".join(f"<div>{x}</div>" for x in maps) + "</div>")
        out.append("</div>" + "".join(panels))
    rows = run.read(LAYER_METRICS) or []
    if rows:
        xs = [r["layer"] for r in rows]
        out.append('<h2>Per-layer curves</h2><div class="grid">')
        for key, what, short in CURVES:
            if key in rows[0]:
                series = {"all": (xs, [r.get(key) for r in rows])}
                if f"{key}_last" in rows[0]:
                    series["last"] = (xs, [r.get(f"{key}_last") for r in rows])
                out.append(svg.line_chart(series, f"{what}: {a} vs {b} on {data}", ylabel=short,
                                          ylim=(0.0, 1.0) if key.endswith("_topk") else None))
        out.append("</div>")
        cols = list(rows[0])
        out.append(table(cols, [[r.get(c) for c in cols] for r in rows], ctx.ids, filterable=False))
    points = h.get("top_points") or []
    if points:
        out.append(f"<h2>Top cells</h2><p class=\"muted\">the {len(points)} cells with the largest |difference| "
                   f"in weight usage, increases (+, {esc(b)} uses the expert more) and drops (-) alike</p>" + table(
            ["layer", "expert", f"diff ({b} - {a})", a, b, "q", "95% CI"],
            [[p.get("layer"), p.get("router"), p.get("diff"), p.get("a"), p.get("b"), p.get("q"),
              ", ".join(f"{x:.3g}" for x in (p.get("ci95") or []))] for p in points], ctx.ids))
    sweep = run.read(MASK_SWEEP, optional=True)  # with --sweep
    if sweep:
        out.append(sweep_section(sweep, f"{a} vs {b} on {data}"))
    return "".join(out)


def _alpha(m) -> float:
    return float(m["q_alpha"]) if "q_alpha" in m else 0.05


def significance(m) -> np.ndarray:
    """+1 / -1 (the sign of the all-view weight-usage difference) where q < alpha, 0 elsewhere: the run's own
    ``significant`` map, or computed from ``q`` and ``diff_weight`` for runs written before it."""
    if "significant" in m:
        return np.asarray(m["significant"], dtype=float)
    return np.where(np.asarray(m["q"]) < _alpha(m), np.sign(np.asarray(m["diff_weight"][0])), 0.0)


# base vs ft masks ft: gain undone, gap closed; one model on two conditions: each side's NLL change, specificity
SWEEP_METRICS = (("gain_undone", "gain undone"), ("gap_closed", "gap closed"),
                 ("kl_masked_base", "KL(ft masked || base)"), ("delta_nll_a", "delta NLL, side A"),
                 ("delta_nll_b", "delta NLL, side B"), ("specificity", "specificity"))


def sweep_section(sweep: list[dict], context: str) -> str:
    """One chart per metric and mask mode: the top experts masked against the random control (mean, and a
    +/- std band when the sweep recorded it), both starting from the unmasked baseline (``n_masked`` 0)."""
    cols = set(sweep[0])
    metrics = [(k, what) for k, what in SWEEP_METRICS if k in cols]
    if not metrics or not {"n_masked", "mode", "control"} <= cols:
        return f'<h2>Mask sweep</h2><p class="muted">{MASK_SWEEP.pattern} has none of the expected columns</p>'
    base = [r for r in sweep if r["control"] == "none"]
    modes = list(dict.fromkeys(r["mode"] for r in sweep if r["control"] != "none"))
    out = ['<h2>Mask sweep</h2><div class="muted">the top experts of the ordering masked, against random experts '
           "matched per layer (mean of the draws; shaded: +/- one standard deviation)</div><div class=\"grid\">"]
    for metric, what in metrics:
        for mode in modes:
            def rows(control: str, mode: str = mode) -> list[dict]:
                picked = [r for r in sweep if r["mode"] == mode and r["control"] == control]
                return sorted(base[:1] + picked, key=lambda r: r["n_masked"])

            top, rnd = rows("top"), rows("random_mean")
            series = {"top experts masked": ([r["n_masked"] for r in top], [r.get(metric) for r in top])}
            band = None
            if len(rnd) > len(base[:1]):
                series["random experts (mean)"] = ([r["n_masked"] for r in rnd], [r.get(metric) for r in rnd])
                std = f"{metric}_std"
                if std in cols:
                    sd = [r.get(std) if isinstance(r.get(std), (int, float)) else 0.0 for r in rnd]
                    vals = [r.get(metric) for r in rnd]
                    if all(isinstance(v, (int, float)) for v in vals):
                        band = ([r["n_masked"] for r in rnd], [v - e for v, e in zip(vals, sd)],
                                [v + e for v, e in zip(vals, sd)])
            out.append(svg.line_chart(series, f"mask sweep ({mode}): {what}, {context}", xlabel="experts masked",
                                      ylabel=what, band=band, band_label="random +/- std" if band else ""))
    out.append("</div>")
    return "".join(out)


@comparer("routing")
def compare(run) -> dict:
    rows = run.read(LAYER_METRICS) or []
    return {"curves": {"TV of top-k routing": [[r["layer"] for r in rows], [r.get("tv_topk") for r in rows]]},
            "ylabel": "TV (top-k)"}


@headliner("routing")
def finding(run) -> list[tuple[str, str]]:
    """The top cell (largest |difference|), the significant cells and the TV of the top-k routing by layer."""
    h, out = run.headline, []
    a, b = str(h.get("a", "a")), str(h.get("b", "b"))
    points = h.get("top_points") or []
    if points and isinstance(points[0], dict):
        p = points[0]
        out.append((f"top cell ({b} - {a})", f"layer {p.get('layer')} expert {p.get('router')}: "
                    f"{signed(p.get('diff'))} ({a} {num(p.get('a'))} -> {b} {num(p.get('b'))}, q {num(p.get('q'), 2)})"))
    if isinstance(h.get("significant_cells_q05"), int):
        out.append(("significant cells", f"{h['significant_cells_q05']} at q < 0.05"))
    tv = h.get("tv_topk")
    if isinstance(tv, dict) and tv:
        out.append(("TV of top-k routing", ", ".join(f"L{k} {num(v)}" for k, v in tv.items())))
    return out
