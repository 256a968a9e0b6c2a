"""Ranking metrics against ground truth: recall/precision@k, recall@k as a share of its ceiling, exact average precision, ROC-AUC (Mann-Whitney,
ties count half) and the composition of the top k. Pure numpy; each metric is computed per query, averaged
per function (query group), then across functions, separately for each query kind (base / wrapper / all).

Ties in the score are broken by training-set order (stable sort) for the top-k metrics and average precision;
ROC-AUC gives tied (relevant, irrelevant) pairs half a count.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ...core.typing import (
    CategoryMatrix,
    DocRelevance,
    DocScores,
    QueryValues,
    RankMatrix,
    RelevanceMatrix,
    ScoreMatrix,
)

KS = (1, 5, 10, 20, 50)
CATEGORIES = ("own", "partner", "distractor", "other")  # codes 1, 2, 3, 0 in a category matrix
CATEGORY_CODE = {"other": 0, "own": 1, "partner": 2, "distractor": 3}


def ranking(scores: ScoreMatrix) -> RankMatrix:
    """Training indices per query, best first (ties: lower index first)."""
    return np.argsort(-scores, axis=1, kind="stable")


def average_ranks(x: DocScores) -> DocScores:
    """1-based ranks, ascending, tied values get the mean of their ranks."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    new = np.r_[True, xs[1:] != xs[:-1]]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + 1 + ends) / 2.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = avg[np.cumsum(new) - 1]
    return ranks


def roc_auc(scores: DocScores, relevant: DocRelevance) -> float:
    """Mann-Whitney AUC: P(score of a relevant doc > an irrelevant one), ties count half. NaN if undefined."""
    pos = int(relevant.sum())
    neg = len(relevant) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    r = average_ranks(np.asarray(scores, dtype=np.float64))
    return float((r[relevant].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def per_query(
    scores: ScoreMatrix, relevant: RelevanceMatrix, category: CategoryMatrix,
    ks: tuple[int, ...] = KS,
) -> dict[str, QueryValues]:
    """Every metric for every query (NaN where a query has no relevant document)."""
    Q, N = scores.shape
    order = ranking(scores)
    rel_sorted = np.take_along_axis(relevant, order, axis=1)
    cat_sorted = np.take_along_axis(category, order, axis=1)
    n_rel = relevant.sum(1).astype(np.float64)
    has = n_rel > 0
    hits = np.cumsum(rel_sorted, axis=1)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        ke = min(k, N)
        out[f"recall@{k}"] = np.where(has, hits[:, ke - 1] / np.maximum(n_rel, 1), np.nan)
        out[f"precision@{k}"] = np.where(has, hits[:, ke - 1] / ke, np.nan)
        # recall@k as a share of its ceiling min(1, k / |relevant|): a query with more relevant documents than k
        # cannot reach recall 1 in its top k (= hits / min(k, |relevant|))
        out[f"recall_of_ceiling@{k}"] = np.where(has, hits[:, ke - 1] / np.maximum(np.minimum(n_rel, ke), 1), np.nan)
        for name in CATEGORIES:
            out[f"top{k}_{name}"] = (cat_sorted[:, :ke] == CATEGORY_CODE[name]).mean(1)
    prec_at_i = hits / np.arange(1, N + 1)[None, :]
    ap = (prec_at_i * rel_sorted).sum(1) / np.maximum(n_rel, 1)
    out["map"] = np.where(has, ap, np.nan)
    out["auc"] = np.array([roc_auc(scores[q], relevant[q]) for q in range(Q)])
    return out


def grouped_mean(values: QueryValues, groups: list[str], rows: np.ndarray) -> float:
    """Mean over groups of the mean over each group's rows (NaN rows ignored)."""
    by: dict[str, list[float]] = defaultdict(list)
    for q in rows:
        if np.isfinite(values[q]):
            by[groups[q]].append(float(values[q]))
    means = [float(np.mean(v)) for v in by.values() if v]
    return float(np.mean(means)) if means else float("nan")


def summarize(
    scores: ScoreMatrix, relevant: RelevanceMatrix, category: CategoryMatrix,
    groups: list[str], kinds: list[str], ks: tuple[int, ...] = KS,
) -> dict[str, dict[str, float]]:
    """``{subset: {metric: value}}`` for subset in all / base / wrapper (those present), function-averaged."""
    pq = per_query(scores, relevant, category, ks)
    subsets = {"all": np.arange(len(groups))}
    for kind in ("base", "wrapper"):
        rows = np.array([i for i, k in enumerate(kinds) if k == kind], dtype=int)
        if len(rows):
            subsets[kind] = rows
    out: dict[str, dict[str, float]] = {}
    for name, rows in subsets.items():
        out[name] = {m: grouped_mean(v, groups, rows) for m, v in pq.items()}
        out[name]["n_queries"] = int(len(rows))
        out[name]["n_functions"] = len({groups[q] for q in rows})
    return out


def partner_summary(
    scores: ScoreMatrix, category: CategoryMatrix, groups: list[str], rows: np.ndarray,
    ks: tuple[int, ...] = (10, 50),
) -> dict[str, float]:
    """Recall@k, MAP and AUC of the partner documents alone (wrapper queries -> their base function's docs)."""
    if not len(rows):
        return {}
    partner = (category == CATEGORY_CODE["partner"])[rows]
    pq = per_query(scores[rows], partner, np.zeros_like(partner, dtype=np.int64), ks)
    sub = [groups[q] for q in rows]
    keep = [f"recall@{k}" for k in ks] + [f"recall_of_ceiling@{k}" for k in ks] + ["map", "auc"]
    return {f"partner_{m}": grouped_mean(pq[m], sub, np.arange(len(rows))) for m in keep}
