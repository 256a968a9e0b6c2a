"""Step 5: the causal check of a feature.

Ablation: remove the feature's unit direction u from ft's residual stream at its layer (h <- h - (h.u) u at
every position) and measure the change of next-token cross-entropy on each category's text; the same for
``R`` random unit directions at that layer gives a null distribution: z = (|dCE| - mean |dCE_rand|) /
std |dCE_rand| on the feature's own category. ``restored`` = (CE_ft - CE_ablated) / (CE_ft - CE_base): the
fraction of the base-ft gap the removal closes there.
Specificity: the same removal in base; ``z_specific`` = the z-score of |dCE_ft - dCE_base| against the random
directions' |dCE_ft - dCE_base|. A direction both models rely on (a high-variance direction of the residual
stream) hurts both when removed and scores ~0 here, however large its z; one the fine-tune added hurts ft only.
Closing the gap: the removal's drop of KL(ft || base) on the category (``kl_drop``), and its z (``z_kl``) against
the random removals' drops: positive when removing the feature makes ft predict like base. A direction both
models use, removed from ft alone, makes ft differ more from base (negative).
Steering: add the feature's vector (its mean difference) to base at its layer and measure the drop of
KL(base || ft) on its category, against the same ``R`` random directions scaled to its norm (a z-score the same
way). Features are ranked by the two gap-closing z combined (``features.causal_score``).
"""

from __future__ import annotations

import torch

from ...core.data.datasets import iter_batches
from ...core.model.forward import forward
from ...core.model.hooks import patch_layers
from ...core.spine import console

# both models' unpatched log-probs on the evaluation set are kept between passes when together they fit in this
# many bytes (each patched pass then costs one forward), recomputed per pass above it (two forwards)
CACHE_BYTES = 1 << 30


def _ablate(u: torch.Tensor):
    def fn(h):
        v = u.to(device=h.device, dtype=h.dtype)
        return h - (h @ v).unsqueeze(-1) * v

    return fn


def _add(vec: torch.Tensor):
    def fn(h):
        return h + vec.to(device=h.device, dtype=h.dtype)

    return fn


