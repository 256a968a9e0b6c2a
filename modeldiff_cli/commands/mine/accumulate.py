"""The streaming loop: batches -> both models' analysed rows -> logits in row chunks -> diff -> accumulators."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ...core.data.datasets import Batch
from ...core.model.readout import chunk_rows
from .extract import Extractor
from .stats import POSITION_BINS, TokenStats, TopKRecords, update


@dataclass
class Accumulated:
    """Everything kept for one dataset: per-token statistics, NMF records, per-sequence log-likelihoods."""

    stats: TokenStats
    records: TopKRecords | None = None
    seq_logp_base: Tensor | None = None  # float64 [samples]
    seq_logp_ft: Tensor | None = None
    seq_tokens: Tensor | None = None  # int64 [samples] scored next-token predictions
    notes: list[str] = field(default_factory=list)


def row_info(batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
    """For each analysed position (row order of ``h[position_mask]``): its index in the sequence, its
    sample's dataset index, and the next token id (-1 at the last real token)."""
    mask = batch.position_mask
    b, t = mask.shape
    pos = torch.arange(t).expand(b, t)[mask]
    sample = batch.sample_index[:, None].expand(b, t)[mask]
    nxt = torch.full_like(batch.input_ids, -1)
    nxt[:, :-1] = torch.where(batch.attention_mask[:, 1:].bool(), batch.input_ids[:, 1:], -1)
    return pos, sample, nxt[mask]


def position_bin_width(max_len: int) -> int:
    return max(1, -(-max_len // POSITION_BINS))


def _target_logp(logits: Tensor, targets: Tensor) -> Tensor:
    valid = targets >= 0
    picked = logits.gather(1, targets.clamp_min(0).to(logits.device)[:, None])[:, 0]
    return torch.where(valid.to(logits.device), picked - torch.logsumexp(logits, dim=1), 0.0)


def accumulate(
    batches: Iterable[Batch],
    base: Extractor,
    ft: Extractor,
    *,
    vocab: int,
    top_k: int,
    n_samples: int,
    max_len: int,
    chunk_size: int | None = None,
    collect_records: bool = False,
    likelihood: bool = False,
    base_rows: Iterator[Tensor] | None = None,
    start: Accumulated | None = None,
    after_batch: Callable[[Accumulated], None] | None = None,
) -> Accumulated:
    """Stream ``batches`` through both extractors. ``base_rows`` (two-pass mode) replaces the base model's
    forward by its stored hidden rows, in batch order. Never holds more than ``chunk x vocab`` logits
    (``core.model.readout.chunk_rows``: ``chunk_size``, or with None 256 on CPU and more on an accelerator). The
    accumulators live on the device of the diffs while the batches stream (no host sync per chunk).
    ``start``: the accumulators to continue (a resumed checkpoint); ``after_batch(acc)`` runs after each batch."""
    if start is not None:
        acc = start
    else:
        acc = Accumulated(TokenStats(vocab, top_k, position_bin_width(max_len)))
        acc.records = TopKRecords() if collect_records else None
    if likelihood and start is None:
        acc.seq_logp_base = torch.zeros(n_samples, dtype=torch.float64)
        acc.seq_logp_ft = torch.zeros(n_samples, dtype=torch.float64)
        acc.seq_tokens = torch.zeros(n_samples, dtype=torch.int64)
    with torch.inference_mode():
        for batch in batches:
            rows_b = next(base_rows) if base_rows is not None else base.hidden(batch)
            rows_f = ft.hidden(batch)
            pos, sample, targets = row_info(batch)
            pos = pos.to(rows_f.device, non_blocking=True)
            step = chunk_rows(chunk_size, rows_f.device, vocab)
            for start in range(0, rows_f.shape[0], step):
                sl = slice(start, start + step)
                lf = ft.read(rows_f[sl])
                lb = base.read(rows_b[sl]).to(lf.device)  # no-op when both models share a device
                if likelihood:
                    _add_likelihood(acc, lb, lf, targets[sl], sample[sl])
                diff = lf[:, :vocab].sub_(lb[:, :vocab])
                del lb
                update(acc.stats, diff, pos[sl], acc.records)
                del lf, diff
            if after_batch is not None:
                after_batch(acc)
    acc.stats.to("cpu")  # the accumulators lived on the device of the diffs: one copy back, at the end
    return acc


def reduce_ranks(acc: Accumulated) -> Accumulated:
    """Sum a rank's accumulators over every rank of a data-parallel run (``core.spine.distributed``): counts and
    float64 sums all-reduced, NMF records gathered in rank order (= sample order); with one process, ``acc``."""
    from ...core.spine import distributed as dist

    if not dist.active():
        return acc
    s = acc.stats
    dist.all_sum(s.sum_diff, s.count_positive, s.count_topk_pos, s.count_topk_neg, s.position_hist)
    s.total_positions = dist.sum_int(s.total_positions)
    if acc.records is not None:
        ids, values = acc.records.cpu().stacked()
        acc.records = TopKRecords([dist.gather_rows(ids)], [dist.gather_rows(values)])
    if acc.seq_logp_base is not None:
        dist.all_sum(acc.seq_logp_base, acc.seq_logp_ft, acc.seq_tokens)
    return acc


def _add_likelihood(acc: Accumulated, lb: Tensor, lf: Tensor, targets: Tensor, sample: Tensor) -> None:
    valid = (targets >= 0).cpu()
    acc.seq_logp_base.index_add_(0, sample, _target_logp(lb, targets).double().cpu())
    acc.seq_logp_ft.index_add_(0, sample, _target_logp(lf, targets).double().cpu())
    acc.seq_tokens.index_add_(0, sample, valid.long())


def collect_base_rows(batches: Iterable[Batch], base: Extractor) -> list[Tensor]:
    """Two-pass mode, pass 1: the base model's hidden rows per batch (``[n, d]`` each, on CPU)."""
    with torch.inference_mode():
        return [base.hidden(b).cpu() for b in batches]
