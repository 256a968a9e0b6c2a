"""Scoring: cosine similarity of pooled per-sample vectors per layer (a matrix product after normalisation),
layer aggregation, optional per-layer z-scoring. Pure functions on tensors."""

from __future__ import annotations

import torch
from jaxtyping import Float

# method -> the extracted vector it compares (None: not a cosine method)
VECTOR_OF = {"delta-h": "dh", "grad": "g", "delta-h-x-grad": "dhg", "ig": "ig"}
MODEL_METHODS = ("delta-h", "grad", "delta-h-x-grad", "ig", "patch")
BASELINES = ("bm25", "edit-distance", "random")
METHODS = MODEL_METHODS + BASELINES
AGGREGATES = ("mean", "top3", "all")


def parse_methods(spec: str) -> list[str]:
    from ...core.errors import UserError

    names = [m.strip() for m in spec.split(",") if m.strip()]
    if not names:
        raise UserError("--method: give at least one method")
    bad = [m for m in names if m not in METHODS]
    if bad:
        raise UserError(f"--method {bad[0]!r}: unknown method; valid: {', '.join(METHODS)}")
    return list(dict.fromkeys(names))


def normalise(x: Float[torch.Tensor, "... N D"], eps: float = 1e-12) -> Float[torch.Tensor, "... N D"]:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=eps)


def cosine_scores(queries: Float[torch.Tensor, "L Q D"], train: Float[torch.Tensor, "L N D"]) -> Float[torch.Tensor, "L Q N"]:
    """Per-layer cosine similarity of every query vector with every training vector (zero vectors score 0)."""
    return torch.einsum("lqd,lnd->lqn", normalise(queries.double()), normalise(train.double()))


def zscore_rows(s: Float[torch.Tensor, "L Q N"]) -> Float[torch.Tensor, "L Q N"]:
    """Standardise each query's scores within each layer (so layers with different scales weigh equally)."""
    mu = s.mean(-1, keepdim=True)
    sd = s.std(-1, keepdim=True).clamp(min=1e-12)
    return (s - mu) / sd


def aggregate(per_layer: Float[torch.Tensor, "L Q N"], how: str, zscore: bool = False,
              queries: torch.Tensor | None = None, train: torch.Tensor | None = None) -> Float[torch.Tensor, "Q N"]:
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
