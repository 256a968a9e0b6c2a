"""Native batched gradient attribution: every generated token of every sequence from one causal pass.

For a sequence ``x_0..x_{n-1}`` whose tokens from ``P`` on were generated, inseq runs one forward/backward per
generated token ``t`` on the prefix ``x_0..x_{P+t-1}``, for the score ``f_t = score(logits[P+t-1], x_{P+t})``
(probability by default, as inseq). Under causal masking the output at position ``p`` depends only on positions
``<= p``, so the engine instead:

1. left-pads the batch so every prompt ends at the same position ``Np - 1`` (position ids count real tokens
   only, so padding changes nothing) and target ``t`` of every row is read at position ``Np - 1 + t``;
2. runs ONE forward in position chunks of ``c`` targets, each chunk attending to the previous ones through the
   key/value cache with the autograd graph kept (the cache is concatenated, not detached);
3. right after chunk ``k``, takes ``d f_t / d e_i`` for its ``c`` targets at once with a batched
   vector-Jacobian product (``torch.autograd.grad(..., is_grads_batched=True)``, one one-hot cotangent per
   target). That backward only reaches chunks ``0..k``: the gradient of target ``t`` is computed over its
   prefix up to the end of its chunk (``P + t + c - 1`` positions at most), not the whole sequence.

So ``T`` forwards and ``T`` full-length backwards become one forward and ``T / c`` truncated batched backwards.
The last token is never an input of any step and is left out of the forward.

Methods (all aggregated like inseq: L2 norm over the embedding dimension):
  saliency              ``|| d f_t / d e_i ||_2``
  input_x_gradient      ``|| e_i * d f_t / d e_i ||_2``
  integrated_gradients  ``|| (e_i - b_i) * sum_k w_k d f_t / d e_i (b + a_k (e - b)) ||_2`` with captum's
                        Gauss-Legendre nodes ``a_k`` and weights ``w_k``; baseline ``b`` = embedding of the unk
                        token (pad when the tokenizer has none), eos tokens keep their own embedding. The ``k``
                        interpolation points are extra rows of the same batch: prompts x points in one pass, as
                        many points per pass as the device's budgets allow (``budgets``), the passes as even as
                        possible; on CUDA a pass that runs out of memory is retried with half the budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ...core.model.arch import cache_kwarg, forward_accepts
from ...core.model.padding import pad, position_ids
from ...core.typing import (
    Embeddings,
    TargetIds,
    TargetLogits,
    TargetScores,
    TargetTokens,
    TargetWeights,
    TokenGrid,
)
from . import budgets as budgeting
from .budgets import CHUNK, Budgets, split
from .names import NATIVE_METHODS, SCORES

__all__ = ["NATIVE_METHODS", "SCORES", "Sequence", "attribute", "attribute_batch", "left_pad", "normalize"]


@dataclass
class Sequence:
    """One sequence to attribute: ``ids`` = prompt + continuation, the continuation starts at ``prompt_len``."""

    ids: list[int]
    prompt_len: int

    @property
    def n_targets(self) -> int:
        return len(self.ids) - self.prompt_len


@dataclass
class Batch:
    """Left-padded rows: every prompt ends at position ``n_prompt - 1``; target ``t`` is read there ``+ t``."""

    ids: TokenGrid
    attn: TokenGrid
    pos: TokenGrid  # position ids: 0.. from each row's first real token
    valid: TargetWeights  # 1 where row r has a target t
    n_prompt: int
    n_targets: int

    @property
    def targets(self) -> TargetIds:
        return self.ids[:, self.n_prompt:]

    def repeat(self, k: int) -> Batch:
        return Batch(self.ids.repeat(k, 1), self.attn.repeat(k, 1), self.pos.repeat(k, 1), self.valid.repeat(k, 1),
                     self.n_prompt, self.n_targets)


def baseline_ids(ids: TokenGrid, tokenizer) -> TokenGrid:
    """inseq's IG baseline: the unk token everywhere (pad when there is no unk), eos tokens kept."""
    unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.pad_token_id
    eos = tokenizer.eos_token_id
    out = torch.full_like(ids, int(unk))
    if eos is not None:
        out = torch.where(ids == eos, ids, out)
    return out


def left_pad(seqs: list[Sequence], pad_id: int, device) -> Batch:
    """Prompts left-padded (``core.model.padding.pad(side="left")``) so that every prompt ends at ``n_prompt - 1``,
    continuations right-padded after them; position ids count real tokens only (``core.model.padding.position_ids``)."""
    p_ids, p_mask = pad([s.ids[: s.prompt_len] for s in seqs], pad_id, side="left")
    c_ids, c_mask = pad([s.ids[s.prompt_len:] for s in seqs], pad_id, side="right")
    ids, attn = torch.cat([p_ids, c_ids], 1), torch.cat([p_mask, c_mask], 1)
    return Batch(ids.to(device), attn.to(device), position_ids(attn).to(device), c_mask.float().to(device),
                 p_ids.shape[1], c_ids.shape[1])


