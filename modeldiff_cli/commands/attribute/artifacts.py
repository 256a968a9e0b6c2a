"""Everything `attribute` and `attribute queries` write, declared once (``core.spine.declared``): the writers
(``report.py``, ``queries.py``), summary.json's descriptions, ``--help`` and the report's renderer
(``report/renderers/attribute.py``) read names and columns here. Light: no torch, no numpy."""

from __future__ import annotations

from ...core.spine.declared import Artifact

# ---- attribute ------------------------------------------------------------------------------------------------
# every scores file; per_layer [layers x queries x train] and layers only for the methods that read model layers
SCORES = Artifact(
    "scores_{method}.npz", "matrix", "per method: scores [queries x train] (the aggregate ranking), per_layer [layers x queries x train] and layers (model methods), query_uids, train_uids",
    columns=("scores", "query_uids", "train_uids"))
RANKINGS = Artifact(
    "rankings.jsonl", "payload", "per (query, method): the 50 best training documents with score, relevance and category",
    columns=("query_uid", "method", "func", "role", "kind", "text", "top"))
# and per method m: {m}_influence_score, and per query function f: {m}_{f}_influence_score
INFLUENCE = Artifact(
    "influence_scores.jsonl", "payload", "per training document: {method}_influence_score (mean over queries) and {method}_{f}_influence_score per query function",
    columns=("uid", "func", "role", "constant", "hop_depth", "text"))
METRICS_JSON = Artifact(
    "metrics.json", "payload", "every metric per method (aggregate, per layer, wrapper -> partner), ks, layers, extraction timing, method settings (trackstar: checkpoint, damping, mixing λ), notes",
    columns=("methods", "ks", "layers", "n_train", "n_queries", "extraction", "layer_selection", "settings", "notes"))
METRICS_CSV = Artifact(
    "metrics.csv", "table", "method, layer, subset, metric, k, value",
    columns=("method", "layer", "subset", "metric", "k", "value"))
METRICS_MD = Artifact(
    "metrics.md", "text", "the printed metrics table (recall / precision@k, MAP, AUC by query kind, wrapper -> partner)")
RECALL_PLOT = Artifact("recall_at_k.png", "plot", "recall@k per method, all / base / wrapper queries")

ARTIFACTS = (SCORES, RANKINGS, INFLUENCE, METRICS_JSON, METRICS_CSV, METRICS_MD, RECALL_PLOT)

# ---- attribute queries ----------------------------------------------------------------------------------------
QUERY_KEYS = ("uid", "prompt", "completion", "func", "role", "constant", "x", "candidates", "text", "correct")
COUNT_COLUMNS = ("func", "role", "built", "kept")

KEPT = Artifact(
    "queries.jsonl", "payload", "the kept queries (prompt, completion, func, role, constant, x, candidates, correct): --queries of attribute",
    columns=QUERY_KEYS)
ALL_QUERIES = Artifact(
    "all_queries.jsonl", "payload", "every built query with `correct` (None without --model)", columns=QUERY_KEYS)
COUNTS_CSV = Artifact(
    "kept_counts.csv", "table", "per function: role, queries built, queries kept", columns=COUNT_COLUMNS)
COUNTS_JSON = Artifact(
    "kept_counts.json", "payload", "the per-function counts with the totals and the filtering model",
    columns=("functions", "built", "kept", "filtered_by"))

QUERIES_ARTIFACTS = (KEPT, ALL_QUERIES, COUNTS_CSV, COUNTS_JSON)
