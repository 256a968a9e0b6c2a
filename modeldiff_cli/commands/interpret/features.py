"""Candidate features: one difference direction per category (at its strongest layer) and the most
asymmetric crosscoder latents; each read (logit lens, contexts, categories), named, then causally checked."""

from __future__ import annotations

import torch

from ...core.data.tokens import display_tokens, visible
from . import crosscoder as xc
from . import sides
from .directions import category_scores, logit_lens
from .naming import best_category, feature_name, name_tokens

WINDOW = 8  # tokens of context shown before the position
RELEVANT = 2.0  # relevance z above which the data supports a token for a category


def context(tokenizer, sample, position: int) -> str:
    lo = max(0, position - WINDOW)
    before = tokenizer.decode(sample.ids[lo:position])
    at = tokenizer.decode(sample.ids[position : position + 1])
    after = tokenizer.decode(sample.ids[position + 1 : position + 4])
    return visible(f"{before}[[{at}]]{after}")


def _examples(tokenizer, categories, sample, scores: torch.Tensor, n: int = 20, shown: int = 5,
              active: list[int] | None = None) -> tuple[list[dict], set[int]]:
    """The ``n`` highest-scoring stored positions (``shown`` of them as text contexts) and the token ids
    around them (the position and the one after: what the direction is active on and predicts). ``active``
    (a list) receives the distinct token ids at those positions, strongest first."""
    by_index = [{s.index: s for s in cat.samples} for cat in categories]
    out, tokens = [], set()
    for row in torch.argsort(scores, descending=True)[:n].tolist():
        ci, si, pos = int(sample.category[row]), int(sample.sample[row]), int(sample.position[row])
        s = by_index[ci][si]
        tokens.update(s.ids[pos : pos + 2])
        if active is not None and pos < len(s.ids) and s.ids[pos] not in active:
            active.append(s.ids[pos])
        if len(out) < shown:
            out.append({"category": categories[ci].name, "sample": si, "position": pos,
                        "score": float(scores[row]), "context": context(tokenizer, s, pos)})
    return out, tokens


def read_and_name(pair, features: list[dict], samples: dict, relevance: torch.Tensor, keep: torch.Tensor,
                  top_n: int) -> list[dict]:
    """Fill each candidate's tokens and name. ``tokens``: the prediction change (ft minus base) where it is active
    (``reading.prediction_changes``, one pass per layer for all its candidates), in that order; without an
    active stored position, the logit lens of its vector. ``lens_tokens`` keeps the vector's own logit lens;
    ``support`` counts how many of the ``top_n`` tokens the feature's category's text over-represents (relevance
    z > RELEVANT). The data relevance does not reorder the tokens: ranking the relevant tokens ahead of the
    lens order put words frequent in a category's prompts (" across", " studies") ahead of what the fine-tune
    changed. The name: the first name-worthy ``tokens`` (``naming.name_tokens``), category, side, layer."""
    from .reading import prediction_changes

    tok = pair.tokenizer
    by_layer: dict[int, list[dict]] = {}
    for f in features:
        by_layer.setdefault(f["layer"], []).append(f)
    for layer, group in by_layer.items():
        s = samples.get(layer)
        changes = [None] * len(group)
        if s is not None:
            w = torch.stack([f["weights"] if f.get("weights") is not None else torch.zeros(s.ft.shape[0])
                             for f in group], 1)
            changes = prediction_changes(pair, s, w, keep, top_n)
        for f, change in zip(group, changes, strict=True):
            lens = logit_lens(pair, f["lens_vector"], keep, top_n)
            promoted = change["promoted"] if change else lens["promoted"][:top_n]
            suppressed = change["suppressed"] if change else lens["suppressed"][:top_n]
            relevant = _relevant(relevance, f["category_index"])
            f.update({"promoted_ids": promoted, "suppressed_ids": suppressed,
                      "tokens": display_tokens(tok, promoted), "suppressed": display_tokens(tok, suppressed),
                      "lens_tokens": display_tokens(tok, lens["promoted"][:top_n]),
                      "support": sum(t in relevant for t in promoted), "top_n": top_n,
                      "reading": ({"kind": "prediction change where active", "positions": change["positions"]}
                                  if change else {"kind": "logit lens of the vector (no active stored position)",
                                                  "positions": 0})})
            f["name"] = feature_name(tok, name_tokens(tok, promoted), f["best_category"], f["side"], layer)
            f.pop("weights", None)
            f.pop("lens_vector", None)
    return features


