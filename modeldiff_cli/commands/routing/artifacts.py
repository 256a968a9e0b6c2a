"""Everything `routing` writes, declared once (``core.spine.declared``): the writer (``write.py``), summary.json's
descriptions, ``--help`` and the report's renderer (``report/renderers/routing.py``) read names and columns here.
Light: no torch.

Some descriptions name the run's sides (``{a}``, ``{b}``: base / ft, or the --label-a / --label-b conditions),
and the per-layer metrics are described by what the mode compares (paired modes: the top-k sets of aligned
tokens too); :func:`worded` fills them in for one run (``Routing.described``, what the spine writes into
summary.json).
"""

from __future__ import annotations

from dataclasses import replace

from ...core.spine.declared import Artifact, option_set

# per-layer comparisons of aligned rows (paired modes): averaged per sample, or over tokens
PAIR_SAMPLE = ("tv_topk", "jaccard_topk", "intersection_topk")
PAIR_TOKEN = ("top1_agreement", "js")
PER_LAYER = ("entropy_a", "entropy_b", "eff_experts_a", "eff_experts_b", "usage_tv", "usage_js", "prob_js",
             "significant_cells")
# the mask sweep's rows: the condition, then (by mode) the NLLs and metrics, then the mask's counts
SWEEP_CONDITION = ("n_masked", "mode", "control", "draw")
SWEEP_COUNTS = ("masked_slots", "masked_in_topk")
POINT = ("layer", "router", "diff", "a", "b", "q")  # each record of a points file


def layer_columns(views, paired: bool) -> list[str]:
    """routing_layer_metrics.csv's header: the pair's curves (paired modes), each side's entropy and the usage
    comparisons, then per view the tokens of each side (and, paired, the per-sample curves of the other views)."""
    cols = ["layer", *(PAIR_SAMPLE + PAIR_TOKEN if paired else ()), *PER_LAYER]
    for i, view in enumerate(views):
        cols += [f"tokens_a_{view}", f"tokens_b_{view}"]
        if i and paired:
            cols += [f"{key}_{view}" for key in PAIR_SAMPLE]
    return cols


def _models(cmd) -> bool:
    return cmd.mode == "models"


def _one_model(cmd) -> bool:
    return cmd.mode != "models"


def _paired(cmd) -> bool:
    return cmd.mode != "data"


LAYER_METRICS = Artifact(
    "routing_layer_metrics.csv", "table",
    "per MoE layer: TV / Jaccard / intersection of the top-k sets (per-sample means), top-1 agreement, JS, entropy "
    "and effective experts per side, TV / JS of the mean usage, tokens per side and view, significant cells",
    columns=tuple(layer_columns(("all", "last"), paired=False)))  # every mode; first-N / assistant views vary
UNPAIRED_LAYER_METRICS = (  # its description in data mode (two datasets: no aligned rows)
    "per MoE layer: TV / JS of the two sides' mean usage distributions, entropy and effective experts per side, "
    "tokens per side and view, significant cells")
MATRICES = Artifact(
    "routing_matrices.npz", "matrix",
    "usage per side, kind (weight / slot / prob) and view [views, layers, experts], B - A differences, the "
    "significance map (q < 0.05), thresholded maps, p / q per cell, per-layer curves, top_k, thresholds",
    columns=("layers", "views", "experts", "top_k", "model_top_k", "thresholds", "thresholded", "significant",
             "q_alpha", "p", "q", "tokens_a", "tokens_b", "usage_tv", "usage_js", "prob_js", "entropy_a",
             "entropy_b", *(f"{name}_{kind}" for kind in ("weight", "slot", "prob")
                            for name in ("usage_a", "usage_b", "diff"))))  # paired modes: PAIR_* [views, layers] too
SUMMARY = Artifact(
    "routing_summary.json", "payload",
    "mode, sides, MoE layers, experts, k, views, token and sample counts, thresholds, the top cells by "
    "|difference| (sign kept) with q-values and bootstrap intervals, per-layer curves",
    columns=("mode", "sides", "moe_layers", "experts", "top_k", "model_top_k", "views", "tokens", "samples",
             "usage", "thresholds", "top_points", "significant_cells_q05", "curves", "usage_tv", "usage_js"))
