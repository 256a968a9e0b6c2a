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
from jaxtyping import Float, Int

from ...core import console
from ...core.hooks import capture_layers, patch_layers
from .inputs import Item

STATS = {"forward": 0, "backward": 0}  # counts of model calls (tests assert cache reuse with it)
POOLINGS = ("last", "mean", "span")
LOSSES = ("ce", "margin")


@dataclass
class Padded:
    ids: Int[torch.Tensor, "B T"]
    attn: Int[torch.Tensor, "B T"]
    tgt: Int[torch.Tensor, "B T"]  # next-token target at loss positions, -100 elsewhere
    pool: Float[torch.Tensor, "B T"]  # pooling weights, each row sums to 1
    cands: Int[torch.Tensor, "B C"]  # candidate answer tokens, -1 = none

    def to(self, device) -> Padded:
        return Padded(*(t.to(device) for t in (self.ids, self.attn, self.tgt, self.pool, self.cands)))


def pool_weights(lengths: list[int], loss_pos: list[list[int]], width: int, pooling: str) -> Float[torch.Tensor, "B T"]:
    """last: the last token; mean: every token; span: the loss positions (the answer span of a query)."""
    w = torch.zeros(len(lengths), width)
    for r, (n, pos) in enumerate(zip(lengths, loss_pos)):
        if pooling == "mean":
            w[r, :n] = 1.0
        elif pooling == "span" and pos:
            w[r, pos] = 1.0
        else:
            w[r, n - 1] = 1.0
    return w / w.sum(1, keepdim=True)


def collate(items: list[Item], pad_id: int, pooling: str) -> Padded:
    width = max(len(it.ids) for it in items)
    n_c = max([len(it.cands) for it in items] + [1])
    B = len(items)
    ids = torch.full((B, width), pad_id, dtype=torch.long)
    attn = torch.zeros((B, width), dtype=torch.long)
    tgt = torch.full((B, width), -100, dtype=torch.long)
    cands = torch.full((B, n_c), -1, dtype=torch.long)
    for r, it in enumerate(items):
        ids[r, : len(it.ids)] = torch.tensor(it.ids)
        attn[r, : len(it.ids)] = 1
        if it.loss_pos:
            tgt[r, it.loss_pos] = torch.tensor(it.targets[: len(it.loss_pos)])
        if it.cands:
            cands[r, : len(it.cands)] = torch.tensor(it.cands)
    pool = pool_weights([len(it.ids) for it in items], [it.loss_pos for it in items], width, pooling)
    return Padded(ids, attn, tgt, pool, cands)


def sample_losses(logits: Float[torch.Tensor, "B T V"], tgt: Int[torch.Tensor, "B T"],
                  cands: Int[torch.Tensor, "B C"], kind: str) -> Float[torch.Tensor, " B"]:
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


def margins(logits: Float[torch.Tensor, "B T V"], tgt: Int[torch.Tensor, "B T"], cands: Int[torch.Tensor, "B C"],
            fallback: Float[torch.Tensor, " B"] | None = None) -> Float[torch.Tensor, " B"]:
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


def _forward(model, batch: Padded):
    STATS["forward"] += 1
    return model(input_ids=batch.ids, attention_mask=batch.attn)


def _pool(x: Float[torch.Tensor, "B T D"], w: Float[torch.Tensor, "B T"]) -> Float[torch.Tensor, "B D"]:
    return torch.einsum("btd,bt->bd", x.float(), w.to(x.device))


