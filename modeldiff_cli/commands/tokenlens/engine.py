"""Native batched gradient attribution: every generated token of every sequence from shared forward passes.

For a sequence ``x_0..x_{n-1}`` whose tokens from ``P`` on were generated, inseq runs one forward/backward per
generated token ``t`` on the prefix ``x_0..x_{P+t-1}``. Under causal masking the output at position ``p`` depends
only on positions ``<= p``, so a single forward over the full sequence yields every step's score
``f_t = score(logits[P+t-1], x_{P+t})`` (probability by default, as inseq). The per-target gradients
``d f_t / d e_i`` are then taken at once with a batched vector-Jacobian product
(``torch.autograd.grad(..., is_grads_batched=True)``, one one-hot cotangent per target): one forward and one
vmapped backward replace ``T`` forwards and ``T`` backwards. Prompts of different lengths are right-padded
(position ids stay ``0..n-1``, padding sits after every real token, so causal masking hides it).

Methods (all aggregated like inseq: L2 norm over the embedding dimension):
  saliency              ``|| d f_t / d e_i ||_2``
  input_x_gradient      ``|| e_i * d f_t / d e_i ||_2``
  integrated_gradients  ``|| (e_i - b_i) * sum_k w_k d f_t / d e_i (b + a_k (e - b)) ||_2`` with captum's
                        Gauss-Legendre nodes ``a_k`` and weights ``w_k``; baseline ``b`` = embedding of the unk
                        token (pad when the tokenizer has none), eos tokens keep their own embedding.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int

NATIVE_METHODS = ("saliency", "input_x_gradient", "integrated_gradients")
SCORES = ("probability", "logit", "logprob")
TOKEN_BUDGET = 2048  # sequence positions per forward (bounds saved activations)
VMAP_BUDGET = 32768  # targets x positions per batched backward (bounds backward intermediates)


@dataclass
class Sequence:
    """One sequence to attribute: ``ids`` = prompt + continuation, the continuation starts at ``prompt_len``."""

    ids: list[int]
    prompt_len: int

    @property
    def n_targets(self) -> int:
        return len(self.ids) - self.prompt_len


def baseline_ids(ids: Int[torch.Tensor, "b n"], tokenizer) -> Int[torch.Tensor, "b n"]:
    """inseq's IG baseline: the unk token everywhere (pad when there is no unk), eos tokens kept."""
    unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.pad_token_id
    eos = tokenizer.eos_token_id
    out = torch.full_like(ids, int(unk))
    if eos is not None:
        out = torch.where(ids == eos, ids, out)
    return out


def _scores(logits: Float[torch.Tensor, "r n v"], pos: Int[torch.Tensor, "r t"], tgt: Int[torch.Tensor, "r t"], score: str) -> Float[torch.Tensor, "r t"]:
    """Score of each target token ``tgt`` read at position ``pos`` (rows of ``logits``)."""
    rows = logits.gather(1, pos.unsqueeze(-1).expand(-1, -1, logits.shape[-1])).float()  # [r, t, v]
    if score == "probability":
        rows = rows.softmax(-1)
    elif score == "logprob":
        rows = rows.log_softmax(-1)
    return rows.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)


def per_target_grads(model, embeds: Float[torch.Tensor, "r n d"], attn: Int[torch.Tensor, "r n"], pos, tgt, valid, score: str) -> Float[torch.Tensor, "t r n d"]:
    """``d f_t / d embeds`` for every target ``t`` of every row, from one forward and one batched backward."""
    embeds = embeds.detach().requires_grad_(True)
    # lm_head only from the first target position on (vocab-sized rows are costly); padded targets point there
    first = int(torch.where(valid > 0, pos, embeds.shape[1] - 1).min())
    pos = torch.where(valid > 0, pos, first)
    keep = embeds.shape[1] - first
    kwargs = {"logits_to_keep": keep} if _accepts_logits_to_keep(model) else {}
    logits = model(inputs_embeds=embeds, attention_mask=attn, use_cache=False, **kwargs).logits
    out = _scores(logits, pos - (embeds.shape[1] - logits.shape[1]), tgt, score) * valid  # [r, t]
    n_t = out.shape[1]
    eye = torch.eye(n_t, dtype=out.dtype, device=out.device)
    cot = eye[:, None, :].expand(n_t, out.shape[0], n_t)  # cotangent k selects target k of every row
    (grads,) = torch.autograd.grad(out, embeds, grad_outputs=cot, is_grads_batched=True)
    return grads


def _accepts_logits_to_keep(model) -> bool:
    import inspect

    return "logits_to_keep" in inspect.signature(model.forward).parameters


def _gauss_legendre(n_steps: int) -> tuple[list[float], list[float]]:
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters("gausslegendre")
    return alphas(n_steps), step_sizes(n_steps)


