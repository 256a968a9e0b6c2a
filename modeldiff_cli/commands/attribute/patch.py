"""`patch`: cross-checkpoint causal patching.

For a query z_test and a candidate training document z: gate the top p% hidden dimensions of z's pooled
Δh_l ⊙ g_l (by magnitude), run the old model on z_test with those dimensions of layer l replaced by the new
model's values (at every position), and score the change of the target's logit margin:
``score_l(z_test, z) = margin_old+patch(z) - margin_old``. Candidates are batched: one forward of the old
model runs many gated copies of the same query. Only a candidate pool is patched (the top N by another
method, all documents when the training set is small); documents outside the pool score -inf.
"""

from __future__ import annotations

import torch

from ...core.model.hooks import patch_layers
from ...core.spine import console
from ...core.typing import CandidatePool, LayerScores, PoolGate, PoolVectors, Scores, TrainVectors
from .extract import Padded, layer_states, margins, run_model
from .inputs import Item


def gate_masks(vectors: PoolVectors, percentile: float) -> PoolGate:
    """True on each row's top ``percentile``% dimensions by |value| (at least one dimension)."""
    D = vectors.shape[-1]
    k = max(1, int(round(D * percentile / 100.0)))
    idx = vectors.abs().topk(k, dim=-1).indices
    return torch.zeros_like(vectors, dtype=torch.bool).scatter_(-1, idx, True)


def patch_scores(old, new, queries: list[Item], gate: TrainVectors, pool: CandidatePool,
                 layers: list[int], percentile: float, batch_size: int) -> LayerScores:
    """Per-layer margin change for each query's pooled candidates (-inf outside the pool)."""
    pad = old.tokenizer.pad_token_id or 0
    L, N = gate.shape[0], gate.shape[1]
    out = torch.full((L, len(queries), N), float("-inf"), dtype=torch.float64)
    for qi in console.track(range(len(queries)), "attribute: patch (old model, gated dims)"):
        item = queries[qi]
        h_old, logit_old, batch = layer_states(old, [item], layers, pad)
        h_new, _, _ = layer_states(new, [item], layers, pad)
        m_old = margins(logit_old, batch.tgt, batch.cands)[0]
        cand = pool[qi]
        for li, l in enumerate(layers):
            masks = gate_masks(gate[li, cand], percentile).to(old.device)  # [P, D]
            donor = h_new[l].to(old.device)  # [1, T, D]
            for s in range(0, len(cand), batch_size * 4):
                m = masks[s : s + batch_size * 4]
                rep = Padded(*(t.expand(m.shape[0], -1) for t in (batch.ids, batch.attn, batch.tgt, batch.pool, batch.cands)))
                fn = lambda h, m=m, d=donor: torch.where(m[:, None, :], d.to(h.dtype), h)  # noqa: E731
                with patch_layers(old.adapter.layers, {l: fn}):
                    logits = run_model(old, rep, logits="all").logits
                out[li, qi, cand[s : s + m.shape[0]]] = (margins(logits, rep.tgt, rep.cands) - m_old).double().cpu()
    return out


def candidate_pool(prior: Scores, size: int) -> CandidatePool:
    """Each query's top ``size`` documents by a prior score (all documents when size >= N)."""
    size = min(size, prior.shape[1])
    return prior.topk(size, dim=1).indices