def extract_vectors(old, new, items: list[Item], layers: list[int], pooling: str, loss: str,
                    batch_size: int, desc: str) -> dict[str, torch.Tensor]:
    """``dh``, ``g`` and ``dhg`` pooled per sample: each ``[layers, samples, hidden]`` float32 on the CPU."""
    pad = old.tokenizer.pad_token_id or 0
    out: dict[str, list] = {"dh": [], "g": [], "dhg": []}
    for start in console.track(range(0, len(items), batch_size), desc, total=-(-len(items) // batch_size)):
        batch = collate(items[start : start + batch_size], pad, pooling).to(old.device)
        with torch.no_grad(), capture_layers(old.adapter.layers, layers) as cap_old:
            _forward(old.model, batch)
        nb = batch.to(new.device)
        with torch.enable_grad(), _embeddings_need_grad(new.adapter.embed), \
                capture_layers(new.adapter.layers, layers, detach=False) as cap_new:
            logits = _forward(new.model, nb).logits
            total = sample_losses(logits, nb.tgt, nb.cands, loss).sum()
            STATS["backward"] += 1
            grads = torch.autograd.grad(total, [cap_new[l] for l in layers])
        mask = nb.attn.unsqueeze(-1).float()
        per = {"dh": [], "g": [], "dhg": []}
        for l, g in zip(layers, grads):
            dh = (cap_new[l].detach().float() - cap_old[l].float().to(new.device)) * mask
            g = g.float() * mask
            per["dh"].append(_pool(dh, nb.pool))
            per["g"].append(_pool(g, nb.pool))
            per["dhg"].append(_pool(dh * g, nb.pool))
        for k in out:
            out[k].append(torch.stack(per[k]).cpu())
    return {k: torch.cat(v, 1) for k, v in out.items()}


def extract_ig(old, new, items: list[Item], layers: list[int], pooling: str, loss: str, steps: int,
               batch_size: int, desc: str) -> Float[torch.Tensor, "L N D"]:
    """Integrated gradients at each layer: Δh ⊙ (1/K) Σ_k dL/dh evaluated at h_old + (k - 1/2)/K · Δh (midpoint
    Riemann sum), with the new checkpoint's later layers on top of the interpolated state; pooled per sample."""
    pad = old.tokenizer.pad_token_id or 0
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    rows = []
    for start in console.track(range(0, len(items), batch_size), desc, total=-(-len(items) // batch_size)):
        batch = collate(items[start : start + batch_size], pad, pooling).to(new.device)
        with torch.no_grad(), capture_layers(old.adapter.layers, layers) as cap_old:
            _forward(old.model, batch)
        with torch.no_grad(), capture_layers(new.adapter.layers, layers) as cap_new:
            _forward(new.model, batch)
        B = batch.ids.shape[0]
        rep = Padded(*(t.repeat(steps, 1) for t in (batch.ids, batch.attn, batch.tgt, batch.pool, batch.cands)))
        per = []
        for l in layers:
            h0 = cap_old[l].float().to(new.device)
            dh = cap_new[l].float() - h0
            path = (h0[None] + alphas.to(new.device)[:, None, None, None] * dh[None]).reshape(steps * B, *h0.shape[1:])
            path = path.to(cap_new[l].dtype).requires_grad_(True)
            with torch.enable_grad(), patch_layers(new.adapter.layers, {l: lambda _h, p=path: p}):
                logits = _forward(new.model, rep).logits
                total = sample_losses(logits, rep.tgt, rep.cands, loss).sum()
                STATS["backward"] += 1
                (grad,) = torch.autograd.grad(total, [path])
            mean_grad = grad.float().reshape(steps, B, *h0.shape[1:]).mean(0)
            per.append(_pool(dh * mean_grad * batch.attn.unsqueeze(-1), batch.pool))
        rows.append(torch.stack(per).cpu())
    return torch.cat(rows, 1)


def layer_states(model, items: list[Item], layers: list[int], pad_id: int):
    """Full hidden states ``{layer: [T, D]}`` and logits ``[T, V]`` of a single item (no grad)."""
    batch = collate(items, pad_id, "last").to(model.device)
    with torch.no_grad(), capture_layers(model.adapter.layers, layers) as cap:
        logits = _forward(model.model, batch).logits
    return {l: cap[l] for l in layers}, logits, batch