_FORWARD = ("every (layer, expert) cell sorted by weight usage {b} - {a} descending: layer, router (expert), diff, "
            "a, b, q")
_REVERSE = "every cell sorted by {a} - {b} descending (same fields; here a is {b}, b is {a})"
POINTS_FT = Artifact("points_ft_minus_base.json", "payload", _FORWARD, columns=POINT, when="--base/--ft",
                     made=_models)
POINTS_BASE = Artifact("points_base_minus_ft.json", "payload", _REVERSE, columns=POINT, when="--base/--ft",
                       made=_models)
POINTS_B = Artifact("points_b_minus_a.json", "payload", _FORWARD, columns=POINT, when="--model", made=_one_model)
POINTS_A = Artifact("points_a_minus_b.json", "payload", _REVERSE, columns=POINT, when="--model", made=_one_model)
HEATMAP_ALL = Artifact(
    "heatmap_{map}_all.png", "plot",
    "layer x expert heatmap, all positions (a side's weight usage, the difference, or the thresholded difference)")
SIGNIFICANT_PLOT = Artifact(
    "heatmap_significant_all.png", "plot",
    "layer x expert, all positions: +1 where {b} uses the expert more, -1 where less, at q < 0.05 (two-proportion "
    "z-test, Benjamini-Hochberg); 0 elsewhere")
HEATMAP_LAST = Artifact("heatmap_{map}_last.png", "plot", "layer x expert heatmap, last position of each sample")
CURVE_PLOT = Artifact(
    "curve_{curve}.png", "plot",
    "a per-layer curve (TV / Jaccard / intersection of the top-k sets, JS), integer layer ticks")
MASK_SWEEP = Artifact(
    "mask_sweep.csv", "table",
    "the mask sweep: per n_masked, mode and control (none / top / random / random_mean) the NLL per side, "
    "gain_undone, KL(ft_masked||base), gap_closed, delta NLL per condition, masked experts found in a top-k "
    "(must be 0)",
    columns=(*SWEEP_CONDITION, *SWEEP_COUNTS), when="--sweep", made=option_set("sweep"))  # the NLLs and metrics by mode
SWEEP_PLOT = Artifact(
    "mask_sweep_{metric}.png", "plot",
    "sweep curve against the number of masked experts, random control as a mean +/- std band",
    when="--sweep", made=option_set("sweep"))

# the significance map first: the heatmap_*_all.png family's glob matches its name too (summary.json describes an
# exact name by its own declaration whatever the order)
ARTIFACTS = (LAYER_METRICS, MATRICES, SUMMARY, POINTS_FT, POINTS_BASE, POINTS_B, POINTS_A, SIGNIFICANT_PLOT,
             HEATMAP_ALL, HEATMAP_LAST, CURVE_PLOT, MASK_SWEEP, SWEEP_PLOT)
HEATMAPS = {"all": HEATMAP_ALL, "last": HEATMAP_LAST}  # the views with heatmaps
_BY_SIDES = (POINTS_FT, POINTS_BASE, POINTS_B, POINTS_A, SIGNIFICANT_PLOT)  # descriptions naming {a} and {b}


def points(cmd) -> tuple[Artifact, Artifact]:
    """The run's two points files: sorted by b - a (the sweep's default order), and by a - b."""
    return (POINTS_FT, POINTS_BASE) if _models(cmd) else (POINTS_B, POINTS_A)


def worded(cmd) -> tuple[Artifact, ...]:
    """The declarations as one run describes its files: its sides in place of ``{a}`` / ``{b}``, and the
    per-layer metrics described without the pair's curves in data mode."""
    a, b = cmd.sides
    out = []
    for art in ARTIFACTS:
        if art in _BY_SIDES:
            art = replace(art, description=art.description.format(a=a, b=b))
        elif art is LAYER_METRICS and not _paired(cmd):
            art = replace(art, description=UNPAIRED_LAYER_METRICS)
        out.append(art)
    return tuple(out)

