"""The lens pipeline: load -> extract (both models, all layers) -> accumulate (chunked readouts) -> order -> write."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ...core import console
from ...core.arch import resolve_layers
from ...core.data import Dataset, Sample, iter_batches, load_dataset
from ...core.errors import UserError
from ...core.models import ModelPair, load_pair
from ...core.options import RunSettings
from ...core.rundir import config_hash, run_directory, slug
from ...core.tokens import keep_mask
from .accumulate import LensAccumulator, top_tokens
from .extract import Reader, last_position_mask, layer_states, log_probs, logit_lens_reader, patchscope_reader
from .write import write_outputs


@dataclass
class LensOptions(RunSettings):
    base: str | None
    ft: str | None
    data: Path | None
    prompt: str | None
    layers: str | None
    method: str
    positions: str
    top_n: int
    drop_punctuation: bool
    keep_special: bool
    patchscope_prompt: str | None
    patchscope_layer: str | None


def run(o: LensOptions) -> Path:
    _validate(o)
    torch.manual_seed(o.seed)
    pair = load_pair(o.base, o.ft, dtype=o.dtype, device=o.device, base_device=o.base_device,
                     ft_device=o.ft_device, device_map=o.device_map)
    data = _dataset(o, pair)
    n_layers = pair.base.adapter.n_layers
    layers = resolve_layers(o.layers, n_layers, "--layers")
    config = _config(o, pair, data, layers)
    parts = ["lens", f"{pair.base.source.label}_vs_{pair.ft.source.label}", slug(f"{data.name}-{o.method}-{config_hash(config)}")]
    with run_directory(o.out, parts, config, command="lens", overwrite=o.overwrite) as run_dir:
        if run_dir.reused:
            console.info(f"reusing the complete run in {run_dir.path} (pass --overwrite to recompute)")
        else:
            acc = accumulate(pair, data, layers, o)
            results = order(acc, pair, o.top_n, o.drop_punctuation, o.keep_special)
            run_dir.metadata.update(models={"base": pair.base.source.spec, "ft": pair.ft.source.spec},
                                    data=str(data.path), shared_vocab=pair.shared_vocab)
            write_outputs(run_dir, acc, results, pair, data, layers, o)
            _headline(results, layers, pair)
    console.done(run_dir.path)
    return run_dir.path


def _validate(o: LensOptions) -> None:
    if o.method not in ("logit-lens", "patchscope"):
        raise UserError(f"--method {o.method!r}: expected logit-lens or patchscope")
    if o.positions not in ("all", "last"):
        raise UserError(f"--positions {o.positions!r}: expected all or last")
    if o.prompt is not None and o.data is not None:
        raise UserError("--prompt and --data are exclusive: give one")
    if o.prompt is not None and not o.prompt.strip():
        raise UserError("--prompt is empty")
    if o.top_n < 1:
        raise UserError(f"--top-n {o.top_n}: must be at least 1")


def _dataset(o: LensOptions, pair: ModelPair) -> Dataset:
    """The data file (default: the organism's base data) or the single ``--prompt``."""
    tok = pair.tokenizer
    if o.prompt is not None:
        ids = tok(o.prompt, add_special_tokens=True)["input_ids"]
        if o.max_tokens is not None:
            ids = ids[: o.max_tokens]
        fp = hashlib.sha256(o.prompt.encode()).hexdigest()[:16]
        return Dataset(name="prompt", path=Path("<prompt>"), samples=[Sample(0, list(ids), [True] * len(ids))], fingerprint=fp)
    path = o.data
    if path is None:
        from ...organisms import get_organism

        path = get_organism("cake").data("base")
    return load_dataset(path, tok, text_field=o.text_field, max_samples=o.max_samples, max_tokens=o.max_tokens)


def _config(o: LensOptions, pair: ModelPair, data: Dataset, layers: list[int]) -> dict:
    return {
        "base": pair.base.source.fingerprint, "ft": pair.ft.source.fingerprint, "data": data.fingerprint,
        "layers": layers, "method": o.method, "positions": o.positions, "top_n": o.top_n,
        "drop_punctuation": o.drop_punctuation, "keep_special": o.keep_special, "dtype": o.dtype,
        "patchscope_prompt": o.patchscope_prompt, "patchscope_layer": o.patchscope_layer,
        "prompt_mode": o.prompt is not None,
    }


def _reader(pair_member, o: LensOptions) -> Reader:
    if o.method == "patchscope":
        return patchscope_reader(pair_member, o.patchscope_prompt, o.patchscope_layer, o.chunk_size)
    return logit_lens_reader(pair_member)


def accumulate(pair: ModelPair, data: Dataset, layers: list[int], o: LensOptions) -> LensAccumulator:
    """Both models, every analysed layer, chunked readouts folded into one accumulator."""
    V = pair.shared_vocab
    record = len(data.samples[0].ids) if o.prompt is not None else 0  # prompt mode analyses every position
    acc = LensAccumulator(len(layers), len(data.samples), V, record_positions=record)
    read_b, read_f = _reader(pair.base, o), _reader(pair.ft, o)
    final_b, final_f = logit_lens_reader(pair.base), logit_lens_reader(pair.ft)
    last = pair.base.adapter.n_layers - 1
    pad = pair.tokenizer.pad_token_id or 0
    batches = list(iter_batches(data.samples, o.batch_size, pad))
    for batch in console.track(batches, "lens: both models, all layers"):
        if o.positions == "last" and not record:
            batch.position_mask = last_position_mask(batch.position_mask)
        sample_index = batch.sample_index.unsqueeze(1).expand_as(batch.position_mask)[batch.position_mask]
        hb = layer_states(pair.base, batch, layers)
        hf = layer_states(pair.ft, batch, layers)
        n = sample_index.shape[0]
        for start in range(0, n, o.chunk_size):
            rows = slice(start, min(start + o.chunk_size, n))
            idx = sample_index[rows]
            acc.add_positions(idx)
            ff = log_probs(final_f(last, hf[last][rows]), V)
            fb = log_probs(final_b(last, hb[last][rows]), V).to(ff.device)  # models may sit on two devices
            for li, layer in enumerate(layers):
                lb = fb if layer == last and o.method == "logit-lens" else log_probs(read_b(layer, hb[layer][rows]), V).to(ff.device)
                lf = ff if layer == last and o.method == "logit-lens" else log_probs(read_f(layer, hf[layer][rows]), V)
                acc.update(li, lb, lf, fb, ff, idx, rows if record else None)
        del hb, hf
    if acc.count.max() == 0:
        raise UserError("no positions to analyse in the data (empty position masks)")
    return acc


def order(acc: LensAccumulator, pair: ModelPair, top_n: int, drop_punctuation: bool, keep_special: bool) -> dict:
    """Per-layer means, per-sample matrices and the most promoted / suppressed tokens per layer."""
    keep = torch.tensor(keep_mask(pair.tokenizer, acc.vocab, drop_punctuation=drop_punctuation, drop_special=not keep_special))
    diff = acc.mean_diff()
    prom_ids, prom_vals = top_tokens(diff, top_n, keep, largest=True)
    sup_ids, sup_vals = top_tokens(diff, top_n, keep, largest=False)
    return {
        "means": acc.means(), "samples": acc.sample_means(), "mean_diff": diff,
        "promoted": (prom_ids, prom_vals), "suppressed": (sup_ids, sup_vals),
    }


def _headline(results: dict, layers: list[int], pair: ModelPair) -> None:
    from ...core.tokens import display_tokens, visible

    kl = results["means"]["kl_ft_base"]
    agree = results["means"]["top1_agreement"]
    console.result("KL(ft||base) by layer: " + ", ".join(f"L{layer} {float(v):.4f}" for layer, v in zip(layers, kl, strict=True)))
    console.result(f"top-1 agreement: layer {layers[0]} {float(agree[0]):.3f}, layer {layers[-1]} {float(agree[-1]):.3f}")
    top = display_tokens(pair.tokenizer, results["promoted"][0][-1][:10].tolist())
    console.result(f"most promoted by ft at layer {layers[-1]}: " + ", ".join(repr(visible(t)) for t in top))
