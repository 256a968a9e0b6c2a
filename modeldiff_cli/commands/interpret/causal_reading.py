"""What an intervention z-score means, in words, for the reports (interpret's report.md/html and the dashboard).

interpret scores each feature by three z-scores against random directions of the same norm (docs/interpret.md):
- removal z: how much more KL(ft||base) drops when the feature is removed from ft than for random directions;
- steering z: the same for KL(base||ft) when the feature is added to base;
- ablation z: how much more removing it changes ft's cross-entropy than random directions (any direction).
The causal score is (removal z + steering z) / sqrt(2). A positive z brings the models together, near 0 is what
a random direction does, and a negative z pushes them apart: removing such a feature from ft moves ft *away*
from base, so the direction is one both models use (or base more), not one the fine-tune added.
"""

from __future__ import annotations

THRESHOLD = 3.0

SIGN_NOTE = ("z-scores are against random directions of the same norm: positive = the intervention brings ft and "
             "base together, about 0 = no more than a random direction, negative = it pushes them apart (removing "
             "the feature moves ft away from base: a direction both models use, or base more, not one the "
             "fine-tune added)")


def effect_reading(score: float, removal_z: float, steering_z: float, ablation_z: float,
                   threshold: float = THRESHOLD) -> str:
    """One short phrase for a feature: causal (score > threshold), or why not (a negative removal or steering
    z is a finding of its own, not "no effect")."""
    if score > threshold:
        return "causal: removing it moves ft toward base, adding it moves base toward ft"
    parts = []
    if removal_z < -threshold:
        parts.append(f"removal z {removal_z:.1f}: removing it moves ft away from base (a direction both models use)")
    if steering_z < -threshold:
        parts.append(f"steering z {steering_z:.1f}: adding it moves base away from ft")
    if ablation_z > threshold and not parts:
        parts.append(f"ablation z {ablation_z:.1f}: removing it changes ft's CE but does not make ft more like base")
    return "; ".join(parts) if parts else "no effect beyond random directions"
