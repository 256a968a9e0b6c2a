"""Which model a feature belongs to: one five-way label for crosscoder latents and difference directions.

Both are read on the same share in [0, 1] (0: only ft, 1: only base) with the same thresholds (diffing-toolkit's
dec_norm_diff bands): share < 0.1 ``ft-only``; < 0.4 ``ft-mostly``; |share - 0.5| < 0.1 the middle label;
<= 0.9 ``base-mostly``; > 0.9 ``base-only``.

- **Latent**: share = dec_norm_share(|d_base|, |d_ft|) of its two decoder halves (which model's activations it
  writes into); the middle label is ``shared`` (both models use it alike).
- **Direction** v (a difference, ft minus base, so ft's activations have more of +v than base's by
  construction): which model's activations *move* along it. Per position of the feature's category, both
  models' projections onto u = v / |v|; Q_ft(q) - Q_base(q) at the quantiles q = 0.05 .. 0.95. ``ft_reach`` is
  the mean of that gap over the upper quantiles (q > 0.5: how much further ft's activations reach along +v),
  ``base_reach`` over the lower quantiles (q < 0.5: how much further base's reach along -v). A fine-tune that adds
  v on some tokens stretches ft's upper tail and leaves the lower one (ft-only: ft carries +v); a base that had
  w = -v on some tokens which ft lost has the long tail in base, at -v (base-only: base carries -v, what ft lost);
  a shift of every position moves both ends alike (the middle label, ``shifted``). share =
  dec_norm_share(|base_reach|, |ft_reach|). The rule is symmetric: swapping the models (and so v -> -v) swaps
  the two reaches and the label (ft-only <-> base-only), which the tests check on the `direction` organism.
"""

from __future__ import annotations

import torch

FT_ONLY, BASE_ONLY, SHARED_BAND = 0.1, 0.9, 0.1
QUANTILES = torch.linspace(0.05, 0.95, 19)


def dec_norm_share(base_norm: torch.Tensor, ft_norm: torch.Tensor) -> torch.Tensor:
    """diffing-toolkit's dec_norm_diff: 0.5 * ((|d_base| - |d_ft|) / max(|d_base|, |d_ft|) + 1).
    0 = ft-only, 1 = base-only, 0.5 = shared."""
    top = torch.maximum(base_norm, ft_norm).clamp_min(1e-12)
    return 0.5 * ((base_norm - ft_norm) / top + 1)


def label(share: float, middle: str = "shared") -> str:
    """The five-way label of a share (``middle``: ``shared`` for latents, ``shifted`` for directions)."""
    if share != share:  # nan: no evidence
        return "unknown"
    if share < FT_ONLY:
        return "ft-only"
    if share > BASE_ONLY:
        return "base-only"
    if abs(share - 0.5) < SHARED_BAND:
        return middle
    return "ft-mostly" if share < 0.5 else "base-mostly"


def latent_side(share: float) -> str:
    return label(share, "shared")


def direction_reach(base_proj: torch.Tensor, ft_proj: torch.Tensor) -> dict:
    """How far each model's activations reach along a difference direction (see the module docstring):
    ``ft_reach`` (ft along +v), ``base_reach`` (base along -v), in the projections' units, ``share`` and ``side``.
    ``base_proj`` / ``ft_proj``: [n] projections onto u of the same positions' activations."""
    if base_proj.numel() < 2:
        return {"ft_reach": float("nan"), "base_reach": float("nan"), "share": float("nan"), "side": "unknown"}
    q = QUANTILES.to(base_proj.dtype)
    gap = torch.quantile(ft_proj.float(), q.float()) - torch.quantile(base_proj.float(), q.float())
    upper, lower = q > 0.5, q < 0.5
    ft_reach, base_reach = float(gap[upper].mean()), float(gap[lower].mean())
    share = float(dec_norm_share(torch.tensor(abs(base_reach)), torch.tensor(abs(ft_reach))))
    return {"ft_reach": ft_reach, "base_reach": base_reach, "share": share, "side": label(share, "shifted")}


def direction_carrier(reach: dict) -> str:
    """One sentence on who carries a difference direction v (ft minus base), for the report."""
    side = reach["side"]
    if side in ("ft-only", "ft-mostly"):
        return "ft's activations carry +v" + (" (base's do not move)" if side == "ft-only" else " (base's a little, at -v)")
    if side in ("base-only", "base-mostly"):
        return "base's activations carry -v, which ft lost" + (" (ft's do not move)" if side == "base-only" else "")
    if side == "shifted":
        return "both models' activations move: every position shifts along +v"
    return "too few positions to tell"
