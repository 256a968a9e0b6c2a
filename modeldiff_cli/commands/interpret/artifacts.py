"""Everything `interpret` writes, declared once (``core.spine.declared``): the writers (``write.py``,
``report.py``), summary.json's descriptions, ``--help`` and the report's renderer (``report/renderers/interpret.py``)
read names and columns here. The crosscoder's files are per crosscoder layer (``{layer}``), written with
``--crosscoder`` (the default). Light: no torch."""

from __future__ import annotations

from ...core.spine.declared import Artifact

# what a feature of features.json may hold (in this order; a key a feature lacks is left out)
FEATURE_KEYS = (
    "id", "name", "kind", "layer", "tokens", "suppressed", "categories", "side", "share", "examples", "causal",
    "steering", "causal_effect", "specific_effect", "closing_effect", "steering_effect", "latent", "ratio_category",
    "frequency", "decoder_norms", "relative_norm", "source_category", "basis", "rank_score", "activating",
    "patchscope", "lens_tokens", "support", "reach", "reading")
LAYER_COLUMNS = ("layer", "category", "positions", "diff_norm", "relative_norm", "base_norm", "ft_norm",
                 "mean_abs_diff_norm")
COSINE_COLUMNS = ("layer", "a", "b", "cosine")


def _crosscoder(cmd) -> bool:
    return bool(cmd.crosscoder)


FEATURES = Artifact(
    "features.json", "payload", "named features, strongest causal effect first (rank_score: the removal's and the steering's KL z combined): tokens, categories, side, examples, causal and steering checks",
    columns=("features",))
LAYER_DIFF = Artifact(
    "layer_category_diff.csv", "table", "per layer x category: |mean(h_ft - h_base)|, mean norms of both models, relative norm, mean |diff|",
    columns=LAYER_COLUMNS)
COSINES = Artifact(
    "category_cosines.csv", "table", "per layer: cosine between two categories' mean differences",
    columns=COSINE_COLUMNS)
STATS = Artifact(
    "activation_stats.npz", "matrix", "mean differences [layer, category, d] and at the first N positions, norms, cosines, token relevance",
    columns=("layers", "categories", "mean_diff", "mean_diff_positions", "positions_count", "norms", "relative_norm",
             "category_cosines", "token_relevance"))
RELEVANCE = Artifact(
    "token_relevance.json", "payload", "per category, the tokens most over-represented in its text (z-scored log-odds vs the other categories)",
    columns=("score", "categories"))
CROSSCODER = Artifact(
    "crosscoder_layer{layer}.npz", "matrix", "crosscoder at one layer: decoder norms, dec_norm_diff share, frequencies, loss curve, weights",
    columns=("base_norm", "ft_norm", "share", "freq", "freq_base_view", "freq_ft_view", "freq_category", "losses",
             "W_dec", "rms"),
    when="--crosscoder", made=_crosscoder)
CROSSCODER_JSON = Artifact(
    "crosscoder_layer{layer}.json", "payload", "crosscoder at one layer: library, training settings, explained variance, side clusters, ratio categories",
    columns=("layer", "library", "input", "rms", "latents", "k", "steps", "batch", "lr", "norm_penalty", "vectors",
             "final_loss", "explained_variance", "seconds", "view_rows", "sides", "ratio_categories", "thresholds"),
    when="--crosscoder", made=_crosscoder)
HEATMAP = Artifact("layer_category_heatmap.png", "plot", "relative difference norm, layer x category")
DECODER_PLOT = Artifact(
    "decoder_norms_layer{layer}.png", "plot", "crosscoder decoder norms, base half vs ft half, one point per latent",
    when="--crosscoder", made=_crosscoder)
LOSS_PLOT = Artifact(
    "crosscoder_loss_layer{layer}.png", "plot", "crosscoder training loss by step", when="--crosscoder",
    made=_crosscoder)
VECTORS = Artifact(
    "feature_vectors.npz", "matrix", "each feature's vector (ids, layers, vectors [feature, d]; in features.json order): the direction its checks ablate and add",
    columns=("ids", "layers", "vectors"))
EFFECTS_PLOT = Artifact(
    "feature_effects.png", "plot", "per feature: its causal score with its two parts (removal and steering KL z), the ablation z in ft, the KL(base||ft) drop of the steering")
CATEGORIES_PLOT = Artifact("feature_categories.png", "plot", "per feature: its score on each category")
REPORT_MD = Artifact(
    "report.md", "text", "the report: summary, feature overview, layer-by-layer analysis, figures, conclusion")
REPORT_HTML = Artifact(
    "report.html", "html", "the same report, self-contained (figures inline as PNG data URIs)")

ARTIFACTS = (FEATURES, LAYER_DIFF, COSINES, STATS, RELEVANCE, CROSSCODER, CROSSCODER_JSON, HEATMAP, DECODER_PLOT,
             LOSS_PLOT, VECTORS, EFFECTS_PLOT, CATEGORIES_PLOT, REPORT_MD, REPORT_HTML)
