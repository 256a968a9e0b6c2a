"""A feature's tokens: what the fine-tune changed in the models' predictions where the feature is active.

For a feature at layer l with a weight w_p >= 0 per stored position p of the paired sample (a direction u: the
part of the difference it carries there, max(0, (h_ft - h_base) . u); a latent: its activation), the reading is

    r = sum_p w_p [log_softmax(lens_ft(h_ft,p)) - log_softmax(lens_base(h_base,p))] / sum_p w_p,

lens = final norm + lm_head of each model (at the last layer, the models' own log-probs). Its top tokens are the
ones ft makes more likely than base where the feature is present: an activation-difference lens reading weighted
by the feature. Why not the logit lens of the vector alone (kept as ``lens_tokens``): a mean difference averages
position-specific changes (ft predicts " galaxy" after " the" in astronomy text, not everywhere) into a vector
whose own lens reads " the", " s"; on the held-out-style astronomy pair that lens holds none of the 6 planted
words at any layer (docs/interpret.md).

Cost: one pass per layer for all of its features together, both models' heads on at most ``READ_ROWS`` stored
positions, in chunks (memory: one chunk x vocabulary). When the sample holds more positions, the read ones are
each feature's ``TOP_ROWS`` most active positions plus a seeded random choice of the rest, and every position's
weight is divided by its chance of being read (1 for the top ones), so the mean stays the whole sample's.
"""

from __future__ import annotations

import math

import torch

from ...core.model.readout import readout

READ_ROWS = 4096  # stored positions read per layer (all of them when the sample is smaller)
TOP_ROWS = 256  # each feature's most active positions, always read


def direction_weights(sample, vector: torch.Tensor) -> torch.Tensor:
    """[n] the part of each position's difference that lies along the direction (0 where ft has less of it)."""
    unit = torch.nn.functional.normalize(vector.float(), dim=0)
    return ((sample.ft - sample.base) @ unit).clamp_min(0)


def chosen_rows(weights: torch.Tensor, budget: int = READ_ROWS, top: int = TOP_ROWS,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows to read for ``weights`` [n, F] and each row's chance of being chosen: all rows with a positive weight
    when they fit in ``budget``; else each feature's ``top`` rows (chance 1) and a seeded uniform choice of the
    other active rows (chance = chosen / available)."""
    active = (weights > 0).any(1).nonzero().flatten()
    if active.numel() <= budget:
        return active, torch.ones(active.numel())
    k = min(top, weights.shape[0])
    sure = torch.unique(torch.topk(weights, k, dim=0).indices.flatten())
    sure = sure[(weights[sure] > 0).any(1)]
    rest = active[~torch.isin(active, sure)]
    take = max(0, min(budget - sure.numel(), rest.numel()))
    gen = torch.Generator().manual_seed(seed)
    picked = rest[torch.randperm(rest.numel(), generator=gen)[:take]]
    rows = torch.cat([sure, picked])
    chance = torch.cat([torch.ones(sure.numel()), torch.full((picked.numel(),), take / max(rest.numel(), 1))])
    order = torch.argsort(rows)
    return rows[order], chance[order]


def prediction_changes(pair, sample, weights: torch.Tensor, keep: torch.Tensor, top_n: int,
                       chunk: int = 256, budget: int = READ_ROWS) -> list[dict | None]:
    """For each column of ``weights`` [n, F] (one feature each), the weighted mean change of log-probs (ft minus
    base, each through its own final norm and head): its ``top_n`` promoted and suppressed token ids (among
    ``keep``), the score and how many positions were read; None for a feature with no positive weight."""
    V = pair.shared_vocab
    w = weights.float().clamp_min(0)
    rows, chance = chosen_rows(w, budget)
    F = w.shape[1]
    total = torch.zeros(F, V, dtype=torch.float64)
    if rows.numel():
        scaled = w[rows] / chance.unsqueeze(1)  # [r, F]
        for s in range(0, rows.numel(), chunk):
            idx = rows[s : s + chunk]
            lf = torch.log_softmax(readout(pair.ft.adapter, sample.ft[idx])[:, :V].cpu(), -1)
            lb = torch.log_softmax(readout(pair.base.adapter, sample.base[idx])[:, :V].cpu(), -1)
            total += (scaled[s : s + chunk].T @ (lf - lb)).double()
        mass = scaled.sum(0).double()
    else:
        mass = torch.zeros(F, dtype=torch.float64)
    out: list[dict | None] = []
    for f in range(F):
        if float(mass[f]) <= 0:
            out.append(None)
            continue
        score = (total[f] / mass[f]).float()
        masked = score.masked_fill(~keep[:V], float("nan"))
        out.append({"score": score,
                    "promoted": torch.argsort(torch.nan_to_num(masked, nan=-math.inf), descending=True)[:top_n].tolist(),
                    "suppressed": torch.argsort(torch.nan_to_num(masked, nan=math.inf))[:top_n].tolist(),
                    "positions": int((w[rows, f] > 0).sum())})
    return out