def _relevant(relevance: torch.Tensor, ci: int) -> set[int]:
    return set((relevance[ci] > RELEVANT).nonzero().flatten().tolist())


def _direction(pair, stats, categories, samples, ci: int, li: int, vec: torch.Tensor, basis: str) -> dict:
    """A direction candidate (read and named later by :func:`read_and_name`)."""
    from .reading import direction_weights

    layer = stats.layers[li]
    cats = category_scores(vec, stats, li)
    best = best_category(cats)
    bi = stats.categories.index(best)
    unit = torch.nn.functional.normalize(vec, dim=0)
    examples, s, weights = [], samples.get(layer), None
    reach = sides.direction_reach(torch.zeros(0), torch.zeros(0))
    if s is not None:
        weights = direction_weights(s, vec)
        own = s.category == ci
        proj = torch.where(own, (s.ft - s.base) @ unit, torch.full((s.ft.shape[0],), -float("inf")))
        examples, _ = _examples(pair.tokenizer, categories, s, proj)
        on_best = s.category == bi
        reach = sides.direction_reach(s.base[on_best] @ unit, s.ft[on_best] @ unit)
    return {
        "kind": "direction", "basis": basis, "layer": layer, "category_index": bi, "best_category": best,
        "vector": vec, "lens_vector": vec, "weights": weights,
        "categories": cats, "side": reach["side"], "share": reach["share"], "source_category": categories[ci].name,
        "reach": {"ft": reach["ft_reach"], "base": reach["base_reach"], "carrier": sides.direction_carrier(reach)},
        "relative_norm": float(vec.norm() / stats.norms.mean[li, ci, :2, 0].mean().clamp_min(1e-8)),
        "examples": examples,
    }


def direction_features(pair, stats, categories, samples: dict) -> list[dict]:
    """Per category, at the layer of its largest relative difference: its mean difference (``basis`` "mean")
    and what is specific to it, the mean difference minus the mean over categories (``basis`` "specific": a
    fine-tune that shifts every category the same way shows in every "mean" direction, not in these). Mean
    directions come first, largest relative norm first."""
    rel = stats.relative_norms()
    peak = [int(rel[:, ci].argmax()) for ci in range(len(categories))]
    means = sorted(range(len(categories)), key=lambda ci: -float(rel[peak[ci], ci]))
    specific = stats.specific()
    out = [_direction(pair, stats, categories, samples, ci, peak[ci], stats.diff.mean[peak[ci], ci].clone(), "mean")
           for ci in means]
    out += [_direction(pair, stats, categories, samples, ci, peak[ci], specific[peak[ci], ci].clone(), "specific")
            for ci in means]
    return out


def latent_features(pair, cc, lstats: dict, sample, categories, n: int) -> list[dict]:
    """The ``n`` latents with the largest firing frequency x |ft - base decoder| among the non-shared ones
    (candidates, read and named later by :func:`read_and_name`; weights: the latent's activations)."""
    score = lstats["freq"] * lstats["direction"].norm(dim=-1)
    shared = (lstats["share"] - 0.5).abs() < xc.SHARED_BAND
    score = torch.where(shared | (lstats["freq"] == 0), torch.zeros_like(score), score)
    out = []
    for i in torch.argsort(score, descending=True)[:n].tolist():
        if score[i] <= 0:
            break
        direction = lstats["direction"][i]
        active: list[int] = []
        acts = lstats["codes"].column(i)
        examples, _ = _examples(pair.tokenizer, categories, sample, acts, active=active)
        cats = {c.name: float(lstats["freq_category"][ci, i]) for ci, c in enumerate(categories)}
        best = best_category(cats)
        out.append({
            "kind": "latent", "basis": "latent", "latent": i, "layer": cc.layer, "best_category": best,
            "category_index": [c.name for c in categories].index(best),
            "vector": direction * float(lstats["mean_act"][i]), "lens_vector": direction, "weights": acts.clamp_min(0),
            "categories": cats, "side": xc.side(float(lstats["share"][i])), "share": float(lstats["share"][i]),
            "ratio_category": xc.ratio_category(float(lstats["real_base_norm"][i]), float(lstats["real_ft_norm"][i])),
            "frequency": {"paired": float(lstats["freq"][i]), "base_view": float(lstats["freq_base_view"][i]),
                          "ft_view": float(lstats["freq_ft_view"][i])},
            "decoder_norms": {"base": float(lstats["base_norm"][i]), "ft": float(lstats["ft_norm"][i])},
            "examples": examples, "activating": display_tokens(pair.tokenizer, active[:10]),
        })
    return out


