"""Everything `lens` writes, declared once (``core.spine.declared``): the writer (``write.py``), summary.json's
descriptions, ``--help`` and the report's renderer (``report/renderers/lens.py``) read names and columns here.
Light: no torch."""

from __future__ import annotations

from ...core.spine.declared import Artifact

SCALARS = ("kl_ft_base", "kl_base_final", "kl_ft_final", "top1_agreement")  # the per-layer means
COLUMNS = ("layer", "positions", *SCALARS)


def _prompt(cmd) -> bool:
    return cmd.prompt is not None


LAYER_METRICS = Artifact(
    "layer_metrics.csv", "table", "per layer: positions, KL(ft||base), each model's KL to its final output, top-1 agreement",
    columns=COLUMNS)
LAYER_METRICS_JSON = Artifact(
    "layer_metrics.json", "payload", "the per-layer metrics with the readout, positions view and shared vocabulary",
    columns=("method", "positions", "kl_direction", "shared_vocab", "samples", "layers"))
PROMOTED = Artifact(
    "promoted_tokens.json", "payload", "per layer, the tokens ft promotes / suppresses most (mean log-prob diff)",
    columns=("score", "promoted", "suppressed"))
MATRICES = Artifact(
    "lens_matrices.npz", "matrix", "per-layer curves, per-sample matrices, mean log-prob diff [layers, vocab], top ids",
    columns=("layers", "sample_index", *SCALARS, "positions", "sample_kl_ft_base", "sample_top1_agreement",
             "mean_logprob_diff", "promoted_ids", "promoted_values", "suppressed_ids", "suppressed_values"))
KL_PLOT = Artifact("kl_by_layer.png", "plot", "KL(ft||base) and each model's KL to its own final output, by layer")
AGREEMENT_PLOT = Artifact("agreement_by_layer.png", "plot", "top-1 agreement of base and ft, by layer")
PROMPT_TABLE = Artifact(
    "prompt_top_tokens.json", "payload", "--prompt: each model's top-1 token per position x layer",
    when="--prompt", made=_prompt)
PROMPT_TABLE_PLOT = Artifact(
    "prompt_top_tokens.png", "plot", "--prompt: the top-1 token table of each model as a heat map",
    when="--prompt", made=_prompt)

ARTIFACTS = (LAYER_METRICS, LAYER_METRICS_JSON, PROMOTED, MATRICES, KL_PLOT, AGREEMENT_PLOT, PROMPT_TABLE,
             PROMPT_TABLE_PLOT)
