"""The mask sweep: mask the top N experts of the ordering (this run's points, or a --mask points file) at every
MoE layer and position, and measure, teacher-forced on the same data, how much of the difference goes away —
against N = 0 and random experts matched per layer.

Base vs ft: ft is masked; ``gain_undone = (NLL_ft_masked - NLL_ft) / (NLL_base - NLL_ft)`` and
``gap_closed = 1 - KL(ft_masked || base) / KL(ft || base)`` (KL per scored position, averaged). One model on two
conditions: the model is masked; ``delta_nll_a`` / ``delta_nll_b`` (masked minus unmasked NLL on each
condition) and ``specificity = delta_nll_b - delta_nll_a``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...core.errors import UserError
from ...core.model.forward import forward
from ...core.model.routers import mask_experts, mask_matrix, router_specs
from ...core.spine import checkpoint, console
from ...core.spine import distributed as dist
from ...core.spine.artifacts import read_json
from .artifacts import SWEEP_CONDITION, SWEEP_COUNTS
from .command import parse_modes, parse_sweep
from .inputs import Inputs, Models, SideBatch


@dataclass
class Condition:
    n: int
    mode: str
    control: str  # "none", "top" or "random"
    draw: int
    masks: dict[int, list[int]]


def ordering(results: dict, cmd) -> list[tuple[int, int]]:
    """(layer, expert) cells in masking order: the --mask file's order, else this run's points."""
    if cmd.mask is None:
        return [(p["layer"], p["router"]) for p in results["points"]]
    rows = read_json(cmd.mask, "--mask")
    try:
        return [(int(r["layer"]), int(r["router"])) for r in rows]
    except (TypeError, KeyError, ValueError):
        raise UserError(f"--mask {cmd.mask}: expected a points file (a list of {{\"layer\", \"router\", ...}})") from None


def conditions(cells: list[tuple[int, int]], specs, cmd) -> list[Condition]:
    counts, modes = parse_sweep(cmd.sweep), parse_modes(cmd.sweep_mode)
    if max(counts) > len(cells):
        raise UserError(f"--sweep {cmd.sweep}: the ordering holds {len(cells)} cells")
    g = torch.Generator().manual_seed(cmd.run.seed)
    out = [Condition(0, "none", "none", 0, {})]
    for n in counts:
        top: dict[int, list[int]] = {}
        for layer, expert in cells[:n]:
            top.setdefault(layer, []).append(expert)
        mask_matrix(top, specs)  # a mask leaving fewer than k experts in a layer: exit 2 before any forward
        draws = []
        for _ in range(cmd.random_draws):  # random experts, as many per layer as the top mask, outside it
            rnd = {}
            for layer, experts in top.items():
                pool = [e for e in range(specs[layer].n_experts) if e not in experts]
                if len(pool) < len(experts):
                    pool = list(range(specs[layer].n_experts))
                pick = torch.randperm(len(pool), generator=g)[: len(experts)].tolist()
                rnd[layer] = [pool[i] for i in pick]
            draws.append(rnd)
        for mode in modes:
            out.append(Condition(n, mode, "top", 0, top))
            out.extend(Condition(n, mode, "random", d, rnd) for d, rnd in enumerate(draws))
    return out


def _scored(logits: torch.Tensor, batch: SideBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """log-probs [n, V] at the positions predicting the scored targets, and the targets [n]."""
    tmask = batch.targets[:, 1:].to(logits.device)
    logp = torch.log_softmax(logits[:, :-1][tmask].float(), dim=-1)
    return logp, batch.ids[:, 1:].to(logits.device)[tmask]


def _nll(logp, targets) -> torch.Tensor:
    return -logp.gather(1, targets[:, None]).squeeze(1)


def _kl(logp, logq) -> torch.Tensor:
    return (logp.exp() * (logp - logq)).sum(-1)


def _logits(loaded, batch: SideBatch) -> torch.Tensor:
    return forward(loaded, batch.ids, batch.attn, logits="all").logits


FLOAT_SUMS = ("nll_a", "nll_b", "nll_masked_a", "nll_masked_b", "kl", "kl_ref")
INT_SUMS = ("n_a", "n_b", "violations", "masked_slots")


def run_sweep(models: Models, inputs: Inputs, results: dict, cmd) -> dict:
    """Every condition over this rank's block of each side's batches (the batches ``collect`` read; a
    condition's random experts come from rank 0, drawn from ``--seed`` alone), the sums added over ranks;
    a non-zero rank stops there (``dist.handoff``)."""
    specs = router_specs(models.b)
    conds = dist.agree(lambda: conditions(ordering(results, cmd), specs, cmd))
    models_mode = inputs.mode == "models"
    sides = [("a", inputs.a)] if models_mode else [("a", inputs.a), ("b", inputs.b)]
    work = [(side, batch) for side, batches in sides for batch in dist.shard(batches)]
    # --checkpoint-every: the per-condition sums and the batches done, in a file of their own ("sweep")
    prog = checkpoint.progress(cmd.checkpoint_every, {"command": "routing", "batches": len(work),
                                                      "conditions": len(conds)}, part="sweep")
    sums = prog.state["sums"] if prog.state else [{**dict.fromkeys(FLOAT_SUMS, 0.0), **dict.fromkeys(INT_SUMS, 0)}
                                                  for _ in conds]
    label = f"mask sweep ({len(conds)} conditions){'' if models_mode else ', side A then side B'}"
    for side, batch in console.track(work[prog.done:], label):
        if models_mode:  # a = base, b = ft (masked); the same scored tokens
            lb, tg = _scored(_logits(models.a, batch), batch)
            lf, _ = _scored(_logits(models.b, batch), batch)
            lf = lf.to(lb.device)
            nll_b, nll_f, kl_ref = _nll(lb, tg).sum(), _nll(lf, tg.to(lf.device)).sum(), _kl(lf, lb).sum()
        else:
            lf, tg = _scored(_logits(models.b, batch), batch)
            nll_f = _nll(lf, tg).sum()
        for c, s in zip(conds, sums, strict=True):
            if c.control == "none":
                lm = lf
            else:
                with mask_experts(specs, c.masks, c.mode) as report:
                    lm, _ = _scored(_logits(models.b, batch), batch)
                s["violations"] += report.violations
                s["masked_slots"] += report.masked_slots
            lm = lm.to(lf.device)
            nll_m = _nll(lm, tg.to(lm.device)).sum()
            if models_mode:
                s["nll_a"] += float(nll_b)
                s["nll_b"] += float(nll_f)
                s["nll_masked_b"] += float(nll_m)
                s["kl"] += float(_kl(lm, lb.to(lm.device)).sum())
                s["kl_ref"] += float(kl_ref)
                s["n_a"] += len(tg)
                s["n_b"] += len(tg)
            else:
                s[f"nll_{side}"] += float(nll_f)
                s[f"nll_masked_{side}"] += float(nll_m)
                s[f"n_{side}"] += len(tg)
        prog.step(lambda: {"sums": sums})
    prog.finish(lambda: {"sums": sums})
    sums = reduce_sums(sums)
    bad = sum(s["violations"] for s in sums)
    if bad:
        raise UserError(f"mask sweep: {bad} masked expert slots still reached the experts (the mask did not act)")
    dist.handoff()  # a non-zero rank's share ends here: rank 0 writes
    rows = [_row(c, s, models_mode) for c, s in zip(conds, sums, strict=True)]
    rows += _random_means(rows)
    metrics = ["gain_undone", "gap_closed"] if models_mode else ["delta_nll_a", "delta_nll_b", "specificity"]
    columns = [*SWEEP_CONDITION, "nll_a", "nll_b", "nll_masked_a", "nll_masked_b", *metrics,
               *([] if not models_mode else ["kl_ft_base", "kl_masked_base"]), *(f"{m}_std" for m in metrics),
               *SWEEP_COUNTS]
    if models_mode:
        columns = [RENAMED.get(c, c) for c in columns if c != "nll_masked_a"]
        rows = [_rename(r) for r in rows]
    return {"rows": rows, "columns": columns, "plot": metrics, **_headline(rows, metrics, cmd)}


def reduce_sums(sums: list[dict]) -> list[dict]:
    """The per-condition sums added over ranks (float64 / int64 all-reduce; the sums themselves with one)."""
    if not dist.active():
        return sums
    floats = torch.tensor([[s[k] for k in FLOAT_SUMS] for s in sums], dtype=torch.float64)
    ints = torch.tensor([[s[k] for k in INT_SUMS] for s in sums], dtype=torch.int64)
    dist.all_sum(floats, ints)
    return [{**dict(zip(FLOAT_SUMS, f, strict=True)), **dict(zip(INT_SUMS, i, strict=True))}
            for f, i in zip(floats.tolist(), ints.tolist(), strict=True)]


RENAMED = {"nll_a": "nll_base", "nll_b": "nll_ft", "nll_masked_b": "nll_ft_masked"}


def _rename(row: dict) -> dict:
    return {RENAMED.get(k, k): v for k, v in row.items() if k != "nll_masked_a"}


def _row(c: Condition, s: dict, models_mode: bool) -> dict:
    def mean(key, n):
        return s[key] / s[n] if s[n] else float("nan")

    row = {"n_masked": c.n, "mode": c.mode, "control": c.control, "draw": c.draw,
           "masked_slots": s["masked_slots"], "masked_in_topk": s["violations"]}
    if models_mode:
        nb, nf, nm = mean("nll_a", "n_a"), mean("nll_b", "n_b"), mean("nll_masked_b", "n_b")
        kl, ref = mean("kl", "n_b"), mean("kl_ref", "n_b")
        gain = nb - nf
        row.update(nll_a=nb, nll_b=nf, nll_masked_b=nm, kl_ft_base=ref, kl_masked_base=kl,
                   gain_undone=(nm - nf) / gain if gain else float("nan"),
                   gap_closed=1 - kl / ref if ref else float("nan"))
    else:
        na, nb = mean("nll_a", "n_a"), mean("nll_b", "n_b")
        ma, mb = mean("nll_masked_a", "n_a"), mean("nll_masked_b", "n_b")
        row.update(nll_a=na, nll_b=nb, nll_masked_a=ma, nll_masked_b=mb, delta_nll_a=ma - na, delta_nll_b=mb - nb,
                   specificity=(mb - nb) - (ma - na))
    return row


def _random_means(rows: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["n_masked"], r["mode"]) for r in rows if r["control"] == "random"})
    for n, mode in keys:
        group = [r for r in rows if r["control"] == "random" and r["n_masked"] == n and r["mode"] == mode]
        mean_row = {"n_masked": n, "mode": mode, "control": "random_mean", "draw": len(group),
                    "masked_slots": sum(r["masked_slots"] for r in group),
                    "masked_in_topk": sum(r["masked_in_topk"] for r in group)}
        for key, value in group[0].items():
            if key in mean_row or not isinstance(value, float):
                continue
            vals = torch.tensor([r[key] for r in group], dtype=torch.float64)
            mean_row[key] = float(vals.mean())
            mean_row[f"{key}_std"] = float(vals.std()) if len(vals) > 1 else 0.0
        out.append(mean_row)
    return out


def _headline(rows: list[dict], metrics: list[str], cmd) -> dict:
    metric = metrics[0]
    figures, lines = {}, [f"mask sweep ({metric}; random: mean +/- std of {cmd.random_draws} draws matched per layer):"]
    for r in rows:
        if r["control"] != "top":
            continue
        rnd = next(x for x in rows if x["control"] == "random_mean" and x["n_masked"] == r["n_masked"]
                   and x["mode"] == r["mode"])
        key = f"{r['mode']}:{r['n_masked']}"
        figures[key] = {"top": r[metric], "random_mean": rnd[metric], "random_std": rnd[f"{metric}_std"]}
        lines.append(f"  mask top {r['n_masked']:>3} ({r['mode']}): {r[metric]:+.4f}   random {rnd[metric]:+.4f} "
                     f"+/- {rnd[f'{metric}_std']:.4f}" + ("" if math.isfinite(r[metric]) else "  (undefined)"))
    return {"headline": figures, "lines": lines}
