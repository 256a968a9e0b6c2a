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
            torch.equal(getattr(self, n), getattr(other, n).to(getattr(self, n).device)) for n in ACCUMULATORS
        )

    def to(self, device) -> TokenStats:
        """Move the accumulators (in place) to ``device``: they live where the diffs are computed, so a batch
        costs no host round trip; ``accumulate`` brings them back to the CPU at the end."""
        for name in ACCUMULATORS:
            setattr(self, name, getattr(self, name).to(device))
        return self


ACCUMULATORS = ("sum_diff", "count_positive", "count_topk_pos", "count_topk_neg", "position_hist")
# top-K records kept on an accelerator up to this many bytes; later ones go to host memory
DEVICE_RECORD_BYTES = 2 << 30


@dataclass
class TopKRecords:
    """Top-K positive entries of every position (for NMF): ids int32 ``[n, K]``, values float32 (<= 0 -> 0).
    Kept on the device they were computed on (no host sync per chunk) up to ``DEVICE_RECORD_BYTES``, then in
    host memory; ``stacked()`` returns them on one device (the host when they are split)."""

    ids: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)
    device_bytes: int = 0

    def add(self, ids: Tensor, values: Tensor) -> None:
        ids, values = ids.to(torch.int32), values.clamp_min(0).float()
        if ids.device.type != "cpu":
            self.device_bytes += 8 * ids.numel()
            if self.device_bytes > DEVICE_RECORD_BYTES:
                ids, values = ids.cpu(), values.cpu()
        self.ids.append(ids)
        self.values.append(values)

    def stacked(self) -> tuple[Tensor, Tensor]:
        if not self.ids:
            return torch.zeros(0, 0, dtype=torch.int32), torch.zeros(0, 0)
        devices = {t.device for t in self.ids}
        if len(devices) > 1:
            return torch.cat([t.cpu() for t in self.ids]), torch.cat([t.cpu() for t in self.values])
        return torch.cat(self.ids), torch.cat(self.values)

    def cpu(self) -> TopKRecords:
        return TopKRecords([t.cpu() for t in self.ids], [t.cpu() for t in self.values])


def update(stats: TokenStats, diff: Tensor, positions: Tensor | None = None, records: TopKRecords | None = None) -> None:
    """Fold one chunk of diffs ``[n, V]`` (float32) into ``stats``. ``diff`` is CONSUMED (overwritten in place).

    ``positions`` (``[n]`` token index of each row in its sequence) feeds the positional histogram.
    """
    n, v = diff.shape
    if n == 0:
        return
    k = min(stats.top_k, v)
    dev = diff.device
    if stats.sum_diff.device != dev:
        stats.to(dev)
    # every count is a scatter-add of 0/1 weights: exact integers, and no host sync (a boolean-mask index or a
    # CUDA bincount would wait for the device to learn its output size)
    pos_vals, pos_ids = diff.topk(k, dim=1, sorted=False)
    neg_vals, neg_ids = diff.topk(k, dim=1, largest=False, sorted=False)
    keep_pos = (pos_vals > 0).long()
    stats.count_topk_pos.scatter_add_(0, pos_ids.flatten(), keep_pos.flatten())
    stats.count_topk_neg.scatter_add_(0, neg_ids.flatten(), (neg_vals < 0).long().flatten())
    if positions is not None:
        bins = (positions.to(dev) // stats.position_bin_width).clamp_max(POSITION_BINS - 1)
        flat = pos_ids * POSITION_BINS + bins[:, None]
        stats.position_hist.view(-1).scatter_add_(0, flat.flatten(), keep_pos.flatten())
    if records is not None:
        records.add(pos_ids, pos_vals)
    stats.sum_diff += diff.sum(0, dtype=torch.float64) if diff.dtype != torch.float32 else diff.sum(0).double()
    # count of positive diffs: in place (diff becomes 1.0 / 0.0), then a fast column sum; exact below 2**24 rows
    stats.count_positive += diff.gt_(0).sum(0).to(torch.int64)
    stats.total_positions += n
