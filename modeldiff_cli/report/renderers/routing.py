"""routing: expert-usage heatmaps (each side, their difference, the significance-thresholded cells), the
per-layer curves, the top points table and the mask sweep curve with its random band."""

from __future__ import annotations

from .. import svg
from ..html import esc, table
from ..registry import comparer, renderer

CURVES = (("tv_topk", "TV of the top-k routing"), ("jaccard_topk", "Jaccard of the top-k sets"),
          ("intersection_topk", "top-k intersection"), ("usage_js", "JS of expert usage"), ("js", "JS of router probabilities"))


@renderer("routing")
def render(run, ctx) -> str:
    h = run.headline
    a, b = str(h.get("a", "a")), str(h.get("b", "b"))
    data = run.datasets
    out = []
    m = run.npz("routing_matrices.npz")
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
                    svg.heatmap(m["diff_weight"][vi].tolist(), layers, experts, f"usage {b} - {a} ({view})", col_label="expert", diverging=True)]
            if "thresholded" in m:
                maps.append(svg.heatmap(m["thresholded"][vi].tolist(), layers, experts,
                                        f"significant cells ({view}; +1 up in {b}, -1 down)", col_label="expert", diverging=True))
            panels.append(f'<div id="{pid}" class="grid">' + "".join(f"<div>{x}</div>" for x in maps) + "</div>")
        out.append("</div>" + "".join(panels))
    rows = run.csv("routing_layer_metrics.csv") or []
    if rows:
        xs = [r["layer"] for r in rows]
        out.append('<h2>Per-layer curves</h2><div class="grid">')
        for key, what in CURVES:
            if key in rows[0]:
                series = {"all": (xs, [r.get(key) for r in rows])}
                if f"{key}_last" in rows[0]:
                    series["last"] = (xs, [r.get(f"{key}_last") for r in rows])
                out.append(svg.line_chart(series, f"{what}: {a} vs {b} on {data}", ylabel=key))
        out.append("</div>")
        cols = list(rows[0])
        out.append(table(cols, [[r.get(c) for c in cols] for r in rows], ctx.ids, filterable=False))
    points = h.get("top_points") or []
    if points:
        out.append("<h2>Top points</h2>" + table(
            ["layer", "expert", f"diff ({b} - {a})", a, b, "q", "95% CI"],
            [[p.get("layer"), p.get("router"), p.get("diff"), p.get("a"), p.get("b"), p.get("q"),
              ", ".join(f"{x:.3g}" for x in (p.get("ci95") or []))] for p in points], ctx.ids))
    sweep = run.csv("mask_sweep.csv", warn=False)
    if sweep:
        metrics = [k for k in ("gap_closed", "gain_undone", "kl_masked_base") if k in sweep[0]] or \
            [k for k in sweep[0] if k.endswith("_std")][:1]
        out.append('<h2>Mask sweep</h2><div class="grid">')
        for metric in metrics:
            for mode in sorted({r["mode"] for r in sweep}):
                top = sorted((r for r in sweep if r["mode"] == mode and r["control"] in ("top", "none")), key=lambda r: r["n_masked"])
                rnd = sorted((r for r in sweep if r["mode"] == mode and r["control"] == "random_mean"), key=lambda r: r["n_masked"])
                band = None
                if rnd and f"{metric}_std" in rnd[0]:
                    band = ([r["n_masked"] for r in rnd], [r[metric] - (r[f"{metric}_std"] or 0) for r in rnd],
                            [r[metric] + (r[f"{metric}_std"] or 0) for r in rnd])
                series = {"top experts masked": ([r["n_masked"] for r in top], [r.get(metric) for r in top])}
                if rnd:
                    series["random (mean; band +/- std)"] = ([r["n_masked"] for r in rnd], [r.get(metric) for r in rnd])
                out.append(svg.line_chart(series, f"mask sweep ({mode}): {metric}", xlabel="experts masked",
                                          ylabel=metric, band=band))
        out.append("</div>")
    return "".join(out)


@comparer("routing")
def compare(run) -> dict:
    rows = run.csv("routing_layer_metrics.csv") or []
    return {"curves": {"TV of top-k routing": [[r["layer"] for r in rows], [r.get("tv_topk") for r in rows]]},
            "ylabel": "TV (top-k)"}
