"""The one padder: token sequences -> a padded id grid and its attention mask (right or left padding).

Right padding suits teacher-forced reads (position ``t`` of every row is token ``t``); left padding suits
generation and per-step reads (every row's last prompt token sits at the same column). Position ids that count
real tokens only come with :func:`position_ids`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..typing import PaddedTokens


def pad(seqs: Sequence[Sequence[int]], pad_id: int, *, side: str = "right", width: int | None = None,
        fill: int | None = None) -> tuple[PaddedTokens, PaddedTokens]:
    """``(ids [B, W], attention_mask [B, W])``; ``W`` = the longest sequence (or ``width``); ``fill`` replaces
    ``pad_id`` in the id grid (e.g. -100 for label grids)."""
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', not {side!r}")
    w = max([len(s) for s in seqs] + [width or 0])
    ids = torch.full((len(seqs), w), pad_id if fill is None else fill, dtype=torch.long)
    mask = torch.zeros((len(seqs), w), dtype=torch.long)
    for r, s in enumerate(seqs):
        n = len(s)
        if n == 0:
            continue
        cols = slice(0, n) if side == "right" else slice(w - n, w)
        ids[r, cols] = torch.as_tensor(list(s), dtype=torch.long)
        mask[r, cols] = 1
    return ids, mask


def position_ids(attention_mask: PaddedTokens) -> PaddedTokens:
    """Positions counting real tokens only (0 at each row's first token; padding gets 0)."""
    return (attention_mask.cumsum(1) - 1).clamp_min(0)
