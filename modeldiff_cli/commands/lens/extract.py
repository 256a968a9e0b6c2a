"""Position selection and log-probabilities of the lens comparison (the forward and readers live in core)."""

from __future__ import annotations

import torch

from ...core.typing import Logits, LogProbs, PositionMask


def last_position_mask(mask: PositionMask) -> PositionMask:
    """Keep only the last True position of each row."""
    csum = mask.long().cumsum(-1)
    return mask & (csum == csum[:, -1:])


def log_probs(logits: Logits, vocab: int) -> LogProbs:
    """float32 log-softmax over the first ``vocab`` ids (the ids both models share)."""
    return torch.log_softmax(logits[..., :vocab].float(), dim=-1)
