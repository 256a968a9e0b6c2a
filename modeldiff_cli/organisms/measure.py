"""Measurements the builders record in ground_truth.json and the tests re-check on the saved checkpoints."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .train import pad_batch


@torch.no_grad()
def position_logits(model, tokenizer, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """Next-token logits ``[positions, vocab]`` at every real (non-pad) position of `texts` (BOS prepended)."""
    rows = []
    for i in range(0, len(texts), batch_size):
        seqs = tokenizer(list(texts[i: i + batch_size]))["input_ids"]
        ids, mask, _ = pad_batch(seqs, tokenizer.pad_token_id)
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        rows.append(logits[mask.bool()])
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
    """Layer index -> router module (transformers 5: ``model.layers[i].mlp.gate``)."""
    return {i: layer.mlp.gate for i, layer in enumerate(model.model.layers)}


@torch.no_grad()
def expert_usage(model, tokenizer, texts: Sequence[str], routers: dict[int, torch.nn.Module],
                 batch_size: int = 64) -> torch.Tensor:
    """Fraction of top-k routing slots each expert gets, per layer: ``[layers, experts]`` (real tokens only)."""
    picked: dict[int, list[torch.Tensor]] = {i: [] for i in routers}
    keep: list[torch.Tensor] = []

    def hook(layer):
        def fn(module, args, output):
            picked[layer].append(output[2].detach())  # (router_logits, top_weights, top_idx)
        return fn

    handles = [gate.register_forward_hook(hook(i)) for i, gate in routers.items()]
    try:
        for i in range(0, len(texts), batch_size):
            ids, mask, _ = pad_batch(tokenizer(list(texts[i: i + batch_size]))["input_ids"], tokenizer.pad_token_id)
            model(input_ids=ids, attention_mask=mask)
            keep.append(mask.flatten().bool())
    finally:
        for h in handles:
            h.remove()
    real = torch.cat(keep)
    n_exp = model.config.num_experts
    usage = torch.zeros(len(routers), n_exp)
    for row, layer in enumerate(sorted(routers)):
        idx = torch.cat(picked[layer])[real]
        usage[row] = torch.bincount(idx.flatten(), minlength=n_exp).float() / idx.numel()
    return usage


@torch.no_grad()
def answer_accuracy(model, tokenizer, prompts: Sequence[str], expected_ids: Sequence[int],
                    candidate_ids: Sequence[int]) -> list[bool]:
    """Per prompt: is the expected token the argmax, among the candidates, of the next-token logits?"""
    seqs = tokenizer(list(prompts))["input_ids"]
    ids, mask, _ = pad_batch(seqs, tokenizer.pad_token_id)
    logits = model(input_ids=ids, attention_mask=mask).logits
    last = logits[torch.arange(len(seqs)), mask.sum(1) - 1][:, list(candidate_ids)]
    guess = torch.tensor(candidate_ids)[last.argmax(-1)]
    return [bool(g == e) for g, e in zip(guess.tolist(), expected_ids, strict=True)]
