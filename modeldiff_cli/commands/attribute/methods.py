"""Scoring: cosine similarity of pooled per-sample vectors per layer (a matrix product after normalisation),
layer aggregation, optional per-layer z-scoring. Pure functions on tensors."""

from __future__ import annotations

import torch

from ...core.typing import LayerScores, QueryVectors, Scores, TrainVectors, Vectors
from .choices import AGGREGATES, BASELINES, METHODS, MODEL_METHODS, parse_methods  # noqa: F401  (re-exported)

# method -> the extracted vector it compares (None: not a cosine method)
VECTOR_OF = {"delta-h": "dh", "grad": "g", "delta-h-x-grad": "dhg", "ig": "ig"}


def normalise(x: Vectors, eps: float = 1e-12) -> Vectors:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=eps)


def cosine_scores(queries: QueryVectors, train: TrainVectors) -> LayerScores:
    """Per-layer cosine similarity of every query vector with every training vector (zero vectors score 0)."""
    return torch.einsum("lqd,lnd->lqn", normalise(queries.double()), normalise(train.double()))


def zscore_rows(s: LayerScores) -> LayerScores:
    """Standardise each query's scores within each layer (so layers with different scales weigh equally)."""
    mu = s.mean(-1, keepdim=True)
    sd = s.std(-1, keepdim=True).clamp(min=1e-12)
    return (s - mu) / sd


def aggregate(per_layer: LayerScores, how: str, zscore: bool = False,
              queries: torch.Tensor | None = None, train: torch.Tensor | None = None) -> Scores:
    """mean: mean over layers; top3: mean of each pair's three highest layer scores; all: one cosine of the
    vectors concatenated over layers (raw, so layers with larger norms weigh more; needs the vectors)."""
    s = zscore_rows(per_layer) if zscore else per_layer
    if how == "mean":
        return s.mean(0)
    if how == "top3":
        return s.topk(min(3, s.shape[0]), dim=0).values.mean(0)
    if how == "all":
        if queries is None or train is None:
            return s.mean(0)
        q = queries.permute(1, 0, 2).reshape(queries.shape[1], -1)
        t = train.permute(1, 0, 2).reshape(train.shape[1], -1)
        return normalise(q.double()) @ normalise(t.double()).T
    raise ValueError(how)
