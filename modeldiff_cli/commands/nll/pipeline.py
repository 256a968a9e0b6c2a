"""The nll pipeline: load -> conditions -> extract (all layers at the scored rows) -> score -> aggregate -> write."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ...core import console
from ...core.errors import UserError
from ...core.options import RunSettings
from ...core.rundir import config_hash, run_directory, slug
from .conditions import Conditions, PairFields, items_from_data, items_from_pairs
from .extract import all_layer_states, forward_states, load_item_states, rows_of, save_item_states
from .score import item_views, reader, score_layers
from .write import METRICS, write_outputs


@dataclass
class NllOptions(RunSettings):
    base: str | None
    ft: str | None
    model: str | None
    data: Path | None
    pairs: Path | None
    hidden_states_dir: Path | None
    save_hidden_states: Path | None
    fields: PairFields
    prompt_field: str
    completion_field: str
    js_mode: str
    label_a: str | None
    label_b: str | None


@dataclass
class Setup:
    """What the conditions are read with: two models (A = base, B = ft) or one model (A and B = its inputs)."""

    mode: str  # models | pairs | hidden
    model_a: object
    model_b: object
    shared_vocab: int
    labels: tuple[str, str]
    sources: dict


def run(o: NllOptions) -> Path:
    mode = _validate(o)
    torch.manual_seed(o.seed)
    setup = _load(o, mode)
    cond = _conditions(o, setup)
    config = _config(o, setup, cond)
    src = "_vs_".join(dict.fromkeys([setup.model_a.source.label, setup.model_b.source.label]))
    parts = ["nll", src, slug(f"{cond.name}-{mode}-{config_hash(config)}")]
    with run_directory(o.out, parts, config, command="nll", overwrite=o.overwrite) as run_dir:
        if run_dir.reused:
            console.info(f"reusing the complete run in {run_dir.path} (pass --overwrite to recompute)")
        else:
            n_layers = setup.model_a.adapter.n_layers
            views = score_all(setup, cond, o, n_layers)
            run_dir.metadata.update(mode=mode, sources=setup.sources, labels=list(setup.labels))
            summary = write_outputs(run_dir, views, cond, setup, o)
            _headline(summary, setup.labels)
    if o.save_hidden_states is not None:
        _save_states(setup, cond, o.save_hidden_states)
    console.done(run_dir.path)
    return run_dir.path


def _validate(o: NllOptions) -> str:
    if o.js_mode not in ("none", "all", "last"):
        raise UserError(f"--js-mode {o.js_mode!r}: expected none, all or last")
    if o.pairs is not None:
        if o.base is not None or o.ft is not None:
            raise UserError("--pairs compares two inputs of one --model; --base/--ft go with --data")
        if o.data is not None:
            raise UserError("--data and --pairs are exclusive: give one")
        return "hidden" if o.hidden_states_dir is not None else "pairs"
    if o.hidden_states_dir is not None:
        raise UserError("--hidden-states-dir needs --pairs (the token ids and positions of each item)")
    if o.save_hidden_states is not None:
        raise UserError("--save-hidden-states works with --model and --pairs")
    if o.model is not None:
        raise UserError("--model goes with --pairs; to compare two models on one file use --base/--ft --data")
    return "models"


def _load(o: NllOptions, mode: str) -> Setup:
    from ...core.models import load_model, load_pair, resolve_source

    if mode == "models":
        pair = load_pair(o.base, o.ft, dtype=o.dtype, device=o.device, base_device=o.base_device,
                         ft_device=o.ft_device, device_map=o.device_map)
        labels = (o.label_a or "base", o.label_b or "ft")
        return Setup(mode, pair.base, pair.ft, pair.shared_vocab, labels,
                     {"a": pair.base.source.spec, "b": pair.ft.source.spec})
    source = resolve_source(o.model, role="ft", flag="--model")
    if mode == "hidden":
        if not o.hidden_states_dir.is_dir():
            raise UserError(f"--hidden-states-dir {o.hidden_states_dir}: no such directory")
        from .head import load_head

        loaded = load_head(source, dtype=o.dtype, device=o.device)
    else:
        loaded = load_model(source, dtype=o.dtype, device=o.device, device_map=o.device_map, flag="--model")
    vocab = loaded.adapter.lm_head.weight.shape[0]
    labels = (o.label_a or "A", o.label_b or "B")
    return Setup(mode, loaded, loaded, vocab, labels, {"model": source.spec})


def _conditions(o: NllOptions, setup: Setup) -> Conditions:
    tok = setup.model_a.tokenizer
    if setup.mode == "models":
        path = o.data
        if path is None:
            from ...organisms import get_organism

            path = get_organism("cake").data("base")
        return items_from_data(path, tok, text_field=o.text_field, prompt_field=o.prompt_field,
                               completion_field=o.completion_field, id_field=o.fields.id,
                               max_samples=o.max_samples, max_tokens=o.max_tokens)
    return items_from_pairs(o.pairs, tok, o.fields, setup.shared_vocab, o.max_samples)


def _config(o: NllOptions, setup: Setup, cond: Conditions) -> dict:
    from ...core.models import model_fingerprint

    fps = {k: model_fingerprint(m.source) for k, m in (("a", setup.model_a), ("b", setup.model_b))}
    hidden_fp = None
    if setup.mode == "hidden":
        hidden_fp = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in o.hidden_states_dir.iterdir() if p.is_file())
    return {"mode": setup.mode, "models": fps, "data": cond.fingerprint, "js_mode": o.js_mode,
            "labels": list(setup.labels), "dtype": o.dtype, "hidden_states": hidden_fp}


def _batch_states(setup: Setup, items, o: NllOptions, n_layers: int):
    """Hidden states ``[layers, n, d]`` of A and B at the prediction rows of ``items``."""
    if setup.mode == "hidden":
        ha, hb = [], []
        d = setup.model_a.adapter.lm_head.weight.shape[1]
        for it in items:
            a, b = load_item_states(o.hidden_states_dir, it.id, n_layers, d, (len(it.a_ids), len(it.b_ids)))
            ha.append(rows_of(a, it.a_positions))
            hb.append(rows_of(b, it.b_positions))
        return torch.cat(ha, 1), torch.cat(hb, 1)
    pad = setup.model_a.tokenizer.pad_token_id or 0
    ha = forward_states(setup.model_a, [it.a_ids for it in items], [it.a_positions for it in items], pad)
    hb = forward_states(setup.model_b, [it.b_ids for it in items], [it.b_positions for it in items], pad)
    return ha, hb


def score_all(setup: Setup, cond: Conditions, o: NllOptions, n_layers: int) -> dict[str, torch.Tensor]:
    """Per item x layer matrices of every metric, ``all`` and ``last`` views, plus pooled per-layer sums."""
    n_items = len(cond.items)
    mats = {f"{m}_{v}": torch.full((n_items, n_layers), float("nan")) for m in METRICS for v in ("all", "last")}
    pooled = {m: torch.zeros(n_layers, dtype=torch.float64) for m in METRICS}
    pooled_n = {m: torch.zeros(n_layers, dtype=torch.float64) for m in METRICS}
    read_a, read_b = reader(setup.model_a), reader(setup.model_b)
    batches = [list(range(s, min(s + o.batch_size, n_items))) for s in range(0, n_items, o.batch_size)]
    for idx in console.track(batches, f"nll: {setup.labels[0]} vs {setup.labels[1]}, all layers"):
        items = [cond.items[i] for i in idx]
        ha, hb = _batch_states(setup, items, o, n_layers)
        counts = [len(it.a_positions) for it in items]
        item = torch.repeat_interleave(torch.tensor(idx), torch.tensor(counts))
        last = torch.zeros(len(item), dtype=torch.bool)
        last[torch.tensor(counts).cumsum(0) - 1] = True
        ta = torch.tensor([it.a_ids[p] for it in items for p in it.a_positions])
        tb = torch.tensor([it.b_ids[p] for it in items for p in it.b_positions])
        js_rows = None if o.js_mode == "none" else (last if o.js_mode == "last" else torch.ones_like(last))
        scores = score_layers(read_a, read_b, ha, hb, ta, tb, js_rows, setup.shared_vocab, o.chunk_size)
        for m in METRICS:
            if m == "js" and js_rows is None:
                continue
            mean_all, last_vals, sums, cnt = item_views(scores[m], item, last, n_items)
            sel = torch.tensor(idx)
            mats[f"{m}_all"][sel] = mean_all[sel]
            mats[f"{m}_last"][sel] = last_vals[sel]
            pooled[m] += sums.sum(0)
            pooled_n[m] += cnt.sum(0)
        del ha, hb
    mats["pooled"] = {m: (pooled[m] / pooled_n[m]).float() for m in METRICS}
    mats["n_positions"] = torch.tensor([len(it.a_positions) for it in cond.items])
    return mats


def _save_states(setup: Setup, cond: Conditions, directory: Path) -> None:
    if setup.mode != "pairs":
        return
    for it in console.track(cond.items, "saving hidden states"):
        a = all_layer_states(setup.model_a, it.a_ids)
        b = all_layer_states(setup.model_b, it.b_ids)
        save_item_states(directory, it.id, a, b)
    console.info(f"hidden states of {len(cond.items)} items written to {directory}")


def _headline(summary: dict, labels: tuple[str, str]) -> None:
    last = summary["last_layer"]
    a, b = labels
    console.result(
        f"last layer ({last['layer']}): NLL {a} {last['nll_a_all']:.4f} vs {b} {last['nll_b_all']:.4f} "
        f"(delta {b}-{a} {last['delta_all']:+.4f}) over all scored positions; last position: "
        f"{last['nll_a_last']:.4f} vs {last['nll_b_last']:.4f} (delta {last['delta_last']:+.4f})"
    )
