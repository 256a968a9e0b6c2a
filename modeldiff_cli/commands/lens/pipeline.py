"""The lens pipeline's steps: data -> extract (both models, all layers) -> accumulate (chunked readouts) -> order."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ...core.data.datasets import Dataset, Sample, iter_batches
from ...core.errors import UserError
from ...core.model.forward import forward, hidden_rows
from ...core.model.loading import ModelPair
from ...core.model.readout import chunk_rows, make_reader
from ...core.spine import checkpoint, console
from ...core.spine import distributed as dist
from .accumulate import LensAccumulator, top_tokens
from .extract import last_position_mask, log_probs


def dataset(cmd, tokenizer) -> Dataset:
    """The data source, or the single ``--prompt``, tokenized."""
    if cmd.prompt is not None:
        ids = tokenizer(cmd.prompt, add_special_tokens=True)["input_ids"]
        if cmd.data.max_tokens is not None:
            ids = ids[: cmd.data.max_tokens]
        fp = hashlib.sha256(cmd.prompt.encode()).hexdigest()[:16]
        return Dataset(name="prompt", path=Path("<prompt>"), samples=[Sample(0, list(ids), [True] * len(ids))], fingerprint=fp)
    return cmd.data.load(tokenizer)[0]


def _reader(loaded, cmd):
    r = cmd.readout
    return make_reader(loaded, r.readout, chunk_size=r.chunk_size, patchscope_prompt=r.patchscope_prompt,
                       patchscope_layer=r.patchscope_layer)


def accumulate(pair: ModelPair, data: Dataset, layers: list[int], cmd) -> LensAccumulator:
    """Both models, every analysed layer, chunked readouts folded into one accumulator."""
    V = pair.shared_vocab
    chunk = chunk_rows(cmd.readout.chunk_size, pair.ft.device, V)
    lens_mode = cmd.readout.readout == "logit-lens"
    record = len(data.samples[0].ids) if cmd.prompt is not None else 0  # prompt mode analyses every position
    read_b, read_f = _reader(pair.base, cmd), _reader(pair.ft, cmd)
    final_b, final_f = make_reader(pair.base, "logits"), make_reader(pair.ft, "logits")
    last = pair.base.adapter.n_layers - 1
    pad = pair.tokenizer.pad_token_id or 0
    # this rank's contiguous block of the one-process run's batches (all of them with one process)
    batches = dist.shard(list(iter_batches(data.samples, cmd.data.batch_size, pad)))
    dist.count_samples(sum(len(b.sample_index) for b in batches))
    # --checkpoint-every: the float64 sums and the batches done, saved every N batches (a re-run resumes there)
    prog = checkpoint.progress(cmd.checkpoint_every, {"command": "lens", "batches": len(batches)})
    acc = prog.state["acc"] if prog.state else LensAccumulator(len(layers), len(data.samples), V, record_positions=record)
    for batch in console.track(batches[prog.done:], "lens: both models, all layers"):
        if cmd.positions == "last" and not record:
            batch.position_mask = last_position_mask(batch.position_mask)
        mask = batch.position_mask
        sample_index = batch.sample_index.unsqueeze(1).expand_as(mask)[mask]
        cb = forward(pair.base, batch.input_ids, batch.attention_mask, layers=layers, final=True)
        cf = forward(pair.ft, batch.input_ids, batch.attention_mask, layers=layers, final=True)
        hb = {i: hidden_rows(h, mask) for i, h in cb.layers.items()}
        hf = {i: hidden_rows(h, mask) for i, h in cf.layers.items()}
        nb, nf = hidden_rows(cb.final, mask), hidden_rows(cf.final, mask)
        n = sample_index.shape[0]
        for start in range(0, n, chunk):
            rows = slice(start, min(start + chunk, n))
            idx = sample_index[rows]
            acc.add_positions(idx)
            ff = log_probs(final_f(last, nf[rows]), V)
            fb = log_probs(final_b(last, nb[rows]), V).to(ff.device)  # models may sit on two devices
            for li, layer in enumerate(layers):
                same = layer == last and lens_mode
                lb = fb if same else log_probs(read_b(layer, hb[layer][rows]), V).to(ff.device)
                lf = ff if same else log_probs(read_f(layer, hf[layer][rows]), V)
                acc.update(li, lb, lf, fb, ff, idx, rows if record else None)
        del cb, cf, hb, hf
        prog.step(lambda: {"acc": acc})
    prog.finish(lambda: {"acc": acc})
    reduce_ranks(acc)
    if acc.count.max() == 0:
        raise UserError("no positions to analyse in the data (empty position masks)")
    dist.handoff()  # a non-zero rank's share ends here: rank 0 orders and writes
    return acc


def reduce_ranks(acc: LensAccumulator) -> LensAccumulator:
    """Sum every rank's running sums (float64 all-reduce; a sample's rows are all on one rank, so the
    per-sample sums and the prompt tables of the other ranks are zeros and the sums are exact there)."""
    if not dist.active():
        return acc
    dist.all_sum(acc.count, acc.sample_count, acc.diff_sum, *acc.sums.values(), *acc.sample_sums.values())
    for name, table in acc.tables.items():
        wide = table.double() if table.is_floating_point() else table.long()
        dist.all_sum(wide)
        acc.tables[name] = wide.to(table.dtype)
    return acc


def order(acc: LensAccumulator, pair: ModelPair, cmd) -> dict:
    """Per-layer means, per-sample matrices and the most promoted / suppressed tokens per layer."""
    keep = torch.tensor(cmd.tokens.keep_mask(pair.tokenizer, acc.vocab))
    diff = acc.mean_diff()
    prom_ids, prom_vals = top_tokens(diff, cmd.top_n, keep, largest=True)
    sup_ids, sup_vals = top_tokens(diff, cmd.top_n, keep, largest=False)
    return {
        "means": acc.means(), "samples": acc.sample_means(), "mean_diff": diff,
        "promoted": (prom_ids, prom_vals), "suppressed": (sup_ids, sup_vals),
    }