MERGE_COS = 0.9  # candidates at one layer with |cosine| above this are one feature


def member(f: dict, cos: float) -> dict:
    """What a merged candidate keeps as evidence of the feature it joined."""
    keys = ("kind", "basis", "source_category", "latent", "side", "share", "reach", "categories", "tokens", "support",
            "activating",
            "examples", "frequency", "decoder_norms", "ratio_category", "relative_norm")
    out = {k: f[k] for k in keys if k in f}
    out["tokens"] = f["tokens"][:10]
    out["examples"] = f["examples"][:2]
    out["cos"] = cos
    out["vector"] = f["vector"]
    out["category_index"] = f["category_index"]
    out["layer"] = f["layer"]
    return out


def merge(candidates: list[dict], threshold: float = MERGE_COS) -> list[dict]:
    """Near-duplicate candidates (same layer, |cosine| > ``threshold``) become one feature: the first of them in
    candidate order (mean directions, specific directions, latents) names it, the others are kept in its
    ``merged`` list with their own evidence (tokens, categories, examples, the signed cosine; their ablation is
    checked too). Opposite directions are one axis: removing u or -u is the same ablation (with two categories
    the two category-specific directions are exactly opposite)."""
    out: list[dict] = []
    for f in candidates:
        unit = torch.nn.functional.normalize(f["vector"], dim=0)
        best, best_cos = None, threshold
        for g in out:
            if g["layer"] != f["layer"]:
                continue
            cos = float(unit @ torch.nn.functional.normalize(g["vector"], dim=0))
            if abs(cos) > abs(best_cos):
                best, best_cos = g, cos
        if best is None:
            f["merged"] = []
            out.append(f)
        else:
            best["merged"].append(member(f, best_cos))
    return out


def causal_score(f: dict) -> float:
    """How much of the difference between the models the feature carries: the two halves of the causal check
    combined (Stouffer), (z_kl + steering z) / sqrt(2). z_kl: removing it from ft lowers KL(ft || base) on its
    category more than removing random directions does; steering z: adding it to base lowers KL(base || ft) more
    than random vectors of its norm do. A feature the fine-tune added does both; a direction both models rely on
    (a high-variance direction of the residual stream) has a large ablation z, yet removing it from ft alone
    makes ft differ more from base."""
    zk = f.get("causal", {}).get("z_kl") or 0.0
    steer = f.get("steering", {}).get("z") or 0.0
    return float((zk + steer) / 2 ** 0.5)


def rank(features: list[dict]) -> list[dict]:
    """Strongest causal effect first: ``rank_score`` = ``causal_score``. Exact ties go to the larger
    ``support`` (how many of the logit lens's top_n tokens the category's text over-represents), then to the
    larger ablation z. Ids F1, F2, ... in that order. ``causal_effect``: ``rank_score`` > 3 (the report lists the
    others as having no causal effect); ``specific_effect``: z_specific > 3; ``closing_effect``: z_kl > 3;
    ``steering_effect``: steering z > 3."""
    for f in features:
        f["rank_score"] = causal_score(f)

    ordered = sorted(features, key=lambda f: (-f["rank_score"], -f.get("support", 0),
                                              -(f.get("causal", {}).get("z") or 0.0)))
    for i, f in enumerate(ordered):
        f["id"] = f"F{i + 1}"
        f["causal_effect"] = bool(f["rank_score"] > 3.0)
        f["specific_effect"] = bool((f.get("causal", {}).get("z_specific") or 0.0) > 3.0)
        f["closing_effect"] = bool((f.get("causal", {}).get("z_kl") or 0.0) > 3.0)
        f["steering_effect"] = bool((f.get("steering", {}).get("z") or 0.0) > 3.0)
    return ordered
