"""Candidate features: one difference direction per category (at its strongest layer) and the most
asymmetric crosscoder latents; each read (logit lens, contexts, categories), named, then causally checked."""

from __future__ import annotations

import torch

from ...core.tokens import display_tokens, visible
from . import crosscoder as xc
from .directions import category_scores, logit_lens
from .naming import best_category, feature_name

WINDOW = 8  # tokens of context shown before the position
RELEVANT = 2.0  # relevance z above which the data supports a token for a category


def context(tokenizer, sample, position: int) -> str:
    lo = max(0, position - WINDOW)
    before = tokenizer.decode(sample.ids[lo:position])
    at = tokenizer.decode(sample.ids[position : position + 1])
    after = tokenizer.decode(sample.ids[position + 1 : position + 4])
    return visible(f"{before}[[{at}]]{after}")


def _examples(tokenizer, categories, sample, scores: torch.Tensor, n: int = 20, shown: int = 5) -> tuple[list[dict], set[int]]:
    """The ``n`` highest-scoring stored positions (``shown`` of them as text contexts) and the token ids
    around them (the position and the one after: what the direction is active on and predicts)."""
    by_index = [{s.index: s for s in cat.samples} for cat in categories]
    out, tokens = [], set()
    for row in torch.argsort(scores, descending=True)[:n].tolist():
        ci, si, pos = int(sample.category[row]), int(sample.sample[row]), int(sample.position[row])
        s = by_index[ci][si]
        tokens.update(s.ids[pos : pos + 2])
        if len(out) < shown:
            out.append({"category": categories[ci].name, "sample": si, "position": pos,
                        "score": float(scores[row]), "context": context(tokenizer, s, pos)})
    return out, tokens


def _read(pair, vector: torch.Tensor, keep: torch.Tensor, top_n: int, ctx: set[int] | None = None,
          relevant: set[int] | None = None) -> dict:
    """Logit lens of the direction (its ``5 x top_n`` most promoted tokens), grounded in data: tokens the
    feature's category's text supports (relevance z > RELEVANT) come first, then tokens of the feature's top
    contexts, then the rest — each tier in lens order. ``lens_tokens`` keeps the raw lens order."""
    lens = logit_lens(pair, vector, keep, 5 * top_n)
    raw = lens["promoted"]
    tiers = [relevant or set(), ctx or set()]
    grounded = sorted(raw, key=lambda t: next((i for i, s in enumerate(tiers) if t in s), len(tiers)))
    support = sum(t in (relevant or set()) for t in raw[:top_n])
    tok = pair.tokenizer
    return {"promoted_ids": grounded[:top_n], "suppressed_ids": lens["suppressed"][:top_n],
            "tokens": display_tokens(tok, grounded[:top_n]), "suppressed": display_tokens(tok, lens["suppressed"][:top_n]),
            "lens_tokens": display_tokens(tok, raw[:top_n]), "support": support}


def _relevant(relevance: torch.Tensor, ci: int) -> set[int]:
    return set((relevance[ci] > RELEVANT).nonzero().flatten().tolist())


def direction_features(pair, stats, categories, samples: dict, relevance: torch.Tensor, keep, top_n: int) -> list[dict]:
    rel = stats.relative_norms()
    out = []
    for ci, cat in enumerate(categories):
        li = int(rel[:, ci].argmax())
        layer = stats.layers[li]
        vec = stats.diff.mean[li, ci].clone()
        cats = category_scores(vec, stats, li)
        unit = torch.nn.functional.normalize(vec, dim=0)
        pb = float(stats.base_mean.mean[li, ci] @ unit)
        share = float(xc.dec_norm_share(torch.tensor(abs(pb)), torch.tensor(abs(pb + float(vec.norm())))))
        examples, ctx = [], None
        if layer in samples:
            s = samples[layer]
            proj = (s.ft - s.base) @ unit
            proj = torch.where(s.category == ci, proj, torch.full_like(proj, -float("inf")))
            examples, ctx = _examples(pair.tokenizer, categories, s, proj)
        best = best_category(cats)
        read = _read(pair, vec, keep, top_n, ctx, _relevant(relevance, stats.categories.index(best)))
        chosen = read["promoted_ids"][:3]
        side = xc.side(share)
        out.append({
            "kind": "direction", "layer": layer, "category_index": stats.categories.index(best), "vector": vec,
            "name": feature_name(pair.tokenizer, chosen, best, side, layer), **read, "categories": cats,
            "side": side, "share": share, "source_category": cat.name,
            "relative_norm": float(rel[li, ci]), "examples": examples,
        })
    return out


def latent_features(pair, cc, lstats: dict, sample, categories, relevance: torch.Tensor, keep, top_n: int,
                    n: int) -> list[dict]:
    """The ``n`` latents with the largest firing frequency x |ft - base decoder| among the non-shared ones."""
    score = lstats["freq"] * lstats["direction"].norm(dim=-1)
    shared = (lstats["share"] - 0.5).abs() < xc.SHARED_BAND
    score = torch.where(shared | (lstats["freq"] == 0), torch.zeros_like(score), score)
    out = []
    for i in torch.argsort(score, descending=True)[:n].tolist():
        if score[i] <= 0:
            break
        direction = lstats["direction"][i]
        vec = direction * float(lstats["mean_act"][i])
        examples, ctx = _examples(pair.tokenizer, categories, sample, lstats["acts"][:, i])
        cats = {c.name: float(lstats["freq_category"][ci, i]) for ci, c in enumerate(categories)}
        best = best_category(cats)
        read = _read(pair, direction, keep, top_n, ctx, _relevant(relevance, [c.name for c in categories].index(best)))
        side = xc.side(float(lstats["share"][i]))
        chosen = read["promoted_ids"][:3]
        out.append({
            "kind": "latent", "latent": i, "layer": cc.layer, "category_index": [c.name for c in categories].index(best),
            "vector": vec, "name": feature_name(pair.tokenizer, chosen, best, side, cc.layer), **read,
            "categories": cats, "side": side, "share": float(lstats["share"][i]),
            "ratio_category": xc.ratio_category(float(lstats["real_base_norm"][i]), float(lstats["real_ft_norm"][i])),
            "frequency": {"paired": float(lstats["freq"][i]), "base_view": float(lstats["freq_base_view"][i]),
                          "ft_view": float(lstats["freq_ft_view"][i])},
            "decoder_norms": {"base": float(lstats["base_norm"][i]), "ft": float(lstats["ft_norm"][i])},
            "examples": examples,
        })
    return out


def rank(features: list[dict]) -> list[dict]:
    """Features the data supports (``support`` > 0: some of the lens's top tokens are over-represented in the
    feature's category's text) first, each group by its ablation z-score; ids F1, F2, ... in that order."""
    ordered = sorted(features, key=lambda f: (f.get("support", 0) == 0, -(f.get("causal", {}).get("z") or 0.0)))
    for i, f in enumerate(ordered):
        f["id"] = f"F{i + 1}"
        f["causal_effect"] = bool(f.get("causal", {}).get("z", 0.0) > 3.0)
    return ordered
