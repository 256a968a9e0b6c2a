"""Everything `nll` writes, declared once (``core.spine.declared``): the writer (``write.py``, ``plots.py``,
``extract.py``), summary.json's descriptions, ``--help`` and the report's renderer (``report/renderers/nll.py``)
read names and columns here. Light: no torch."""

from __future__ import annotations

from ...core.spine.declared import Artifact, option_is_not, option_set

METRICS = ("nll_a", "nll_b", "top1_a", "top1_b", "js")  # per scored position, each in the all / last views
COLUMNS = (
    "layer", "nll_a_all", "nll_b_all", "delta_all", "nll_a_last", "nll_b_last", "delta_last",
    "logp_a_all", "logp_b_all", "logp_a_last", "logp_b_last",
    "top1_a_all", "top1_b_all", "top1_a_last", "top1_b_last", "js_all", "js_last",
)
# the per item x layer matrices every run holds (js_all / js_last too unless --js-mode none)
ITEM_MATRICES = tuple(f"{m}_{v}" for m in METRICS if m != "js" for v in ("all", "last"))


LAYER_METRICS = Artifact(
    "nll_layer_metrics.csv", "table",
    "per layer: NLL of A and B and their delta, log p(target), top-1 rate and JS, all / last views", columns=COLUMNS)
MATRICES = Artifact(
    "nll_matrices.npz", "matrix",
    "per item x layer: NLL, top-1 and JS of A and B (all / last views), item ids, scored positions",
    columns=("item_ids", "layers", "n_positions", *ITEM_MATRICES))
SUMMARY = Artifact(
    "nll_summary.json", "payload",
    "mode, labels, sources, items, scored positions, last layer's row, best layers, every layer's row",
    columns=("mode", "labels", "sources", "items", "scored_positions", "js_mode", "delta", "views", "last_layer",
             "best_layer", "layers"))
CURVES_PLOT = Artifact("nll_curves.png", "plot", "NLL of A and B by layer (all / last scored positions)")
DELTA_PLOT = Artifact("nll_delta.png", "plot", "NLL(B) - NLL(A) by layer (all / last scored positions)")
LENS_PLOT = Artifact("logit_lens_curves.png", "plot", "log p(target) and the target's top-1 rate of A and B by layer")
JS_PLOT = Artifact("js_curves.png", "plot", "JS(A, B) by layer (--js-mode all or last)",
                   when="--js-mode all or last", made=option_is_not("js_mode", "none"))
HIDDEN_STATES = Artifact(
    "hidden_states/{id}.npz", "matrix",
    "--save-hidden-states: one item's every-layer states 'a' and 'b' [layers, T, d] "
    "(float32; pass the directory back as --hidden-states-dir)",
    columns=("a", "b"), when="--save-hidden-states", made=option_set("save_hidden_states"))

ARTIFACTS = (LAYER_METRICS, MATRICES, SUMMARY, CURVES_PLOT, DELTA_PLOT, LENS_PLOT, JS_PLOT, HIDDEN_STATES)
