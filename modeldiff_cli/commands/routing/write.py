"""Everything `routing` writes (through ``core.spine.artifacts``; the names, columns and descriptions are declared
in ``artifacts.py``), and the headline."""

from __future__ import annotations

import numpy as np

from ...core.spine import artifacts
from ...core.spine.command import Result
from .artifacts import (
    CURVE_PLOT,
    HEATMAPS,
    LAYER_METRICS,
    MASK_SWEEP,
    MATRICES,
    PAIR_SAMPLE,
    PAIR_TOKEN,
    SIGNIFICANT_PLOT,
    SUMMARY,
    SWEEP_PLOT,
    layer_columns,
    points,
)
from .collect import Stats
from .plots import curve, heatmap, sweep_curve


def _on(cmd) -> str:
    """" on <dataset(s)>" for the figure titles."""
    names = cmd.fp.names
    return f" on {' + '.join(names)}" if names else ""


def layer_rows(stats: Stats, results: dict, cmd) -> list[dict]:
    ua, ub = results["usage_a"], results["usage_b"]
    pair = results["pair"]
    rows = []
    for li, layer in enumerate(stats.layers):
        row: dict = {"layer": layer}
        if pair is not None:
            for key in (*PAIR_SAMPLE, *PAIR_TOKEN):
                row[key] = float(pair[key][0, li])
        ha, hb = float(ua["entropy"][0, li]), float(ub["entropy"][0, li])
        row.update({"entropy_a": ha, "entropy_b": hb, "eff_experts_a": float(np.exp(ha)),
                    "eff_experts_b": float(np.exp(hb)), "usage_tv": float(results["usage_tv"][0, li]),
                    "usage_js": float(results["usage_js"][0, li]), "prob_js": float(results["prob_js"][0, li]),
                    "significant_cells": int((results["q"][li] < 0.05).sum())})
        for v, view in enumerate(stats.views):
            row[f"tokens_a_{view}"] = int(stats.a.tokens[v])
            row[f"tokens_b_{view}"] = int(stats.b.tokens[v])
            if v and pair is not None:
                for key in PAIR_SAMPLE:
                    row[f"{key}_{view}"] = float(pair[key][v, li])
        rows.append(row)
    return rows


def write_outputs(run, stats: Stats, results: dict, cmd) -> None:
    paired = results["pair"] is not None
    a, b = cmd.sides
    artifacts.write_csv(run.file(LAYER_METRICS.path()), layer_rows(stats, results, cmd),
                        layer_columns(stats.views, paired))
    ua, ub = results["usage_a"], results["usage_b"]
    mats = {"layers": np.array(stats.layers), "views": np.array(stats.views), "experts": stats.n_experts,
            "top_k": stats.k, "model_top_k": stats.model_k, "thresholds": np.array(results["thresholds"]),
            "thresholded": results["thresholded"].numpy(), "significant": results["significant"].numpy(),
            "q_alpha": results["q_alpha"], "p": results["p"].numpy(), "q": results["q"].numpy(),
            "tokens_a": stats.a.tokens.numpy(), "tokens_b": stats.b.tokens.numpy(),
            "usage_tv": results["usage_tv"].numpy(), "usage_js": results["usage_js"].numpy(),
            "prob_js": results["prob_js"].numpy(), "entropy_a": ua["entropy"].numpy(), "entropy_b": ub["entropy"].numpy()}
    for kind in ("weight", "slot", "prob"):
        mats[f"usage_a_{kind}"] = ua[kind].numpy()
        mats[f"usage_b_{kind}"] = ub[kind].numpy()
        mats[f"diff_{kind}"] = results["diff"][kind].numpy()
    if paired:
        mats.update({k: v.numpy() for k, v in results["pair"].items()})
    artifacts.write_npz(run.file(MATRICES.path()), **mats)
    fwd, rev = points(cmd)
    artifacts.write_json(run.file(fwd.path()), results["points"])
    artifacts.write_json(run.file(rev.path()), results["reverse"])
    artifacts.write_json(run.file(SUMMARY.path()), summary(stats, results, cmd))
    for view, family in HEATMAPS.items():
        v = stats.views.index(view)
        for side, usage in ((a, ua), (b, ub)):
            heatmap(run.file(family.path(map=_safe(side))), usage["weight"][v].numpy(), stats.layers,
                    f"{side}: weight usage ({view}){_on(cmd)}")
        heatmap(run.file(family.path(map="diff")), results["diff"]["weight"][v].numpy(), stats.layers,
                f"weight usage {b} - {a} ({view}){_on(cmd)}", diverging=True)
        heatmap(run.file(family.path(map="thresholded")), results["thresholded"][v].numpy().astype(float),
                stats.layers, f"thresholded {b} - {a} ({view}, |diff| >= {results['thresholds'][v]:.4f}){_on(cmd)}", diverging=True)
    heatmap(run.file(SIGNIFICANT_PLOT.path()), results["significant"].numpy().astype(float), stats.layers,
            f"significant cells {b} - {a} (all, q < {results['q_alpha']:g}: +1 up in {b}, -1 down){_on(cmd)}",
            diverging=True)
    L, on = stats.layers, _on(cmd)
    if paired:
        pair = results["pair"]
        for key, label in (("tv_topk", "TV over the union of top-k sets"), ("jaccard_topk", "Jaccard of top-k sets"),
                           ("intersection_topk", "top-k intersection size"), ("js", "JS of router distributions (nats)")):
            curve(run.file(CURVE_PLOT.path(curve=key)), L,
                  {view: pair[key][v].numpy() for v, view in enumerate(stats.views)}, label, f"{label}: {a} vs {b}{on}")
    for key, label, title in (("usage_tv", "TV of mean weight usage", "TV of mean usage"),
                              ("usage_js", "JS of mean weight usage (nats)", "JS of mean usage")):
        curve(run.file(CURVE_PLOT.path(curve=key)), L,
              {view: results[key][v].numpy() for v, view in enumerate(stats.views)}, label, f"{title}: {a} vs {b}{on}")


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


