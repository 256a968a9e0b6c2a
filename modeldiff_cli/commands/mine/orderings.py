"""Orderings of the vocabulary built from the accumulated statistics (the token view — display, filters and
lower-case consolidation — is ``core.data.token_views``). Pure functions: statistics in, JSON-ready dicts out."""

from __future__ import annotations

import torch
from torch import Tensor

from ...core.data.token_views import TokenView, ranked_groups
from .nmf import Topics
from .stats import TokenStats

LABELS = {
    "top-k-occurring": "Top-K occurring: % of positions where the token is among the K most promoted",
    "fraction-positive-diff": "Fraction of positions where the fine-tuned logit exceeds the base logit",
}


def ordering_values(stats: TokenStats, kind: str) -> Tensor:
    """float64 [V]: top-k-occurring = count in top-K positive / positions x 100; fraction-positive-diff =
    count of positive diffs / positions."""
    n = max(stats.total_positions, 1)
    if kind == "top-k-occurring":
        return stats.count_topk_pos.double() / n * 100.0
    if kind == "fraction-positive-diff":
        return stats.count_positive.double() / n
    raise ValueError(kind)


def entry(stats: TokenStats, view: TokenView, ids: list[int], value: float) -> dict:
    n = max(stats.total_positions, 1)
    first = ids[0]
    item = {
        "token_id": first,
        "token_str": view.strings[first],
        "ordering_value": float(value),
        "avg_logit_diff": float(stats.sum_diff[ids].sum() / (n * len(ids))),
        "count_positive": int(stats.count_topk_pos[ids].sum()),
        "count_negative": int(stats.count_topk_neg[ids].sum()),
    }
    if len(ids) > 1:
        item["merged_token_ids"] = ids
        item["merged_token_strs"] = [view.strings[i] for i in ids]
    return item


def rank(values: Tensor, view: TokenView, stats: TokenStats, top_n: int, kind: str) -> list[dict]:
    """Kept tokens ranked by value (ties: lower id first); consolidated groups merge their statistics:
    counts are summed (top-k-occurring), fractions averaged over the group's members."""
    merge = "sum" if kind == "top-k-occurring" else "mean"
    return [entry(stats, view, ids, value) for ids, value in ranked_groups(values, view, top_n, merge)]


def make_ordering(kind: str, dataset: str, stats: TokenStats, view: TokenView, top_n: int) -> dict:
    values = ordering_values(stats, kind)
    return {
        "ordering_id": kind,
        "display_label": LABELS[kind],
        "tokens": rank(values, view, stats, top_n, kind),
        "metadata": {"dataset": dataset, "total_positions": stats.total_positions, "top_k": stats.top_k,
                     **view.filters},
    }


def nmf_ordering(t: int, dataset: str, topics: Topics, stats: TokenStats, view: TokenView, top_n: int,
                 settings: dict) -> dict:
    """Topic ``t`` as an ordering: its tokens ranked by their weight in the topic."""
    n = max(stats.total_positions, 1)
    w = topics.weights[t]
    toks = []
    for j in torch.argsort(-w, stable=True)[:top_n].tolist():
        if w[j] <= 0:
            break
        i = int(topics.token_ids[j])
        toks.append({"token_id": i, "token_str": view.strings[i], "ordering_value": float(w[j]),
                     "avg_logit_diff": float(stats.sum_diff[i] / n), "count_positive": int(stats.count_topk_pos[i]),
                     "count_negative": int(stats.count_topk_neg[i])})
    return {
        "ordering_id": f"nmf_topic_{t}", "display_label": f"NMF topic {t} (mass {float(topics.mass[t]):.1%})",
        "tokens": toks,
        "metadata": {"dataset": dataset, "topic": t, "mass": float(topics.mass[t]),
                     "prevalence": float(topics.prevalence[t]), "mode": settings["mode"], "beta": settings["beta"],
                     "orthogonal": settings["orthogonal"], "topics": topics.weights.shape[0], "seed": settings["seed"],
                     "iterations": topics.iterations, "matrix_entries": topics.n_entries,
                     "matrix_shape": settings["matrix_shape"], "backend": topics.backend,
                     "backend_requested": settings["backend_requested"], **view.filters},
    }
