"""The nll pipeline's steps: load -> conditions -> extract (all layers at the scored rows) -> score -> aggregate.

(Writing is ``write.py``; the order of the steps is ``Nll.execute``.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...core.data.pairs import ConditionItems, items_from_data, items_from_pairs
from ...core.model.readout import make_reader
from ...core.spine import checkpoint, console
from ...core.spine import distributed as dist
from .artifacts import METRICS
from .extract import forward_layers, load_item_states, prediction_rows, rows_of, save_item_states
from .score import item_views, score_layers


@dataclass
class Setup:
    """What the conditions are read with: two models (A = base, B = ft) or one model (A and B = its inputs)."""

    mode: str  # models | pairs | hidden
    model_a: object
    model_b: object
    shared_vocab: int
    labels: tuple[str, str]
    sources: dict


def load(cmd) -> Setup:
    """The models of the mode: the pair, one model, or only one model's final norm and lm_head."""
    mode = cmd.mode
    if mode == "models":
        pair = cmd.compared.load()
        return Setup(mode, pair.base, pair.ft, pair.shared_vocab, cmd.labels,
                     {"a": pair.base.source.spec, "b": pair.ft.source.spec})
    loaded = cmd.compared.load(head_only=mode == "hidden")  # hidden: only the final norm and lm_head
    vocab = loaded.adapter.lm_head.weight.shape[0]
    return Setup(mode, loaded, loaded, vocab, cmd.labels, {"model": cmd.model_source.spec})


def conditions(cmd, setup: Setup) -> ConditionItems:
    """The aligned items of A and B: from the --data source (two models) or the --pairs file (one model)."""
    tok = setup.model_a.tokenizer
    d = cmd.data
    if setup.mode == "models":
        return items_from_data(d.data[0], tok, text_field=d.text_field, prompt_field=cmd.prompt_field,
                               completion_field=cmd.completion_field, id_field=cmd.compared.id_field,
                               max_samples=d.max_samples, max_tokens=d.max_tokens)
    c = cmd.compared
    return items_from_pairs(c.pairs, tok, c.fields(), setup.shared_vocab, d.max_samples)


def _batch_states(setup: Setup, items, cmd, n_layers: int, run):
    """Hidden states ``[layers, n, d]`` of A and B at the prediction rows of ``items`` (with
    ``--save-hidden-states``, every position of each item is written into the run directory on the way)."""
    if setup.mode == "hidden":
        ha, hb = [], []
        d = setup.model_a.adapter.lm_head.weight.shape[1]
        for it in items:
            a, b = load_item_states(cmd.hidden_states_dir, it.id, n_layers, d, (len(it.a_ids), len(it.b_ids)))
            ha.append(rows_of(a, it.a_positions))
            hb.append(rows_of(b, it.b_positions))
        return torch.cat(ha, 1), torch.cat(hb, 1)
    pad = setup.model_a.tokenizer.pad_token_id or 0
    seqs_a, seqs_b = [it.a_ids for it in items], [it.b_ids for it in items]
    full_a = forward_layers(setup.model_a, seqs_a, pad)
    full_b = forward_layers(setup.model_b, seqs_b, pad)
    if cmd.save_hidden_states:
        root = run.shared or run.work  # every rank writes its items into rank 0's directory
        for row, it in enumerate(items):
            save_item_states(root, it.id, full_a[:, row, : len(it.a_ids)], full_b[:, row, : len(it.b_ids)])
    return (prediction_rows(full_a, [it.a_positions for it in items]),
            prediction_rows(full_b, [it.b_positions for it in items]))


def score_all(setup: Setup, cond: ConditionItems, cmd, run) -> dict:
    """Per item x layer matrices of every metric, ``all`` and ``last`` views, plus pooled per-layer means."""
    n_layers = setup.model_a.adapter.n_layers
    n_items = len(cond.items)
    read_a, read_b = make_reader(setup.model_a, "logit-lens"), make_reader(setup.model_b, "logit-lens")
    size = cmd.data.batch_size
    # this rank's contiguous block of the one-process run's batches: its items are [lo, hi)
    batches = dist.shard([list(range(s, min(s + size, n_items))) for s in range(0, n_items, size)])
    lo = batches[0][0] if batches else 0
    hi = batches[-1][-1] + 1 if batches else 0
    dist.count_samples(hi - lo)
    # --checkpoint-every: the matrices, the float64 pooled sums and the batches done (a re-run resumes there)
    prog = checkpoint.progress(cmd.checkpoint_every, {"command": "nll", "batches": len(batches), "items": n_items})
    if prog.state:
        mats, pooled, pooled_n = prog.state["mats"], prog.state["pooled"], prog.state["pooled_n"]
    else:
        mats = {f"{m}_{v}": torch.full((n_items, n_layers), float("nan")) for m in METRICS for v in ("all", "last")}
        pooled = {m: torch.zeros(n_layers, dtype=torch.float64) for m in METRICS}
        pooled_n = {m: torch.zeros(n_layers, dtype=torch.float64) for m in METRICS}

    def state() -> dict:
        return {"mats": mats, "pooled": pooled, "pooled_n": pooled_n}

    for idx in console.track(batches[prog.done:], f"nll: {setup.labels[0]} vs {setup.labels[1]}, all layers"):
        items = [cond.items[i] for i in idx]
        ha, hb = _batch_states(setup, items, cmd, n_layers, run)
        counts = [len(it.a_positions) for it in items]
        item = torch.repeat_interleave(torch.tensor(idx), torch.tensor(counts))
        last = torch.zeros(len(item), dtype=torch.bool)
        last[torch.tensor(counts).cumsum(0) - 1] = True
        ta = torch.tensor([it.a_ids[p] for it in items for p in it.a_positions])
        tb = torch.tensor([it.b_ids[p] for it in items for p in it.b_positions])
        js_rows = None if cmd.js_mode == "none" else (last if cmd.js_mode == "last" else torch.ones_like(last))
        scores = score_layers(read_a, read_b, ha, hb, ta, tb, js_rows, setup.shared_vocab, cmd.chunk_size)
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
        prog.step(state)
    prog.finish(state)
    if dist.active():  # per-item rows gathered in item order, pooled sums added in float64
        for key in list(mats):
            mats[key] = dist.gather_rows(mats[key][lo:hi])
        dist.all_sum(*pooled.values(), *pooled_n.values())
    dist.handoff()  # a non-zero rank's share ends here: rank 0 writes
    mats["pooled"] = {m: (pooled[m] / pooled_n[m]).float() for m in METRICS}
    mats["n_positions"] = torch.tensor([len(it.a_positions) for it in cond.items])
    return mats
