"""Fused rankings: several methods' score matrices combined into one. Pure numpy.

* ``fused:A+B`` — reciprocal-rank fusion: score(q, d) = Σ_m 1 / (K + rank_m(q, d)), rank 1 = best, K = 60
  (Cormack et al. 2009), ties broken by training order as in every ranking here.
* ``zfused:A+B`` — z-scored sum: score(q, d) = Σ_m (s_m(q, d) − mean_d s_m(q, ·)) / std_d s_m(q, ·), each method
  standardised per query over the finite scores (−inf, e.g. unpatched documents, stays at the bottom).
"""

from __future__ import annotations

import numpy as np

from ...core.typing import ScoreMatrix

RRF_K = 60


def ranks(scores: ScoreMatrix) -> np.ndarray:
    """1-based rank of every document per query (1 = best; ties: training order)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    out = np.empty_like(order)
    rows = np.arange(scores.shape[0])[:, None]
    out[rows, order] = np.arange(1, scores.shape[1] + 1)[None, :]
    return out


def rrf(mats: list[ScoreMatrix], k: int = RRF_K) -> ScoreMatrix:
    return sum(1.0 / (k + ranks(m)) for m in mats)


def zscore_finite(s: ScoreMatrix) -> ScoreMatrix:
    fin = np.isfinite(s)
    x = np.where(fin, s, np.nan)
    mu = np.nanmean(x, 1, keepdims=True)
    sd = np.nanstd(x, 1, keepdims=True)
    z = (x - mu) / np.where(sd > 0, sd, 1.0)
    return np.where(fin, z, -np.inf)


def zsum(mats: list[ScoreMatrix]) -> ScoreMatrix:
    z = [zscore_finite(m) for m in mats]
    total = sum(np.where(np.isfinite(x), x, 0.0) for x in z)
    return np.where(np.all([np.isfinite(x) for x in z], 0), total, -np.inf)


def fuse(kind: str, mats: list[ScoreMatrix]) -> ScoreMatrix:
    return rrf(mats) if kind == "rrf" else zsum(mats)
