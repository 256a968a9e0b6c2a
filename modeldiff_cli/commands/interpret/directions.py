"""Step 2: reading a difference direction — logit lens through both models, patchscope at a chosen scale, and a
data-grounded token relevance (log-odds of a token in a category's text against the other categories)."""

from __future__ import annotations

import math

import torch

from ...core.model.readout import readout


def logit_lens(pair, direction: torch.Tensor, keep: torch.Tensor, top_n: int) -> dict:
    """Promoted / suppressed tokens of a direction: the mean over both models of the centred log-softmax of
    final norm + lm_head applied to the direction (ADL's logit lens of a difference)."""
    V = pair.shared_vocab
    scores = []
    for loaded in (pair.base, pair.ft):
        logits = readout(loaded.adapter, direction.unsqueeze(0))[0, :V].cpu()
        lp = torch.log_softmax(logits, -1)
        scores.append(lp - lp.mean())
    score = torch.stack(scores).mean(0)
    masked = score.masked_fill(~keep[:V], float("nan"))
    order = torch.argsort(torch.nan_to_num(masked, nan=-math.inf), descending=True)
    low = torch.argsort(torch.nan_to_num(masked, nan=math.inf))
    return {"score": score, "promoted": order[:top_n].tolist(), "suppressed": low[:top_n].tolist()}


def token_counts(categories, vocab: int) -> torch.Tensor:
    """[C, V] count of each token id in each category's analysed positions."""
    counts = torch.zeros(len(categories), vocab, dtype=torch.float64)
    for ci, cat in enumerate(categories):
        for s in cat.samples:
            ids = torch.tensor([t for t, m in zip(s.ids, s.mask, strict=True) if m and t < vocab], dtype=torch.long)
            counts[ci].index_add_(0, ids, torch.ones(len(ids), dtype=torch.float64))
    return counts


def relevance(counts: torch.Tensor, prior: float = 0.5) -> torch.Tensor:
    """[C, V] z-scored log-odds ratio with an informative Dirichlet prior (Monroe et al. 2008): how much more a
    token occurs in category c's text than in the other categories' text."""
    total = counts.sum(0)
    alpha = prior * (total + 1) / (total.sum() + counts.shape[1]) * counts.shape[1]
    a0 = alpha.sum()
    out = torch.zeros_like(counts)
    for c in range(counts.shape[0]):
        yi, yj = counts[c], total - counts[c]
        ni, nj = yi.sum(), yj.sum()
        li = torch.log((yi + alpha) / (ni + a0 - yi - alpha))
        lj = torch.log((yj + alpha) / (nj + a0 - yj - alpha))
        var = 1.0 / (yi + alpha) + 1.0 / (yj + alpha)
        out[c] = (li - lj) / var.sqrt()
    return out.float()


def category_scores(direction: torch.Tensor, stats, layer_index: int) -> dict[str, float]:
    """How strongly each category's mean difference points along a direction (projection / direction norm)."""
    unit = torch.nn.functional.normalize(direction, dim=0)
    return {c: float(stats.diff.mean[layer_index, ci] @ unit) for ci, c in enumerate(stats.categories)}


CRITERION = "mean pairwise Jaccard overlap of the top tokens across identity prompts (ties: the smaller scale)"


def choose_scale(by_prompt: list[torch.Tensor], top_n: int) -> tuple[int, list[float], list[list[int]]]:
    """The patchscope scale criterion, without an LLM. ``by_prompt[j]`` holds [scales, V] log-probs read on
    identity prompt j, scales in increasing order. A scale's agreement is the mean pairwise Jaccard overlap of
    its top-``top_n`` token sets across the prompts: too small a scale reads the prompt (each prompt's own
    continuation), too large a one reads noise; where the injected direction dominates, all prompts agree.
    Returns the chosen index (the highest agreement; ties go to the smaller scale), every scale's agreement, and
    each scale's top tokens by the mean log-prob over prompts."""
    agreement, tops = [], []
    for si in range(by_prompt[0].shape[0]):
        sets = [set(torch.topk(lp[si], top_n).indices.tolist()) for lp in by_prompt]
        pairs = [(a, b) for i, a in enumerate(sets) for b in sets[i + 1 :]]
        agreement.append(sum(len(a & b) / len(a | b) for a, b in pairs) / max(len(pairs), 1))
        mean_lp = torch.stack([lp[si] for lp in by_prompt]).mean(0)
        tops.append(torch.topk(mean_lp, top_n).indices.tolist())
    best = max(range(len(agreement)), key=lambda i: (round(agreement[i], 6), -i))
    return best, agreement, tops


def patchscope_reading(pair, direction: torch.Tensor, layer: int, scales: list[float], prompts: list[str],
                       keep: torch.Tensor, top_n: int, chunk_size: int) -> dict:
    """Patchscope of the direction at several scales (x the mean activation norm) on several identity prompts;
    the scale is chosen by :func:`choose_scale`. Returns the chosen scale, its tokens and every scale's
    agreement."""
    from ...core.model.patchscope import patchscope_logits

    V = pair.shared_vocab
    unit = torch.nn.functional.normalize(direction, dim=0)
    rows = torch.stack([unit * s for s in scales])
    by_prompt = []
    for prompt in prompts:
        logits = patchscope_logits(pair.ft, rows, prompt=prompt, source_layer=layer, chunk_size=chunk_size)
        lp = torch.log_softmax(logits[:, :V].float().cpu(), -1).masked_fill(~keep[:V], -math.inf)
        by_prompt.append(lp)
    best, agreement, tops = choose_scale(by_prompt, top_n)
    return {"scales": scales, "agreement": agreement, "chosen_scale": scales[best], "tokens": tops[best],
            "criterion": CRITERION}
