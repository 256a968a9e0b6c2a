"""Everything `routing` writes (through ``core.spine.artifacts``), each file described, and the headline."""

from __future__ import annotations

import numpy as np

from ...core.spine import artifacts
from ...core.spine.command import Result
from .collect import Stats
from .plots import curve, heatmap, sweep_curve
from .stats import PAIR_SAMPLE, PAIR_TOKEN

HEAT_VIEWS = ("all", "last")


def _points_names(cmd) -> tuple[str, str]:
    a, b = cmd.sides
    if cmd.mode == "models":
        return "points_ft_minus_base.json", "points_base_minus_ft.json"
    return "points_b_minus_a.json", "points_a_minus_b.json"


def _on(cmd) -> str:
    """" on <dataset(s)>" for the figure titles."""
    names = cmd.fp.names
    return f" on {' + '.join(names)}" if names else ""


def describe(run, cmd, paired: bool) -> None:
    a, b = cmd.sides
    fwd, rev = _points_names(cmd)
    d = run.describe
    d("routing_layer_metrics.csv", "per MoE layer: TV / Jaccard / intersection of the top-k sets (per-sample means), "
      "top-1 agreement, JS, entropy and effective experts per side, TV / JS of the mean usage, tokens per side and "
      "view, significant cells" if paired else "per MoE layer: TV / JS of the two sides' mean usage distributions, "
      "entropy and effective experts per side, tokens per side and view, significant cells", "table")
    d("routing_matrices.npz", "usage per side, kind (weight / slot / prob) and view [views, layers, experts], B - A "
      "differences, the significance map (q < 0.05), thresholded maps, p / q per cell, per-layer curves, top_k, "
      "thresholds", "matrix")
    d("routing_summary.json", "mode, sides, MoE layers, experts, k, views, token and sample counts, thresholds, the "
      "top cells by |difference| (sign kept) with q-values and bootstrap intervals, per-layer curves", "payload")
    d(fwd, f"every (layer, expert) cell sorted by weight usage {b} - {a} descending: layer, router (expert), diff, "
      "a, b, q", "payload")
    d(rev, f"every cell sorted by {a} - {b} descending (same fields; here a is {b}, b is {a})", "payload")
    d("heatmap_*_all.png", "layer x expert heatmap, all positions (a side's weight usage, the difference, or the "
      "thresholded difference)", "plot")
    d("heatmap_significant_all.png", f"layer x expert, all positions: +1 where {b} uses the expert more, -1 where "
      "less, at q < 0.05 (two-proportion z-test, Benjamini-Hochberg); 0 elsewhere", "plot")
    d("heatmap_*_last.png", "layer x expert heatmap, last position of each sample", "plot")
    d("curve_*.png", "a per-layer curve (TV / Jaccard / intersection of the top-k sets, JS), integer layer ticks",
      "plot")
    d("mask_sweep.csv", "the mask sweep: per n_masked, mode and control (none / top / random / random_mean) the NLL "
      "per side, gain_undone, KL(ft_masked||base), gap_closed, delta NLL per condition, masked experts found in a "
      "top-k (must be 0)", "table")
    d("mask_sweep_*.png", "sweep curve against the number of masked experts, random control as a mean +/- std band",
      "plot")


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
    describe(run, cmd, paired)
    a, b = cmd.sides
    artifacts.write_csv(run.file("routing_layer_metrics.csv"), layer_rows(stats, results, cmd))
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
    artifacts.write_npz(run.file("routing_matrices.npz"), **mats)
    fwd, rev = _points_names(cmd)
    artifacts.write_json(run.file(fwd), results["points"])
    artifacts.write_json(run.file(rev), results["reverse"])
    artifacts.write_json(run.file("routing_summary.json"), summary(stats, results, cmd))
    for view in HEAT_VIEWS:
        v = stats.views.index(view)
        for side, usage in ((a, ua), (b, ub)):
            heatmap(run.file(f"heatmap_{_safe(side)}_{view}.png"), usage["weight"][v].numpy(), stats.layers,
                    f"{side}: weight usage ({view}){_on(cmd)}")
        heatmap(run.file(f"heatmap_diff_{view}.png"), results["diff"]["weight"][v].numpy(), stats.layers,
                f"weight usage {b} - {a} ({view}){_on(cmd)}", diverging=True)
        heatmap(run.file(f"heatmap_thresholded_{view}.png"), results["thresholded"][v].numpy().astype(float),
                stats.layers, f"thresholded {b} - {a} ({view}, |diff| >= {results['thresholds'][v]:.4f}){_on(cmd)}", diverging=True)
    heatmap(run.file("heatmap_significant_all.png"), results["significant"].numpy().astype(float), stats.layers,
            f"significant cells {b} - {a} (all, q < {results['q_alpha']:g}: +1 up in {b}, -1 down){_on(cmd)}",
            diverging=True)
    L, on = stats.layers, _on(cmd)
    if paired:
        pair = results["pair"]
        for key, label in (("tv_topk", "TV over the union of top-k sets"), ("jaccard_topk", "Jaccard of top-k sets"),
                           ("intersection_topk", "top-k intersection size"), ("js", "JS of router distributions (nats)")):
            curve(run.file(f"curve_{key}.png"), L, {view: pair[key][v].numpy() for v, view in enumerate(stats.views)},
                  label, f"{label}: {a} vs {b}{on}")
    curve(run.file("curve_usage_tv.png"), L, {view: results["usage_tv"][v].numpy() for v, view in enumerate(stats.views)},
          "TV of mean weight usage", f"TV of mean usage: {a} vs {b}{on}")
    curve(run.file("curve_usage_js.png"), L, {view: results["usage_js"][v].numpy() for v, view in enumerate(stats.views)},
          "JS of mean weight usage (nats)", f"JS of mean usage: {a} vs {b}{on}")


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
    artifacts.write_csv(run.file("mask_sweep.csv"), sweep["rows"], sweep["columns"])
    for metric in sweep["plot"]:
        sweep_curve(run.file(f"mask_sweep_{metric}.png"), sweep["rows"], metric, "{} vs {}{}".format(*cmd.sides, _on(cmd)))


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
