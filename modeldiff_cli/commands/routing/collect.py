"""Extract and accumulate: one forward per model per batch, router outputs read by ``core.model.routers``, folded
into the streaming accumulators of ``stats``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...core.errors import UserError
from ...core.model.forward import forward
from ...core.model.routers import RouterSpec, Routing, capture_routing, router_specs, selection_scores
from ...core.spine import checkpoint, console
from ...core.spine import distributed as dist
from .inputs import Inputs, Models, SideBatch
from .stats import PairStats, SideStats


@dataclass
class Stats:
    layers: list[int]  # MoE layer indices (model layers)
    n_experts: int
    k: int  # experts per token the statistics use
    model_k: int  # the model's own
    a: SideStats
    b: SideStats
    pair: PairStats | None
    views: list[str]
    specs: dict[int, RouterSpec]


def check_specs(a: dict[int, RouterSpec], b: dict[int, RouterSpec]) -> None:
    if sorted(a) != sorted(b) or any(a[i].n_experts != b[i].n_experts for i in a):
        raise UserError("base and ft route differently: their MoE layers or expert counts differ")


def route(loaded, batch: SideBatch, specs: dict[int, RouterSpec], k: int) -> list[Routing]:
    """The analysed rows' routing at every MoE layer of one batch (one forward, no lm_head)."""
    cap = forward(loaded, batch.ids, batch.attn, routers=True)
    routing = capture_routing(cap.routers, specs, batch.ids.numel())
    rows = batch.rows.to(next(iter(routing.values())).probs.device)
    out = []
    for layer, r in routing.items():
        probs, idx = r.probs[rows], r.indices[rows]
        if idx.shape[-1] != k:  # --top-k other than the model's own: re-pick from the router's scores
            idx = selection_scores(probs, specs[layer]).topk(k, dim=-1).indices
        picked = probs.gather(1, idx)
        out.append(Routing(probs, idx, picked / picked.sum(-1, keepdim=True).clamp_min(1e-20), r.own_indices))
    return out


def poisson(seed: int, side: int, index: int, batch: SideBatch, replicates: int) -> torch.Tensor:
    """[R, S_batch] Poisson(1) bootstrap weights of the batch's samples (same seed -> same weights)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + side * 7_919 + index)
    n = len(torch.unique(batch.sample))
    return torch.poisson(torch.ones(replicates, n), generator=g)


def collect(models: Models, inputs: Inputs, cmd) -> Stats:
    specs_a = router_specs(models.a)
    specs_b = specs_a if models.b is models.a else router_specs(models.b)
    check_specs(specs_a, specs_b)
    layers = sorted(specs_a)
    E = specs_a[layers[0]].n_experts
    model_k = specs_a[layers[0]].top_k
    k = cmd.top_k or model_k
    if k > E:
        raise UserError(f"--top-k {k}: the model has {E} experts per layer")
    V, L, R = len(inputs.views), len(layers), cmd.bootstrap
    a, b = SideStats(V, L, E, k, R), SideStats(V, L, E, k, R)
    pair = PairStats(V, L) if inputs.paired else None
    seed = cmd.run.seed
    # each rank: a contiguous block of the one-process run's batches, with their global indices (the bootstrap
    # seeds); the sums are added over ranks below. Paired: one work item per aligned batch pair; otherwise side
    # A's batches then side B's
    if inputs.paired:
        work = [(0, i, pb) for i, pb in dist.shard_indexed(list(zip(inputs.a, inputs.b, strict=True)))]
        dist.count_samples(sum(len(torch.unique(ba.sample)) for _, _, (ba, _) in work))
    else:
        work = [(side, i, batch) for side, batches in enumerate((inputs.a, inputs.b))
                for i, batch in dist.shard_indexed(batches)]
        dist.count_samples(sum(len(torch.unique(batch.sample)) for _, _, batch in work))
    # --checkpoint-every: the float64 sums of both sides (and the pair) and the work items done
    prog = checkpoint.progress(cmd.checkpoint_every, {"command": "routing", "batches": len(work)})
    if prog.state:
        a, b, pair = prog.state["a"], prog.state["b"], prog.state["pair"]

    def state() -> dict:
        return {"a": a, "b": b, "pair": pair}

    label = "routing: both sides" if inputs.paired else "routing: side A, then side B"
    for side, i, batch in console.track(work[prog.done:], label):
        if inputs.paired:
            ba, bb = batch
            ra, rb = route(models.a, ba, specs_a, k), route(models.b, bb, specs_b, k)
            w = poisson(seed, 0, i, ba, R)  # paired: the same resampling of samples on both sides
            a.add(ra, ba.views, ba.sample, w)
            b.add(rb, bb.views, bb.sample, w)
            pair.add(ra, rb, ba.views, ba.sample)
        else:
            acc, loaded, specs = (a, models.a, specs_a) if side == 0 else (b, models.b, specs_b)
            acc.add(route(loaded, batch, specs, k), batch.views, batch.sample, poisson(seed, side + 1, i, batch, R))
        prog.step(state)
    prog.finish(state)
    reduce_ranks(a, b, pair)
    if a.tokens[0] == 0 or b.tokens[0] == 0:
        raise UserError("no positions to analyse in the data")
    if not cmd.sweep:  # with --sweep every rank goes on: the sweep is sharded the same way (it hands off)
        dist.handoff()  # a non-zero rank's share ends here: rank 0 orders and writes
    return Stats(layers, E, k, model_k, a, b, pair, inputs.views, specs_a)


def reduce_ranks(a: SideStats, b: SideStats, pair: PairStats | None) -> None:
    """Every accumulator summed over the ranks of a data-parallel run (float64 all-reduce; nothing with one)."""
    if not dist.active():
        return
    for side in (a, b):
        dist.all_sum(side.weight, side.slots, side.prob, side.entropy, side.tokens, side.boot_weight, side.boot_tokens)
        side.samples = dist.sum_int(side.samples)
    if pair is not None:
        dist.all_sum(*pair.sample_sums.values(), pair.sample_counts, *pair.token_sums.values(), pair.tokens)
