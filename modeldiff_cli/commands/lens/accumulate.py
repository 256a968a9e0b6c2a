"""Streaming per-layer accumulators of the lens comparison (pure tensor code, float32).

One :class:`LensAccumulator` holds, for every analysed layer, running sums over the analysed positions:
KL(ft || base), KL of each model's layer to its own final output, top-1 agreement, and a per-vocabulary sum of
``log p_ft - log p_base`` (for the promoted tokens). Memory is ``O(layers x vocab + samples x layers)``,
independent of the number of positions; nothing of shape ``[positions, vocab]`` outlives a chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ...core.model.divergence import kl
from ...core.typing import LayerTokenScores, LogProbs, RowScores, RowTokens
from .artifacts import SCALARS


@dataclass
class LensAccumulator:
    """Running sums for ``n_layers`` analysed layers, ``n_samples`` samples and a ``vocab``-wide diff."""

    n_layers: int
    n_samples: int
    vocab: int
    record_positions: int = 0  # > 0: also keep per-position top-1 tables (single-prompt mode)
    count: Tensor = field(init=False)
    sums: dict[str, Tensor] = field(init=False)
    sample_sums: dict[str, Tensor] = field(init=False)
    sample_count: Tensor = field(init=False)
    diff_sum: Tensor = field(init=False)
    tables: dict[str, Tensor] = field(init=False)

    def __post_init__(self) -> None:
        L, S = self.n_layers, self.n_samples
        self.count = torch.zeros(L, dtype=torch.float64)
        self.sums = {k: torch.zeros(L, dtype=torch.float64) for k in SCALARS}
        self.sample_sums = {k: torch.zeros(S, L, dtype=torch.float64) for k in ("kl_ft_base", "top1_agreement")}
        self.sample_count = torch.zeros(S, dtype=torch.float64)
        self.diff_sum = torch.zeros(L, self.vocab, dtype=torch.float64)
        P = self.record_positions
        self.tables = {
            "base_top1_id": torch.zeros(L, P, dtype=torch.long), "base_top1_prob": torch.zeros(L, P),
            "ft_top1_id": torch.zeros(L, P, dtype=torch.long), "ft_top1_prob": torch.zeros(L, P),
            "kl_ft_base": torch.zeros(L, P),
        }

    def add_positions(self, sample_index: RowTokens) -> None:
        """Count the analysed positions of each sample once per chunk (not once per layer)."""
        self.sample_count.index_add_(0, sample_index.cpu(), torch.ones(len(sample_index), dtype=torch.float64))

    def update(
        self,
        li: int,
        base: LogProbs,
        ft: LogProbs,
        base_final: LogProbs,
        ft_final: LogProbs,
        sample_index: RowTokens,
        rows: slice | None = None,
    ) -> None:
        """Fold one chunk of layer ``li`` (log-probabilities of both models, and of their final outputs) in."""
        vals = layer_chunk_stats(base, ft, base_final, ft_final)
        self.count[li] += base.shape[0]
        for k in SCALARS:
            self.sums[k][li] += vals[k].double().sum().cpu()
        idx = sample_index.cpu()
        for k, s in self.sample_sums.items():
            s[:, li].index_add_(0, idx, vals[k].double().cpu())
        self.diff_sum[li] += (ft.float() - base.float()).sum(0).double().cpu()
        if self.record_positions and rows is not None:
            for name, logp in (("base", base), ("ft", ft)):
                top = logp.max(-1)
                self.tables[f"{name}_top1_id"][li, rows] = top.indices.cpu()
                self.tables[f"{name}_top1_prob"][li, rows] = top.values.float().exp().cpu()
            self.tables["kl_ft_base"][li, rows] = vals["kl_ft_base"].cpu()

    def means(self) -> dict[str, Tensor]:
        """Per-layer means ``[layers]`` of every scalar metric (float32)."""
        denom = self.count.clamp_min(1)
        return {k: (v / denom).float() for k, v in self.sums.items()}

    def sample_means(self) -> dict[str, Tensor]:
        """Per-sample x per-layer means ``[samples, layers]``; samples without analysed positions are NaN."""
        denom = self.sample_count.unsqueeze(1)
        return {k: (v / denom).float() for k, v in self.sample_sums.items()}

    def mean_diff(self) -> LayerTokenScores:
        """Mean ``log p_ft - log p_base`` per layer and token id."""
        return (self.diff_sum / self.count.clamp_min(1).unsqueeze(1)).float()


def layer_chunk_stats(
    base: LogProbs, ft: LogProbs, base_final: LogProbs, ft_final: LogProbs
) -> dict[str, RowScores]:
    """Per-row metrics of one chunk: KL(ft||base), KL(final||layer) per model, top-1 agreement."""
    return {
        "kl_ft_base": kl(ft, base),
        "kl_base_final": kl(base_final, base),
        "kl_ft_final": kl(ft_final, ft),
        "top1_agreement": (ft.argmax(-1) == base.argmax(-1)).float(),
    }


def top_tokens(mean_diff: LayerTokenScores, n: int, keep: Tensor | None = None, largest: bool = True):
    """Ids and values of the ``n`` most promoted (``largest``) or suppressed tokens per layer, among ``keep``."""
    scores = mean_diff.clone()
    if keep is not None:
        scores[:, ~keep] = float("-inf") if largest else float("inf")
    n = min(n, int(keep.sum()) if keep is not None else scores.shape[1])
    top = scores.topk(n, dim=-1, largest=largest)
    return top.indices, top.values
