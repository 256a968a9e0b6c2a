"""Load and check the inputs of `mine`: the model pair (both resident, or one at a time in two-pass mode),
the datasets (tokenized with the base tokenizer) and the layer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...core.arch import resolve_layer
from ...core.data import Dataset, load_dataset
from ...core.errors import UserError
from ...core.models import (
    LoadedModel,
    ModelSource,
    PairReport,
    check_pair,
    load_config,
    load_model,
    load_pair,
    load_tokenizer,
    resolve_source,
)


@dataclass
class Inputs:
    base_source: ModelSource
    ft_source: ModelSource
    report: PairReport
    tokenizer: object
    datasets: list[Dataset]
    n_layers: int
    layer: int | None
    base: LoadedModel | None = None  # None in two-pass mode until loaded
    ft: LoadedModel | None = None

    @property
    def shared_vocab(self) -> int:
        return self.report.shared_vocab


def load_inputs(o, paths: list[Path]) -> Inputs:
    if o.two_pass:
        bs, fs = resolve_source(o.base, "base", "--base"), resolve_source(o.ft, "ft", "--ft")
        bcfg = load_config(bs, "--base")
        report = check_pair(bcfg, load_config(fs, "--ft"), load_tokenizer(bs, "--base"), load_tokenizer(fs, "--ft"))
        if not report.compatible:
            raise UserError(f"--base {bs.spec} and --ft {fs.spec} cannot be diffed: " + "; ".join(report.reasons))
        tokenizer = load_tokenizer(bs, "--base")
        n_layers = getattr(bcfg, "num_hidden_layers", None) or bcfg.get_text_config().num_hidden_layers
        base = ft = None
    else:
        pair = load_pair(o.base, o.ft, dtype=o.dtype, device=o.device, base_device=o.base_device,
                         ft_device=o.ft_device, device_map=o.device_map)
        bs, fs, report, tokenizer = pair.base.source, pair.ft.source, pair.report, pair.tokenizer
        n_layers, base, ft = pair.base.adapter.n_layers, pair.base, pair.ft
    if o.top_k > report.shared_vocab:
        raise UserError(f"--top-k {o.top_k}: larger than the vocabulary the models share ({report.shared_vocab} tokens)")
    layer = None
    if o.extraction != "logits":
        layer = resolve_layer(o.layer if o.layer is not None else "-1", n_layers, "--layer")
    datasets, names = [], set()
    for p in paths:
        flag = "--data"
        ds = load_dataset(p, tokenizer, text_field=o.text_field, max_samples=o.max_samples, max_tokens=o.max_tokens, flag=flag)
        base_name, k = ds.name, 2
        while ds.name in names:
            ds.name, k = f"{base_name}_{k}", k + 1
        names.add(ds.name)
        datasets.append(ds)
    return Inputs(bs, fs, report, tokenizer, datasets, n_layers, layer, base, ft)


def load_one(o, source: ModelSource, flag: str) -> LoadedModel:
    own = o.base_device if flag == "--base" else o.ft_device
    return load_model(source, dtype=o.dtype, device=own or o.device, device_map=o.device_map, flag=flag,
                      device_flag=(flag + "-device") if own else "--device")
