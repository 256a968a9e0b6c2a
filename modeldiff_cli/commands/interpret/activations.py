"""Step 1: activation differences h_ft - h_base per layer and category, as streaming means.

One forward per model per batch (the same tokens through both). Per (layer, category) the accumulator keeps
float64 sums and int64 counts of the difference over all analysed positions and at each of the first N positions
(ADL's view), of h_base, and of the norms of h_base, h_ft and the difference: memory is O(layers x categories x
N x d), whatever the number of prompts, and the sums reduce exactly across ranks. A second pass keeps a bounded,
seeded sample of paired activations at the crosscoder layers (the only part that grows with --max-vectors, never
with the number of prompts).

Under torchrun each rank takes a contiguous block of the one-process run's batches (``core.spine.distributed``): the
sums are all-reduced, the sample's batches are chosen from the whole batch list (the same on every rank) and
split over the ranks, and their rows gathered in rank order (= batch order): N ranks keep the rows one process
keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ...core.data.datasets import iter_batches
from ...core.model.forward import forward
from ...core.spine import console
from ...core.spine import distributed as dist


class StreamingMean:
    """Streaming mean of vectors: a float64 sum and an int64 count per index; ``mean`` = sum / count (float32)."""

    def __init__(self, shape: tuple[int, ...]):
        self.sum = torch.zeros(shape, dtype=torch.float64)
        self.count = torch.zeros(shape[:-1], dtype=torch.int64)

    def add(self, index: tuple, rows: torch.Tensor) -> None:
        """Fold rows ``[n, d]`` into the sum at ``index`` (an index into all but the last dimension)."""
        if rows.shape[0] == 0:
            return
        self.count[index] += rows.shape[0]
        self.sum[index] += rows.to(torch.float64).sum(0)

    def add_at(self, index: tuple, slots: torch.Tensor, rows: torch.Tensor) -> None:
        """Fold each row ``rows[i]`` into slot ``slots[i]`` of the sums at ``index`` (one scatter)."""
        if rows.shape[0] == 0:
            return
        self.sum[index].index_add_(0, slots, rows.to(torch.float64))
        self.count[index] += torch.bincount(slots, minlength=self.count[index].shape[0])

    @property
    def mean(self) -> torch.Tensor:
        return (self.sum / self.count.clamp_min(1).unsqueeze(-1)).float()

    def reduce(self) -> None:
        """Sum over ranks (nothing with one process)."""
        dist.all_sum(self.sum, self.count)


@dataclass
class DiffStats:
    layers: list[int]
    categories: list[str]
    positions: int
    diff: StreamingMean  # [L, C, d] mean h_ft - h_base over every analysed position
    diff_pos: StreamingMean  # [L, C, N, d] at each of the first N positions
    norms: StreamingMean  # [L, C, 3] mean |h_base|, |h_ft|, |h_ft - h_base| (as [L, C, 3, 1])
    base_mean: StreamingMean  # [L, C, d] mean h_base (for the side of a direction)
    tokens: int = 0

    def mean_diff(self) -> torch.Tensor:
        return self.diff.mean

    def relative_norms(self) -> torch.Tensor:
        """[L, C]: |mean difference| / mean |h| (the mean of the two models' mean activation norms)."""
        scale = self.norms.mean[..., :2, 0].mean(-1).clamp_min(1e-8)
        return self.diff.mean.norm(dim=-1) / scale

    def specific(self) -> torch.Tensor:
        """[L, C, d]: each category's mean difference minus the mean over categories (what is specific to it)."""
        mean = self.diff.mean
        return mean - mean.mean(1, keepdim=True)

    def category_cosines(self) -> torch.Tensor:
        """[L, C, C] cosine between the categories' mean differences."""
        unit = torch.nn.functional.normalize(self.diff.mean, dim=-1)
        return unit @ unit.transpose(-1, -2)

    def reduce(self) -> None:
        for m in (self.diff, self.diff_pos, self.norms, self.base_mean):
            m.reduce()
        self.tokens = dist.sum_int(self.tokens)


def new_stats(layers: list[int], categories: list[str], positions: int, d: int) -> DiffStats:
    L, C = len(layers), len(categories)
    return DiffStats(layers, categories, positions, StreamingMean((L, C, d)), StreamingMean((L, C, positions, d)),
                     StreamingMean((L, C, 3, 1)), StreamingMean((L, C, d)))


def batches(categories, batch_size: int, pad_id: int) -> list[tuple[int, object]]:
    """Every (category index, batch) of the run, in the one-process order."""
    return [(ci, b) for ci, cat in enumerate(categories) for b in iter_batches(cat.samples, batch_size, pad_id)]


def extract(pair, categories, layers: list[int], positions: int, batch_size: int) -> DiffStats:
    """The streaming pass: every category, every layer, both models on the same tokens (this rank's batches),
    then the sums reduced over ranks."""
    d = pair.base.adapter.embed.weight.shape[1]
    stats = new_stats(layers, [c.name for c in categories], positions, d)
    pad = pair.tokenizer.pad_token_id or 0
    mine = dist.shard(batches(categories, batch_size, pad))
    dist.count_samples(sum(len(b.sample_index) for _, b in mine))
    for ci, batch in console.track(mine, "interpret: activation differences"):
        mask = batch.position_mask
        cb = forward(pair.base, batch.input_ids, batch.attention_mask, layers=layers)
        cf = forward(pair.ft, batch.input_ids, batch.attention_mask, layers=layers)
        stats.tokens += int(batch.attention_mask.sum())
        # rank of each analysed position within its row (0 = first analysed position)
        rank = (mask.long().cumsum(-1) - 1)[mask]
        first = rank < positions
        for li, layer in enumerate(layers):
            hb = cb.layers[layer][mask.to(cb.layers[layer].device)].float().cpu()
            hf = cf.layers[layer][mask.to(cf.layers[layer].device)].float().cpu()
            diff = hf - hb
            stats.diff.add((li, ci), diff)
            stats.base_mean.add((li, ci), hb)
            norms = torch.stack([hb.norm(dim=-1), hf.norm(dim=-1), diff.norm(dim=-1)], -1)
            stats.norms.add_at((li, ci), torch.arange(3).repeat(norms.shape[0]), norms.reshape(-1, 1))
            stats.diff_pos.add_at((li, ci), rank[first], diff[first])
        del cb, cf
    stats.reduce()
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


def sampled_batches(jobs: list, max_vectors: int, seed: int) -> list[int]:
    """Indices (into ``jobs``) of the batches the paired sample is taken from: per category, a seeded random
    choice of whole batches holding about ``max_vectors`` x (its share of the analysed positions), at least
    one. Deterministic and computed from the whole batch list, so every rank picks the same batches."""
    sizes = [int(b.position_mask.sum()) for _, b in jobs]
    p = min(1.0, max_vectors / max(sum(sizes), 1))
    gen = torch.Generator().manual_seed(seed)
    keys = torch.rand(len(jobs), generator=gen).tolist()
    chosen: list[int] = []
    for ci in sorted({c for c, _ in jobs}):
        mine = sorted((i for i, (c, _) in enumerate(jobs) if c == ci), key=lambda i: keys[i])
        want, got = p * sum(sizes[i] for i in mine), 0
        for i in mine:
            if got >= want and got > 0:
                break
            chosen.append(i)
            got += sizes[i]
    return sorted(chosen)


def collect(pair, categories, layers: list[int], max_vectors: int, batch_size: int, seed: int) -> dict[int, Sample]:
    """Up to ``max_vectors`` paired activations per layer: every analysed position of a seeded choice of whole
    batches (:func:`sampled_batches`), so this second pass costs forwards on about ``max_vectors`` positions,
    whatever the size of the data. Under torchrun each rank computes its share of the chosen batches."""
    d = pair.base.adapter.embed.weight.shape[1]
    parts: dict[int, dict[str, list]] = {layer: {k: [] for k in ("b", "f", "c", "s", "p", "t")} for layer in layers}
    pad = pair.tokenizer.pad_token_id or 0
    jobs = batches(categories, batch_size, pad)
    chosen = [jobs[i] for i in sampled_batches(jobs, max_vectors, seed)]
    for ci, batch in console.track(dist.shard(chosen), "interpret: paired activations"):
        mask = batch.position_mask
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
            p["s"].append(batch.sample_index[rows].long())
            p["p"].append(cols.long())
            p["t"].append(batch.input_ids[rows, cols].long())
        del cb, cf
    out = {}
    for layer, p in parts.items():
        cat = {k: (torch.cat(v) if v else torch.zeros((0, d) if k in "bf" else (0,),
                                                     dtype=torch.float32 if k in "bf" else torch.long))
               for k, v in p.items()}
        p.clear()
        cat = {k: dist.gather_rows(v)[:max_vectors].clone() for k, v in cat.items()}  # rank order = batch order
        b, f = cat["b"], cat["f"]
        rms = (float(b.pow(2).sum(-1).mean().div(d).sqrt()), float(f.pow(2).sum(-1).mean().div(d).sqrt()))
        out[layer] = Sample(layer, b, f, cat["c"], cat["s"], cat["p"], cat["t"], rms=rms)
    return out
