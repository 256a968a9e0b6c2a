"""Step 1: activation differences h_ft - h_base per layer and category, as streaming float32 means.

One forward per model per batch (the same tokens through both). Per (layer, category) the accumulator keeps
the running mean of the difference over all analysed positions and at each of the first N positions (ADL's
view), and the mean norms of h_base, h_ft and the difference: memory is O(layers x categories x N x d),
whatever the number of prompts. A second pass keeps a bounded, seeded sample of paired activations at the
crosscoder layers (the only part that grows with --max-vectors, never with the number of prompts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ...core import console
from ...core.data import iter_batches
from ...core.forward import forward


class RunningMean:
    """Streaming float32 mean of vectors: ``mean += (sum_batch - n_batch * mean) / n_total``."""

    def __init__(self, shape: tuple[int, ...]):
        self.mean = torch.zeros(shape, dtype=torch.float32)
        self.count = torch.zeros(shape[:-1], dtype=torch.float64)

    def add(self, index: tuple, rows: torch.Tensor) -> None:
        """Fold rows ``[n, d]`` into the mean at ``index`` (an index into all but the last dimension)."""
        n = rows.shape[0]
        if n == 0:
            return
        rows = rows.float().cpu()
        self.count[index] += n
        total = float(self.count[index])
        self.mean[index] += (rows.sum(0) - n * self.mean[index]) / total


@dataclass
class DiffStats:
    layers: list[int]
    categories: list[str]
    positions: int
    diff: RunningMean  # [L, C, d] mean h_ft - h_base over every analysed position
    diff_pos: RunningMean  # [L, C, N, d] at each of the first N positions
    norms: RunningMean  # [L, C, 3] mean |h_base|, |h_ft|, |h_ft - h_base|
    base_mean: RunningMean  # [L, C, d] mean h_base (for the side of a direction)
    tokens: int = 0

    def mean_diff(self) -> torch.Tensor:
        return self.diff.mean

    def relative_norms(self) -> torch.Tensor:
        """[L, C]: |mean difference| / mean |h| (the mean of the two models' mean activation norms)."""
        scale = self.norms.mean[..., :2, 0].mean(-1).clamp_min(1e-8)
        return self.diff.mean.norm(dim=-1) / scale

    def category_cosines(self) -> torch.Tensor:
        """[L, C, C] cosine between the categories' mean differences."""
        unit = torch.nn.functional.normalize(self.diff.mean, dim=-1)
        return unit @ unit.transpose(-1, -2)


def new_stats(layers: list[int], categories: list[str], positions: int, d: int) -> DiffStats:
    L, C = len(layers), len(categories)
    return DiffStats(layers, categories, positions, RunningMean((L, C, d)), RunningMean((L, C, positions, d)),
                     RunningMean((L, C, 3, 1)), RunningMean((L, C, d)))


def _batches(categories, batch_size: int, pad_id: int, label: str):
    jobs = [(ci, b) for ci, cat in enumerate(categories) for b in iter_batches(cat.samples, batch_size, pad_id)]
    return console.track(jobs, label)


def extract(pair, categories, layers: list[int], positions: int, batch_size: int) -> DiffStats:
    """The streaming pass: every category, every layer, both models on the same tokens."""
    d = pair.base.adapter.embed.weight.shape[1]
    stats = new_stats(layers, [c.name for c in categories], positions, d)
    pad = pair.tokenizer.pad_token_id or 0
    for ci, batch in _batches(categories, batch_size, pad, "interpret: activation differences"):
        mask = batch.position_mask
        cb = forward(pair.base, batch.input_ids, batch.attention_mask, layers=layers)
        cf = forward(pair.ft, batch.input_ids, batch.attention_mask, layers=layers)
        stats.tokens += int(batch.attention_mask.sum())
        # rank of each analysed position within its row (0 = first analysed position)
        rank = mask.long().cumsum(-1) - 1
        for li, layer in enumerate(layers):
            hb = cb.layers[layer].float().cpu()
            hf = cf.layers[layer].float().to(hb.device)
            diff = hf - hb
            m = mask.to(hb.device)
            rows = diff[m]
            stats.diff.add((li, ci), rows)
            stats.base_mean.add((li, ci), hb[m])
            norms = torch.stack([hb[m].norm(dim=-1), hf[m].norm(dim=-1), rows.norm(dim=-1)], -1)
            for k in range(3):
                stats.norms.add((li, ci, k), norms[:, k : k + 1])
            for p in range(positions):
                stats.diff_pos.add((li, ci, p), diff[m & (rank == p)])
        del cb, cf
    return stats


@dataclass
class Sample:
    """Paired activations at one layer (a bounded sample) with where each row came from."""

    layer: int
    base: torch.Tensor  # [n, d] float32
    ft: torch.Tensor  # [n, d]
    category: torch.Tensor  # [n] category index
    sample: torch.Tensor  # [n] sample index within its category
    position: torch.Tensor  # [n]
    token: torch.Tensor  # [n] token id at that position
    rms: tuple[float, float] = (1.0, 1.0)  # each model's activation RMS (sqrt of mean |h|^2 / d)
    extra: dict = field(default_factory=dict)


def collect(pair, categories, layers: list[int], max_vectors: int, batch_size: int, seed: int) -> dict[int, Sample]:
    """Up to ``max_vectors`` paired activations per layer, each position kept with the same seeded probability."""
    total = sum(sum(sum(s.mask) for s in c.samples) for c in categories)
    keep_p = min(1.0, max_vectors / max(total, 1))
    gen = torch.Generator().manual_seed(seed)
    parts: dict[int, dict[str, list]] = {layer: {k: [] for k in ("b", "f", "c", "s", "p", "t")} for layer in layers}
    pad = pair.tokenizer.pad_token_id or 0
    for ci, batch in _batches(categories, batch_size, pad, "interpret: paired activations"):
        mask = batch.position_mask & (torch.rand(batch.position_mask.shape, generator=gen) < keep_p)
        if not mask.any():
            continue
        cb = forward(pair.base, batch.input_ids, batch.attention_mask, layers=layers)
        cf = forward(pair.ft, batch.input_ids, batch.attention_mask, layers=layers)
        rows, cols = mask.nonzero(as_tuple=True)
        for layer in layers:
            p = parts[layer]
            p["b"].append(cb.layers[layer][mask.to(cb.layers[layer].device)].float().cpu())
            p["f"].append(cf.layers[layer][mask.to(cf.layers[layer].device)].float().cpu())
            p["c"].append(torch.full((len(rows),), ci, dtype=torch.long))
            p["s"].append(batch.sample_index[rows])
            p["p"].append(cols)
            p["t"].append(batch.input_ids[rows, cols])
    out = {}
    for layer, p in parts.items():
        b, f = torch.cat(p["b"])[:max_vectors], torch.cat(p["f"])[:max_vectors]
        d = b.shape[1]
        rms = (float(b.pow(2).sum(-1).mean().div(d).sqrt()), float(f.pow(2).sum(-1).mean().div(d).sqrt()))
        out[layer] = Sample(layer, b, f, *(torch.cat(p[k])[:max_vectors] for k in ("c", "s", "p", "t")), rms=rms)
    return out