class Evaluator:
    """Cross-entropy per category on a fixed evaluation set, under residual patches, and the KL of the patched
    model to the other, unpatched one (KL(base || ft) when base is patched, KL(ft || base) when ft is)."""

    def __init__(self, pair, categories, per_category: int, batch_size: int):
        self.compared, self.V, self.C = pair, pair.shared_vocab, len(categories)
        pad = pair.tokenizer.pad_token_id or 0
        self.batches = [(ci, b) for ci, cat in enumerate(categories)
                        for b in iter_batches(cat.samples[:per_category], batch_size, pad)]
        positions = sum(int(b.attention_mask.sum()) for _, b in self.batches)
        self.cache = positions * self.V * 4 < CACHE_BYTES / 2
        self._lp: dict[tuple[str, int], torch.Tensor] = {}
        self.ce_ft, self.kl_ft = self.measure("ft", {}, kl=True)
        self.ce_base, self.kl_base = self.measure("base", {}, kl=True)

    def _log_probs(self, loaded, batch, patches) -> torch.Tensor:
        with patch_layers(loaded.adapter.layers, patches):
            cap = forward(loaded, batch.input_ids, batch.attention_mask, logits="all")
        return torch.log_softmax(cap.logits[..., : self.V].float().cpu(), -1)

    def _clean_lp(self, role: str, i: int, batch) -> torch.Tensor:
        """Unpatched log-probs of ``role`` on batch ``i`` (kept between calls below CACHE_BYTES)."""
        if (role, i) in self._lp:
            return self._lp[(role, i)]
        lp = self._log_probs(self.compared.base if role == "base" else self.compared.ft, batch, {})
        if self.cache:
            self._lp[(role, i)] = lp
        return lp

    def measure(self, role: str, patches: dict, kl: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-category mean next-token CE of one model (patched), and when ``kl`` the mean KL(that model ||
        the other model, unpatched)."""
        loaded = self.compared.base if role == "base" else self.compared.ft
        other = "ft" if role == "base" else "base"
        ce_sum, ce_n = torch.zeros(self.C, dtype=torch.float64), torch.zeros(self.C, dtype=torch.float64)
        kl_sum, kl_n = torch.zeros(self.C, dtype=torch.float64), torch.zeros(self.C, dtype=torch.float64)
        for i, (ci, batch) in enumerate(self.batches):
            lp = self._log_probs(loaded, batch, patches)
            attn = batch.attention_mask.bool()
            valid = attn[:, 1:] & attn[:, :-1]
            tgt = batch.input_ids[:, 1:].clamp_max(self.V - 1)
            tok_ce = -lp[:, :-1].gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
            ce_sum[ci] += float(tok_ce[valid].sum())
            ce_n[ci] += int(valid.sum())
            if kl:
                lpo = self._clean_lp(other, i, batch)
                pos_kl = (lp.exp() * (lp - lpo)).sum(-1)
                kl_sum[ci] += float(pos_kl[attn].sum())
                kl_n[ci] += int(attn.sum())
        return (ce_sum / ce_n.clamp_min(1)).float(), (kl_sum / kl_n.clamp_min(1)).float()


def random_units(d: int, count: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(count, d, generator=gen), dim=-1)


def _z(value: float, null: torch.Tensor) -> float:
    return float((value - null.mean()) / null.std().clamp_min(1e-9))


def _ablation(ev: Evaluator, f: dict, null_ft: torch.Tensor, null_base: torch.Tensor, null_kl: torch.Tensor,
              n_random: int) -> dict:
    layer, ci = f["layer"], f["category_index"]
    u = torch.nn.functional.normalize(f["vector"], dim=0)
    ce_abl, kl_abl = ev.measure("ft", {layer: _ablate(u)}, kl=True)
    kl_drop = float(ev.kl_ft[ci] - kl_abl[ci])
    delta = ce_abl - ev.ce_ft
    delta_base = ev.measure("base", {layer: _ablate(u)})[0] - ev.ce_base
    others = [c for c in range(ev.C) if c != ci]
    gap = float(ev.ce_ft[ci] - ev.ce_base[ci])
    return {
        "delta_ce": float(delta[ci]), "delta_ce_others": float(delta[others].mean()) if others else 0.0,
        "z": _z(abs(float(delta[ci])), null_ft[:, ci].abs()), "random_delta_ce_mean": float(null_ft[:, ci].mean()),
        "random_delta_ce_std": float(null_ft[:, ci].std()), "n_random": n_random,
        "ce_ft": float(ev.ce_ft[ci]), "ce_base": float(ev.ce_base[ci]), "ce_ablated": float(ce_abl[ci]),
        "restored": (float(ev.ce_ft[ci] - ce_abl[ci]) / gap) if abs(gap) > 1e-9 else None,
        "delta_ce_base": float(delta_base[ci]),
        "z_specific": _z(abs(float(delta[ci] - delta_base[ci])), (null_ft[:, ci] - null_base[:, ci]).abs()),
        "kl_ft_base": float(ev.kl_ft[ci]), "kl_ablated": float(kl_abl[ci]), "kl_drop": kl_drop,
        "kl_drop_fraction": kl_drop / max(float(ev.kl_ft[ci]), 1e-12), "z_kl": _z(kl_drop, null_kl[:, ci]),
    }


def check(ev: Evaluator, features: list[dict], n_random: int, seed: int) -> None:
    """Fill ``causal`` and ``steering`` of every feature (``layer``, ``category_index``, ``vector`` set), and
    ``causal`` (the ablation) of every candidate merged into one (``merged``)."""
    null_ablate: dict[int, torch.Tensor] = {}
    null_kl: dict[int, torch.Tensor] = {}
    null_base: dict[int, torch.Tensor] = {}
    units: dict[int, torch.Tensor] = {}
    for f in console.track(features, "interpret: causal check"):
        layer, ci, vec = f["layer"], f["category_index"], f["vector"]
        if layer not in units:
            units[layer] = random_units(vec.shape[0], n_random, seed + layer)
            ce_kl = [ev.measure("ft", {layer: _ablate(u)}, kl=True) for u in units[layer]]
            null_ablate[layer] = torch.stack([ce - ev.ce_ft for ce, _ in ce_kl])
            null_kl[layer] = torch.stack([ev.kl_ft - kl for _, kl in ce_kl])
            null_base[layer] = torch.stack([ev.measure("base", {layer: _ablate(u)})[0] - ev.ce_base
                                            for u in units[layer]])
        f["causal"] = _ablation(ev, f, null_ablate[layer], null_base[layer], null_kl[layer], n_random)
        for m in f.get("merged", []):
            m["causal"] = _ablation(ev, m, null_ablate[layer], null_base[layer], null_kl[layer], n_random)
        _, kl_steer = ev.measure("base", {layer: _add(vec)}, kl=True)
        drop = float(ev.kl_base[ci] - kl_steer[ci])
        norm = float(vec.norm())
        null_drop = torch.tensor([float(ev.kl_base[ci] - ev.measure("base", {layer: _add(r * norm)}, kl=True)[1][ci])
                                  for r in units[layer]])
        f["steering"] = {"kl_base_ft": float(ev.kl_base[ci]), "kl_steered": float(kl_steer[ci]), "kl_drop": drop,
                         "kl_drop_fraction": drop / max(float(ev.kl_base[ci]), 1e-12), "z": _z(drop, null_drop),
                         "n_random": len(null_drop)}