def _scores(logits: TargetLogits, tgt: TargetTokens, score: str) -> TargetScores:
    rows = logits.float()
    if score == "probability":
        rows = rows.softmax(-1)
    elif score == "logprob":
        rows = rows.log_softmax(-1)
    return rows.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)


def chunk_bounds(n_prompt: int, n_targets: int, chunk: int) -> list[int]:
    """Forward chunk boundaries over positions ``0 .. n_prompt + n_targets - 1`` (the last token is no input):
    chunk 0 ends after the first ``chunk`` targets' read positions, the next ones hold ``chunk`` positions."""
    first, end = n_prompt - 1, n_prompt + n_targets - 1  # target 0 is read at `first`
    return [0, *range(first + chunk, end, chunk), end]


def causal_grads(model, x: Embeddings, batch: Batch, score: str, chunk: int) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield ``(t_lo, t_hi, g)`` per chunk, ``g[j, r, i] = d f_{t_lo + j} / d x[r, i]`` for positions ``i < hi``
    (shape ``[t_hi - t_lo, r, hi, d]``): the forward runs chunk by chunk through the key/value cache (its graph
    kept), and right after chunk ``k`` one batched backward takes the gradients of the targets read in it. That
    backward reaches chunks ``0..k`` only."""
    bounds = chunk_bounds(batch.n_prompt, batch.n_targets, chunk)
    chunked = len(bounds) > 2
    keep_ok = forward_accepts(model, "logits_to_keep")
    cache_key = cache_kwarg(model)
    first_read = batch.n_prompt - 1
    leaves: list[torch.Tensor] = []
    cache = None
    for lo, hi in zip(bounds, bounds[1:]):
        leaf = x[:, lo:hi].detach().requires_grad_(True)
        leaves.append(leaf)
        first = max(lo, first_read)  # first position whose logits are read
        kwargs = {"logits_to_keep": hi - first} if keep_ok else {}
        kwargs.update({cache_key: cache, "use_cache": True} if chunked else {"use_cache": False})
        out = model(inputs_embeds=leaf, attention_mask=batch.attn[:, :hi], position_ids=batch.pos[:, lo:hi], **kwargs)
        if chunked:
            cache = out.cache if "cache" in out else out.past_key_values
        t_lo, t_hi = first - first_read, hi - first_read
        logits = out.logits[:, out.logits.shape[1] - (hi - first):]
        f = _scores(logits, batch.targets[:, t_lo:t_hi], score) * batch.valid[:, t_lo:t_hi]  # [r, c]
        c = f.shape[1]
        cot = torch.eye(c, dtype=f.dtype, device=f.device)[:, None, :].expand(c, f.shape[0], c)
        grads = torch.autograd.grad(f, leaves, grad_outputs=cot, is_grads_batched=True, retain_graph=hi < bounds[-1])
        yield t_lo, t_hi, torch.cat(grads, dim=2)


def _gauss_legendre(n_steps: int) -> tuple[list[float], list[float]]:
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters("gausslegendre")
    return alphas(n_steps), step_sizes(n_steps)


def alpha_groups(n_steps: int, rows: int, positions: int, chunk: int, budgets: Budgets = budgeting.CPU) -> int:
    """Interpolation points per pass: as many as the budgets allow for ``rows`` prompts (at least one)."""
    return max(1, min(n_steps, budgets.pass_rows(positions, chunk) // rows))


def _positions(seqs: list[Sequence]) -> int:
    return max(s.prompt_len for s in seqs) + max(s.n_targets for s in seqs)


def _chunk(seqs: list[Sequence], chunk: int) -> int:
    """Targets per batched backward for these sequences (no more than their longest continuation)."""
    return max(1, min(chunk, max(s.n_targets for s in seqs)))


def attribute_batch(model, tokenizer, seqs: list[Sequence], method: str, score: str = "probability", n_steps: int = 50,
                    chunk: int = CHUNK, budgets: Budgets | None = None) -> list[torch.Tensor]:
    """Per sequence a float32 ``[n, T]`` matrix: row ``i`` input token, column ``t`` generated token; entries
    for tokens not yet in the prefix of step ``t`` (``i >= P + t``) are NaN, as in inseq. ``budgets``: how many
    interpolation points one pass holds (default: from the model's device)."""
    if method not in NATIVE_METHODS:
        raise ValueError(f"native engine does not support {method}")
    budgets = budgets or budgeting.for_model(model)
    embed = model.get_input_embeddings()
    device = embed.weight.device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if max(s.n_targets for s in seqs) == 0:
        return [torch.zeros((len(s.ids), 0)) for s in seqs]
    batch = left_pad(seqs, pad_id, device)
    b, n, t = batch.ids.shape[0], batch.ids.shape[1], batch.n_targets
    chunk = max(1, min(chunk, t))
    with torch.no_grad():
        x = embed(batch.ids)
    if method == "integrated_gradients":
        with torch.no_grad():
            base = embed(baseline_ids(batch.ids, tokenizer))
        alphas, weights = _gauss_legendre(n_steps)
        alphas = torch.tensor(alphas, dtype=x.dtype, device=device)
        weights = torch.tensor(weights, dtype=torch.float32, device=device)
        total = torch.zeros((t, b, n, x.shape[-1]), dtype=torch.float32, device=device)
        for lo, hi in split(n_steps, alpha_groups(n_steps, b, n, chunk, budgets)):
            k = hi - lo  # interpolation points lo..hi-1 of every prompt: k x b rows of one pass
            scaled = (base.unsqueeze(0) + alphas[lo:hi].view(k, 1, 1, 1) * (x - base).unsqueeze(0)).flatten(0, 1)
            for t_lo, t_hi, g in causal_grads(model, scaled, batch.repeat(k), score, chunk):
                g = g.view(t_hi - t_lo, k, b, *g.shape[2:]).float()
                total[t_lo:t_hi, :, : g.shape[3]] += torch.einsum("ckbnd,k->cbnd", g, weights[lo:hi])
            del scaled, g
        agg = (total * (x - base).float().unsqueeze(0)).norm(dim=-1).permute(1, 2, 0)
    else:
        agg = torch.full((b, n, t), float("nan"), device=device)
        for t_lo, t_hi, g in causal_grads(model, x, batch, score, chunk):
            g = g.float()
            if method == "input_x_gradient":
                g = g * x[:, : g.shape[2]].float().unsqueeze(0)
            agg[:, : g.shape[2], t_lo:t_hi] = g.norm(dim=-1).permute(1, 2, 0)
    agg = agg.cpu()  # one transfer for the whole batch
    out = []
    for r, s in enumerate(seqs):
        off = batch.n_prompt - s.prompt_len
        m = agg[r, off:off + len(s.ids), : s.n_targets].clone()
        m[torch.arange(len(s.ids))[:, None] >= (s.prompt_len + torch.arange(s.n_targets))[None, :]] = float("nan")
        out.append(m)
    return out


def plan_batches(seqs: list[Sequence], batch_size: int, method: str, n_steps: int,
                 budgets: Budgets = budgeting.CPU, chunk: int = CHUNK) -> list[list[int]]:
    """Group sequence indices into batches within the budgets, sorted by prompt length (left padding stays
    small) and then by continuation length."""
    order = sorted(range(len(seqs)), key=lambda i: (seqs[i].prompt_len, seqs[i].n_targets))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        cand = cur + [i]
        picked = [seqs[j] for j in cand]
        if cur and (len(cand) > batch_size or len(cand) > budgets.forward_rows(_positions(picked), _chunk(picked, chunk))):
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
              batch_size: int = 8, chunk: int = CHUNK, on_batch=None, budgets: Budgets | None = None) -> list[torch.Tensor]:
    """Attribute every sequence (see :func:`attribute_batch`), batching within ``batch_size`` and the budgets
    (default: from the model's device). A batch that runs out of CUDA memory is retried with half the budget
    (fewer interpolation points per pass), then split in two; a single sequence at one point per pass re-raises."""
    budgets = budgets or budgeting.for_model(model)
    results: list[torch.Tensor | None] = [None] * len(seqs)
    with eager_attention(model):
        for group in plan_batches(seqs, batch_size, method, n_steps, budgets, chunk):
            todo = [group]
            while todo:
                part = todo.pop(0)
                picked = [seqs[i] for i in part]
                try:
                    mats = attribute_batch(model, tokenizer, picked, method, score, n_steps, chunk, budgets)
                except Exception as err:  # noqa: BLE001 - only CUDA out-of-memory is retried
                    if not budgeting.is_out_of_memory(err):
                        raise
                    mats = None
                    steps = alpha_groups(n_steps, len(part), _positions(picked), _chunk(picked, chunk), budgets)
                    if method == "integrated_gradients" and steps > 1:
                        budgets, todo = budgets.halved(), [part, *todo]
                    elif len(part) > 1:
                        todo = [part[: len(part) // 2], part[len(part) // 2:], *todo]
                    else:
                        raise
                if mats is None:
                    budgeting.release_cache(model)  # outside the handler: the failed pass's tensors are gone
                    continue
                for i, m in zip(part, mats):
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