def _pad(seqs: list[Sequence], pad_id: int, device):
    """Right-padded ids, attention mask, target positions/ids and validity (targets padded to the longest)."""
    n = max(len(s.ids) for s in seqs)
    t = max(s.n_targets for s in seqs)
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), n), dtype=torch.long)
    pos = torch.zeros((len(seqs), t), dtype=torch.long)
    tgt = torch.zeros((len(seqs), t), dtype=torch.long)
    valid = torch.zeros((len(seqs), t))
    for r, s in enumerate(seqs):
        ids[r, : len(s.ids)] = torch.tensor(s.ids)
        attn[r, : len(s.ids)] = 1
        k = torch.arange(s.n_targets)
        pos[r, : s.n_targets] = s.prompt_len - 1 + k
        tgt[r, : s.n_targets] = ids[r, s.prompt_len + k]
        valid[r, : s.n_targets] = 1
    return ids.to(device), attn.to(device), pos.to(device), tgt.to(device), valid.to(device)


def attribute_batch(model, tokenizer, seqs: list[Sequence], method: str, score: str = "probability", n_steps: int = 50) -> list[torch.Tensor]:
    """Per sequence a float32 ``[n, T]`` matrix: row ``i`` input token, column ``t`` generated token; entries
    for tokens not yet in the prefix of step ``t`` (``i >= P + t``) are NaN, as in inseq."""
    if method not in NATIVE_METHODS:
        raise ValueError(f"native engine does not support {method}")
    embed = model.get_input_embeddings()
    device = embed.weight.device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, attn, pos, tgt, valid = _pad(seqs, pad_id, device)
    with torch.no_grad():
        x = embed(ids)
    if method == "integrated_gradients":
        with torch.no_grad():
            base = embed(baseline_ids(ids, tokenizer))
        alphas, weights = _gauss_legendre(n_steps)
        total = torch.zeros((pos.shape[1],) + tuple(x.shape), dtype=torch.float32, device=device)
        per_chunk = max(1, min(TOKEN_BUDGET, VMAP_BUDGET // max(1, pos.shape[1])) // (x.shape[0] * x.shape[1]))
        for lo in range(0, n_steps, per_chunk):
            a = torch.tensor(alphas[lo:lo + per_chunk], dtype=x.dtype, device=device)
            w = torch.tensor(weights[lo:lo + per_chunk], dtype=torch.float32, device=device)
            k = len(a)
            scaled = (base.unsqueeze(0) + a.view(k, 1, 1, 1) * (x - base).unsqueeze(0)).flatten(0, 1)
            g = per_target_grads(model, scaled, attn.repeat(k, 1), pos.repeat(k, 1), tgt.repeat(k, 1),
                                 valid.repeat(k, 1), score)
            g = g.view(g.shape[0], k, *x.shape).float()
            total += torch.einsum("tkbnd,k->tbnd", g, w)
        attr = total * (x - base).float().unsqueeze(0)
    else:
        attr = per_target_grads(model, x, attn, pos, tgt, valid, score).float()
        if method == "input_x_gradient":
            attr = attr * x.float().unsqueeze(0)
    agg = attr.norm(dim=-1).permute(1, 2, 0)  # [b, n, t]
    out = []
    for r, s in enumerate(seqs):
        m = agg[r, : len(s.ids), : s.n_targets].clone()
        future = torch.arange(len(s.ids), device=m.device)[:, None] >= (s.prompt_len + torch.arange(s.n_targets, device=m.device))[None, :]
        m[future] = float("nan")
        out.append(m.cpu())
    return out


def plan_batches(seqs: list[Sequence], batch_size: int, method: str, n_steps: int) -> list[list[int]]:
    """Group sequence indices (sorted by length, so padding stays small) into batches within the budgets."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i].ids))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        cand = cur + [i]
        n = max(len(seqs[j].ids) for j in cand)
        t = max(seqs[j].n_targets for j in cand)
        rows = len(cand) * (min(n_steps, 8) if method == "integrated_gradients" else 1)
        if cur and (len(cand) > batch_size or rows * n > TOKEN_BUDGET or rows * n * t > VMAP_BUDGET):
            batches.append(cur)
            cand = [i]
        cur = cand
    if cur:
        batches.append(cur)
    return batches


@contextmanager
def eager_attention(model):
    """Eager attention while attributing: vmap has batching rules for its matmul/softmax backward, whereas the
    fused SDPA backward falls back to a per-target loop. Restored afterwards."""
    before = getattr(model.config, "_attn_implementation", None)
    switch = before not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if switch:
        try:
            model.set_attn_implementation("eager")
        except Exception:  # noqa: BLE001 - keep the model's own attention
            switch = False
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)


def attribute(model, tokenizer, seqs: list[Sequence], method: str, *, score: str = "probability", n_steps: int = 50,
              batch_size: int = 8, on_batch=None) -> list[torch.Tensor]:
    """Attribute every sequence (see :func:`attribute_batch`), batching within ``batch_size`` and the budgets."""
    results: list[torch.Tensor | None] = [None] * len(seqs)
    with eager_attention(model):
        for group in plan_batches(seqs, batch_size, method, n_steps):
            mats = attribute_batch(model, tokenizer, [seqs[i] for i in group], method, score, n_steps)
            for i, m in zip(group, mats):
                results[i] = m
            if on_batch is not None:
                on_batch(group)
    return results  # type: ignore[return-value]


def normalize(matrix: torch.Tensor) -> torch.Tensor:
    """inseq's normalisation: each column (generated token) divided by its L1 norm over the input tokens."""
    m = torch.nan_to_num(matrix, nan=0.0)
    denom = m.abs().sum(0, keepdim=True).clamp_min(1e-12)
    out = matrix / denom
    return out
