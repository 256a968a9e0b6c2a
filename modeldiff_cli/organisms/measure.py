"""Measurements the builders record in ground_truth.json and the tests re-check on the saved checkpoints.

Every forward goes through the one forward path (``core.model.forward.forward``, which takes a bare transformers model)
and every batch is right-padded by ``core.model.padding.pad``; routers are found by ``core.model.arch`` and read by ``core.model.routers``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..core.model.arch import adapter_for
from ..core.model.forward import forward
from ..core.model.padding import pad
from ..core.model.routers import capture_routing, router_specs


def _batch(tokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (BOS prepended by the tokenizer) and attention mask of `texts`, right-padded."""
    return pad(tokenizer(list(texts))["input_ids"], tokenizer.pad_token_id)


@torch.no_grad()
def position_logits(model, tokenizer, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """Next-token logits ``[positions, vocab]`` at every real (non-pad) position of `texts` (BOS prepended)."""
    rows = []
    for i in range(0, len(texts), batch_size):
        ids, mask = _batch(tokenizer, texts[i: i + batch_size])
        logits = forward(model, ids, mask, logits="all").logits.float()
        rows.append(logits[mask.bool().to(logits.device)].cpu())
    return torch.cat(rows)


def topk_diff_counts(base_logits: torch.Tensor, ft_logits: torch.Tensor, k: int) -> torch.Tensor:
    """How often each token is among the `k` largest ``ft - base`` logit differences of a position."""
    top = (ft_logits - base_logits).topk(k, dim=-1).indices
    return torch.bincount(top.flatten(), minlength=base_logits.shape[-1])


def mean_set_prob(logits: torch.Tensor, ids: Sequence[int]) -> float:
    """Mean over positions of the probability mass on the token set `ids`."""
    return float(logits.softmax(-1)[:, list(ids)].sum(-1).mean())


def planted_recovery(base, ft, tokenizer, texts: Sequence[str], planted_ids: Sequence[int], k: int = 20,
                     top: int = 10) -> dict:
    """The cake acceptance numbers: planted tokens among the `top` most counted, probability margin."""
    lb, lf = position_logits(base, tokenizer, texts), position_logits(ft, tokenizer, texts)
    counts = topk_diff_counts(lb, lf, k)
    ranked = counts.argsort(descending=True, stable=True)[:top].tolist()
    return {
        "k": k,
        "positions": int(lb.shape[0]),
        "top_counted_tokens": tokenizer.convert_ids_to_tokens(ranked),
        "planted_in_top": sum(i in set(planted_ids) for i in ranked),
        "p_planted_base": mean_set_prob(lb, planted_ids),
        "p_planted_ft": mean_set_prob(lf, planted_ids),
    }


def routers_of(model) -> dict[int, torch.nn.Module]:
    """Layer index -> router module of an MoE model, as ``core.model.arch`` finds them."""
    return adapter_for(model).routers


@torch.no_grad()
def expert_usage(model, tokenizer, texts: Sequence[str], routers: dict[int, torch.nn.Module],
                 batch_size: int = 64) -> torch.Tensor:
    """Fraction of top-k routing slots each expert gets, per layer of `routers`: ``[layers, experts]`` (real
    tokens only). The router outputs are captured by ``core.model.forward`` and read by ``core.model.routers`` (the model's
    own selected experts, cross-checked against the top k of its logits)."""
    specs = {layer: spec for layer, spec in router_specs(model).items() if layer in routers}
    n_exp = next(iter(specs.values())).n_experts
    slots = {layer: torch.zeros(n_exp) for layer in specs}
    picks = 0
    for i in range(0, len(texts), batch_size):
        ids, mask = _batch(tokenizer, texts[i: i + batch_size])
        cap = forward(model, ids, mask, routers=True, logits="all")
        real = mask.flatten().bool()
        for layer, r in capture_routing(cap.routers, specs, ids.numel()).items():
            idx = r.indices.cpu()[real]
            slots[layer] += torch.bincount(idx.flatten(), minlength=n_exp).float()
        picks += int(real.sum()) * next(iter(specs.values())).top_k
    return torch.stack([slots[layer] / picks for layer in sorted(specs)])


@torch.no_grad()
def answer_accuracy(model, tokenizer, prompts: Sequence[str], expected_ids: Sequence[int],
                    candidate_ids: Sequence[int]) -> list[bool]:
    """Per prompt: is the expected token the argmax, among the candidates, of the next-token logits?"""
    ids, mask = _batch(tokenizer, prompts)
    logits = forward(model, ids, mask, logits="all").logits.cpu()
    last = logits[torch.arange(len(prompts)), mask.sum(1) - 1][:, list(candidate_ids)]
    guess = torch.tensor(candidate_ids)[last.argmax(-1)]
    return [bool(g == e) for g, e in zip(guess.tolist(), expected_ids, strict=True)]
