"""Per-sample pooled vectors at chosen layers: Δh = h_new - h_old, g = dL/dh (new checkpoint), Δh ⊙ g, and
integrated gradients along h_old -> h_new.

One forward per checkpoint per batch plus one backward at the new checkpoint give Δh, g and Δh ⊙ g together;
``ig`` adds K interpolated forward/backward passes per layer. Vectors are pooled per sample with per-position
weights (last / mean / span) and returned in float32 on the CPU.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ...core.model.divergence import nll
from ...core.model.forward import Capture, forward
from ...core.model.hooks import patch_layers
from ...core.model.padding import pad
from ...core.model.readout import chunk_rows, head
from ...core.spine import console
from ...core.typing import (
    CandidateIds,
    PaddedTokens,
    Pooled,
    PoolWeights,
    SequenceHidden,
    SequenceLogits,
    SequenceScores,
    TrainVectors,
)
from .choices import LOSSES, POOLINGS  # noqa: F401  (re-exported)
from .inputs import Item

STATS = {"forward": 0, "backward": 0}  # counts of model calls (tests assert cache reuse with it)


@dataclass
class Padded:
    ids: PaddedTokens
    attn: PaddedTokens
    tgt: PaddedTokens  # next-token target at loss positions, -100 elsewhere
    pool: PoolWeights  # pooling weights, each row sums to 1
    cands: CandidateIds  # candidate answer tokens, -1 = none

    def to(self, device) -> Padded:
        return Padded(*(t.to(device) for t in (self.ids, self.attn, self.tgt, self.pool, self.cands)))


def pool_weights(lengths: list[int], loss_pos: list[list[int]], width: int, pooling: str) -> PoolWeights:
    """last: the last token; last-loss: the last loss position (documents' ``last``: a document's last token
    predicts nothing, so its gradient is zero there); mean: every token; span: the loss positions (a query's
    answer span; a document's answer positions with --pooling span)."""
    w = torch.zeros(len(lengths), width)
    for r, (n, pos) in enumerate(zip(lengths, loss_pos)):
        if pooling == "mean":
            w[r, :n] = 1.0
        elif pooling == "span" and pos:
            w[r, pos] = 1.0
        elif pooling == "last-loss" and pos:
            w[r, pos[-1]] = 1.0
        else:
            w[r, n - 1] = 1.0
    return w / w.sum(1, keepdim=True)


def collate(items: list[Item], pad_id: int, pooling: str) -> Padded:
    """Right-padded ids and attention (``core.model.padding.pad``), the target grid (-100 off the loss positions),
    the pooling weights and the candidate grid (-1 = none, at least one column)."""
    ids, attn = pad([it.ids for it in items], pad_id)
    targets = []
    for it in items:
        row = [-100] * len(it.ids)
        for p, t in zip(it.loss_pos, it.targets):
            row[p] = t
        targets.append(row)
    tgt, _ = pad(targets, pad_id, width=ids.shape[1], fill=-100)
    cands, _ = pad([it.cands for it in items], pad_id, width=1, fill=-1)
    pool = pool_weights([len(it.ids) for it in items], [it.loss_pos for it in items], ids.shape[1], pooling)
    return Padded(ids, attn, tgt, pool, cands)


def sample_losses(logits: SequenceLogits, tgt: PaddedTokens,
                  cands: CandidateIds, kind: str) -> SequenceScores:
    """Per-sample loss: mean next-token cross-entropy over the loss positions (``ce``), or, for rows with
    candidates and ``margin``, minus the target's margin logit[t] - logsumexp(logit[other candidates]) at the
    first answer position."""
    logits = logits.float()
    valid = tgt != -100
    logp = torch.log_softmax(logits, -1).gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    ce = -(logp * valid).sum(1) / valid.sum(1).clamp(min=1)
    if kind != "margin":
        return ce
    return -margins(logits, tgt, cands, fallback=-ce)


def sequence_losses(read, ids: PaddedTokens, attn: torch.Tensor, vocab: int,
                    chunk_size: int | None = None) -> SequenceScores:
    """Per-sample mean next-token cross-entropy over every position of the right-padded batch, float32 on the CPU.
    ``read(b, t)`` gives the float logits ``[n, vocab]`` at those positions (the head on final states, or rows of
    logits already computed); positions are read in chunks (``core.model.readout.chunk_rows``), so at most one
    ``chunk x vocab`` block of log-probabilities exists at a time."""
    valid = (attn[:, 1:] > 0) & (attn[:, :-1] > 0)
    b, t = valid.nonzero(as_tuple=True)
    step = chunk_rows(chunk_size, ids.device, vocab)
    total = torch.zeros(ids.shape[0], dtype=torch.float64)
    for start in range(0, len(b), step):
        bi, ti = b[start : start + step], t[start : start + step]
        logp = torch.log_softmax(read(bi, ti).float(), -1)
        total.index_add_(0, bi.cpu(), nll(logp, ids[bi, ti + 1].to(logp.device)).double().cpu())
    return (total / valid.sum(1).clamp(min=1).cpu()).float()


def margins(logits: SequenceLogits, tgt: PaddedTokens, cands: CandidateIds,
            fallback: SequenceScores | None = None) -> SequenceScores:
    """Target logit minus logsumexp of the other candidates at the first answer position (log-prob of the
    target when a row has no other candidate, or ``fallback`` when given)."""
    B = logits.shape[0]
    valid = tgt != -100
    first = torch.where(valid.any(1), valid.float().argmax(1), torch.zeros(B, dtype=torch.long, device=tgt.device))
    rows = torch.arange(B, device=logits.device)
    at = logits[rows, first].float()  # [B, V]
    t = tgt[rows, first].clamp(min=0)
    other = (cands >= 0) & (cands != t[:, None])
    cand_logits = at.gather(1, cands.clamp(min=0)).masked_fill(~other, float("-inf"))
    has = other.any(1)
    m = at[rows, t] - torch.logsumexp(cand_logits.masked_fill(~has[:, None], 0.0), 1)
    alt = fallback if fallback is not None else torch.log_softmax(at, -1)[rows, t]
    return torch.where(has, m, alt)


@contextmanager
def _embeddings_need_grad(embed: torch.nn.Module):
    """Make the embedding output a leaf that requires grad, so dL/dh flows to every layer (weights stay frozen)."""
    handle = embed.register_forward_hook(lambda _m, _i, out: out.detach().requires_grad_(True))
    try:
        yield
    finally:
        handle.remove()


def run_model(loaded, batch: Padded, **kw) -> Capture:
    """``core.model.forward.forward`` on a padded batch, counted in ``STATS`` (tests assert cache reuse with it)."""
    STATS["forward"] += 1
    return forward(loaded, batch.ids, batch.attn, **kw)


def _pool(x: SequenceHidden, w: PoolWeights) -> Pooled:
    return torch.einsum("btd,bt->bd", x.float(), w.to(x.device))


def extract_vectors(old, new, items: list[Item], layers: list[int], pooling: str, loss: str,
                    batch_size: int, desc: str, losses: bool = False) -> dict[str, torch.Tensor]:
    """``dh``, ``g`` and ``dhg`` pooled per sample: each ``[layers, samples, hidden]`` float32 on the CPU; with
    ``losses`` also ``ce``: each sample's mean next-token cross-entropy over its whole sequence under old and new,
    ``[2, samples, 1]`` (what the ``loss-drop`` method reads), from the forwards the Δh needs anyway: the old
    model's final states read through its head in chunks, the new model's logits the gradient needs."""
    pad_id = old.tokenizer.pad_token_id or 0
    out: dict[str, list] = {"dh": [], "g": [], "dhg": []} | ({"ce": []} if losses else {})
    for start in console.track(range(0, len(items), batch_size), desc, total=-(-len(items) // batch_size)):
        batch = collate(items[start : start + batch_size], pad_id, pooling).to(old.device)
        cap_o = run_model(old, batch, layers=layers, final=losses)
        cap_old = cap_o.layers
        nb = batch.to(new.device)
        with torch.enable_grad(), _embeddings_need_grad(new.adapter.embed):
            cap = run_model(new, nb, layers=layers, logits="all", grad=True)
            total = sample_losses(cap.logits, nb.tgt, nb.cands, loss).sum()
            STATS["backward"] += 1
            grads = torch.autograd.grad(total, [cap.layers[l] for l in layers])
        if losses:
            vocab, final_old, logits_new = cap.logits.shape[-1], cap_o.final, cap.logits.detach()
            ce_old = sequence_losses(lambda b, t, h=final_old: head(old.adapter, h[b, t]), batch.ids, batch.attn, vocab)
            ce_new = sequence_losses(lambda b, t, z=logits_new: z[b, t], nb.ids, nb.attn, vocab)
            out["ce"].append(torch.stack([ce_old, ce_new])[:, :, None])
        mask = nb.attn.unsqueeze(-1).float()
        per = {"dh": [], "g": [], "dhg": []}
        for l, g in zip(layers, grads):
            dh = (cap.layers[l].detach().float() - cap_old[l].float().to(new.device)) * mask
            g = g.float() * mask
            per["dh"].append(_pool(dh, nb.pool))
            per["g"].append(_pool(g, nb.pool))
            per["dhg"].append(_pool(dh * g, nb.pool))
        for k in per:
            out[k].append(torch.stack(per[k]).cpu())
    return {k: torch.cat(v, 1) for k, v in out.items()}


def extract_ig(old, new, items: list[Item], layers: list[int], pooling: str, loss: str, steps: int,
               batch_size: int, desc: str) -> TrainVectors:
    """Integrated gradients at each layer: Δh ⊙ (1/K) Σ_k dL/dh evaluated at h_old + (k - 1/2)/K · Δh (midpoint
    Riemann sum), with the new checkpoint's later layers on top of the interpolated state; pooled per sample."""
    pad_id = old.tokenizer.pad_token_id or 0
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    rows = []
    for start in console.track(range(0, len(items), batch_size), desc, total=-(-len(items) // batch_size)):
        batch = collate(items[start : start + batch_size], pad_id, pooling).to(new.device)
        cap_old = run_model(old, batch, layers=layers).layers
        cap_new = run_model(new, batch, layers=layers).layers
        B = batch.ids.shape[0]
        rep = Padded(*(t.repeat(steps, 1) for t in (batch.ids, batch.attn, batch.tgt, batch.pool, batch.cands)))
        per = []
        for l in layers:
            h0 = cap_old[l].float().to(new.device)
            dh = cap_new[l].float() - h0
            path = (h0[None] + alphas.to(new.device)[:, None, None, None] * dh[None]).reshape(steps * B, *h0.shape[1:])
            path = path.to(cap_new[l].dtype).requires_grad_(True)
            with torch.enable_grad(), patch_layers(new.adapter.layers, {l: lambda _h, p=path: p}):
                logits = run_model(new, rep, logits="all", grad=True).logits
                total = sample_losses(logits, rep.tgt, rep.cands, loss).sum()
                STATS["backward"] += 1
                (grad,) = torch.autograd.grad(total, [path])
            mean_grad = grad.float().reshape(steps, B, *h0.shape[1:]).mean(0)
            per.append(_pool(dh * mean_grad * batch.attn.unsqueeze(-1), batch.pool))
        rows.append(torch.stack(per).cpu())
    return torch.cat(rows, 1)


def layer_states(model, items: list[Item], layers: list[int], pad_id: int):
    """Full hidden states ``{layer: [1, T, D]}`` and logits ``[1, T, V]`` of a single item (no grad)."""
    batch = collate(items, pad_id, "last").to(model.device)
    cap = run_model(model, batch, layers=layers, logits="all")
    return {l: cap.layers[l] for l in layers}, cap.logits, batch
