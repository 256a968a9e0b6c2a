"""Streaming per-token statistics of logit diffs (pure tensor functions, no files).

Per batch of analysed positions, ``diff = ft - base`` (float32, ``[n, vocab]``) updates per-vocab
accumulators and is then dropped; only ``[n, K]`` records (top-K positive ids / values) are kept for NMF.
Memory: O(vocab + positions x K), whatever the dataset size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

POSITION_BINS = 16


@dataclass
class TokenStats:
    """Accumulators over every analysed position of one dataset (index = token id in ``[0, vocab)``)."""

    vocab: int
    top_k: int
    position_bin_width: int = 1
    total_positions: int = 0
    sum_diff: Tensor = field(init=False)  # float64 [V]  sum over positions of (ft - base) logit
    count_positive: Tensor = field(init=False)  # int64 [V]  positions where diff > 0
    count_topk_pos: Tensor = field(init=False)  # int64 [V]  positions where the token is among the K largest diffs and diff > 0
    count_topk_neg: Tensor = field(init=False)  # int64 [V]  positions where the token is among the K smallest diffs and diff < 0
    position_hist: Tensor = field(init=False)  # int64 [V, POSITION_BINS] top-K positive occurrences by sequence position bin

    def __post_init__(self):
        v = self.vocab
        self.sum_diff = torch.zeros(v, dtype=torch.float64)
        self.count_positive = torch.zeros(v, dtype=torch.int64)
        self.count_topk_pos = torch.zeros(v, dtype=torch.int64)
        self.count_topk_neg = torch.zeros(v, dtype=torch.int64)
        self.position_hist = torch.zeros(v, POSITION_BINS, dtype=torch.int64)

    def equal(self, other: TokenStats) -> bool:
        return self.total_positions == other.total_positions and all(
            torch.equal(getattr(self, n), getattr(other, n))
            for n in ("sum_diff", "count_positive", "count_topk_pos", "count_topk_neg", "position_hist")
        )


@dataclass
class TopKRecords:
    """Top-K positive entries of every position (for NMF): ids int32 ``[n, K]``, values float32 (<= 0 -> 0)."""

    ids: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)

    def add(self, ids: Tensor, values: Tensor) -> None:
        self.ids.append(ids.to(torch.int32).cpu())
        self.values.append(values.clamp_min(0).float().cpu())

    def stacked(self) -> tuple[Tensor, Tensor]:
        if not self.ids:
            return torch.zeros(0, 0, dtype=torch.int32), torch.zeros(0, 0)
        return torch.cat(self.ids), torch.cat(self.values)


def update(stats: TokenStats, diff: Tensor, positions: Tensor | None = None, records: TopKRecords | None = None) -> None:
    """Fold one chunk of diffs ``[n, V]`` (float32) into ``stats``. ``diff`` is CONSUMED (overwritten in place).

    ``positions`` (``[n]`` token index of each row in its sequence) feeds the positional histogram.
    """
    n, v = diff.shape
    if n == 0:
        return
    k = min(stats.top_k, v)
    dev = diff.device
    pos_vals, pos_ids = diff.topk(k, dim=1, sorted=False)
    neg_vals, neg_ids = diff.topk(k, dim=1, largest=False, sorted=False)
    keep_pos = pos_vals > 0
    hit_pos = pos_ids[keep_pos]
    stats.count_topk_pos += torch.bincount(hit_pos, minlength=v).cpu()
    stats.count_topk_neg += torch.bincount(neg_ids[neg_vals < 0], minlength=v).cpu()
    if positions is not None:
        bins = (positions.to(dev) // stats.position_bin_width).clamp_max(POSITION_BINS - 1)
        flat = hit_pos * POSITION_BINS + bins[:, None].expand_as(pos_ids)[keep_pos]
        stats.position_hist += torch.bincount(flat, minlength=v * POSITION_BINS).view(v, POSITION_BINS).cpu()
    if records is not None:
        records.add(pos_ids, pos_vals)
    stats.sum_diff += diff.sum(0, dtype=torch.float64).cpu() if diff.dtype != torch.float32 else diff.sum(0).double().cpu()
    # count of positive diffs: in place (diff becomes 1.0 / 0.0), then a fast column sum; exact below 2**24 rows
    stats.count_positive += diff.gt_(0).sum(0).to(torch.int64).cpu()
    stats.total_positions += n


def merge(a: TokenStats, b: TokenStats) -> TokenStats:
    """Sum of two accumulators (e.g. data shards processed apart); equal to one pass over both."""
    out = TokenStats(a.vocab, a.top_k, a.position_bin_width)
    out.total_positions = a.total_positions + b.total_positions
    for name in ("sum_diff", "count_positive", "count_topk_pos", "count_topk_neg", "position_hist"):
        setattr(out, name, getattr(a, name) + getattr(b, name))
    return out