def summary(stats: Stats, results: dict, cmd) -> dict:
    a, b = cmd.sides
    top = [{**pt, "ci95": ci} for pt, ci in zip(results["top"], results["intervals"], strict=True)]
    pair = results["pair"]
    return {
        "mode": cmd.mode, "sides": {"a": a, "b": b}, "moe_layers": stats.layers, "experts": stats.n_experts,
        "top_k": stats.k, "model_top_k": stats.model_k, "views": stats.views,
        "tokens": {"a": stats.a.tokens.tolist(), "b": stats.b.tokens.tolist()},
        "samples": {"a": stats.a.samples, "b": stats.b.samples},
        "usage": "weight usage: top-k weights renormalised over the top k, token-weighted mean (X4A)",
        "thresholds": dict(zip(stats.views, results["thresholds"], strict=True)),
        "top_points": top,
        "significant_cells_q05": int((results["q"] < 0.05).sum()),
        "curves": {k: v[0].tolist() for k, v in pair.items()} if pair is not None else {},
        "usage_tv": results["usage_tv"][0].tolist(), "usage_js": results["usage_js"][0].tolist(),
    }


def write_sweep(run, sweep: dict, cmd) -> None:
    artifacts.write_csv(run.file(MASK_SWEEP.path()), sweep["rows"], sweep["columns"])
    for metric in sweep["plot"]:
        sweep_curve(run.file(SWEEP_PLOT.path(metric=metric)), sweep["rows"], metric,
                    "{} vs {}{}".format(*cmd.sides, _on(cmd)))


def headline(results: dict, sweep: dict | None, cmd) -> Result:
    a, b = cmd.sides
    top = [{**pt, "ci95": ci} for pt, ci in zip(results["top"], results["intervals"], strict=True)]
    figures: dict = {"mode": cmd.mode, "a": a, "b": b,
                     "top_points": [{k: pt[k] for k in ("layer", "router", "diff", "a", "b", "q", "ci95")} for pt in top],
                     "significant_cells_q05": int((results["q"] < 0.05).sum())}
    lines = [f"top cells by |difference|, weight usage {b} - {a} (all positions; +: {b} uses the expert more, "
             "-: less; q: two-proportion z-test, Benjamini-Hochberg):"]
    for pt in top:
        lo, hi = pt["ci95"]
        lines.append(f"  layer {pt['layer']:>3} expert {pt['router']:>4}  {pt['diff']:+.4f}  ({a} {pt['a']:.4f} -> "
                     f"{b} {pt['b']:.4f})  q={pt['q']:.2e}  95% CI [{lo:+.4f}, {hi:+.4f}]")
    if results["pair"] is not None:
        tv = results["pair"]["tv_topk"][0]
        layers = sorted({pt["layer"] for pt in results["points"]})
        figures["tv_topk"] = dict(zip(map(str, layers), tv.tolist(), strict=True))
        lines.append("TV of top-k routing by layer: " + ", ".join(f"L{layer} {v:.3f}" for layer, v in zip(layers, tv.tolist(), strict=True)))
    if sweep is not None:
        figures["sweep"] = sweep["headline"]
        lines.extend(sweep["lines"])
    return Result(headline=figures, lines=lines)
