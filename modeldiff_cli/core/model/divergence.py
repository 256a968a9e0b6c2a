"""Divergences and likelihoods from log-probabilities, row by row, in float32.

Every function takes log-probabilities ``[rows, vocab]`` (e.g. one chunk of a chunked readout) and returns one
value per row, so callers can stream chunks and only keep per-row results: memory stays ``O(chunk x vocab)``.
Inputs in half precision are upcast to float32 first.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..typing import LogProbs, RowScores, RowTokens

LOG2 = math.log(2.0)


def _f32(x: Tensor) -> Tensor:
    return x if x.dtype == torch.float32 else x.float()


def kl(logp: LogProbs, logq: LogProbs) -> RowScores:
    """KL(p || q) = sum_v p_v (log p_v - log q_v) per row (nats). Zero-probability terms of p contribute 0."""
    logp, logq = _f32(logp), _f32(logq)
    # 0 * (-inf) terms (p_v = 0) are NaN: nansum drops them, i.e. counts them as 0
    return (logp.exp() * (logp - logq)).nansum(-1).clamp_min(0.0)


def js(logp: LogProbs, logq: LogProbs) -> RowScores:
    """Jensen-Shannon divergence (nats, in [0, log 2]): 1/2 KL(p||m) + 1/2 KL(q||m) with m = (p + q) / 2."""
    logp, logq = _f32(logp), _f32(logq)
    logm = torch.logaddexp(logp, logq) - LOG2
    return (0.5 * (kl(logp, logm) + kl(logq, logm))).clamp(0.0, LOG2)


def target_logprob(logp: LogProbs, targets: RowTokens) -> RowScores:
    """log p(target) per row (the logit-lens score); the NLL is its negative."""
    return _f32(logp).gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)


def nll(logp: LogProbs, targets: RowTokens) -> RowScores:
    """Negative log-likelihood -log p(target) per row (nats)."""
    return -target_logprob(logp, targets)


def target_is_top1(logp: LogProbs, targets: RowTokens) -> RowScores:
    """1.0 where the target is the arg-max of the row, else 0.0."""
    return (logp.argmax(-1) == targets.long()).float()


def entropy(logp: LogProbs) -> RowScores:
    """Shannon entropy per row (nats)."""
    logp = _f32(logp)
    return -(logp.exp() * logp).nansum(-1)
