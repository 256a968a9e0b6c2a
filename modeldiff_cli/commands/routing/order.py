"""Order: usage per side and view, B - A differences, per-cell q-values, the significance map (the sign of the
difference where q < 0.05), X4A's thresholded maps, the points (every cell sorted by difference), the top cells
(ranked by |difference|, increases and drops alike) and bootstrap intervals of the top cells."""

from __future__ import annotations

import torch

from .collect import Stats
from .stats import benjamini_hochberg, js_rows, thresholded, two_proportion_p

TOP = 10
Q_ALPHA = 0.05  # the significance map's false discovery rate (q < Q_ALPHA)


def order(stats: Stats, cmd) -> dict:
    ua, ub = stats.a.usage(), stats.b.usage()
    diff = {kind: ub[kind] - ua[kind] for kind in ("weight", "slot", "prob")}  # [V, L, E]
    # significance per cell (all positions): tokens with the expert in their top k, out of the view's tokens
    n_a, n_b = stats.a.tokens[0], stats.b.tokens[0]
    p = two_proportion_p(stats.a.slots[0], n_a.expand_as(stats.a.slots[0]), stats.b.slots[0],
                         n_b.expand_as(stats.b.slots[0]))
    q = benjamini_hochberg(p)
    significant = significance_map(diff["weight"][0], q)
    signs, thresholds = [], []
    for v in range(len(stats.views)):
        s, t = thresholded(diff["weight"][v])
        signs.append(s)
        thresholds.append(t)
    # per-layer comparisons of the mean distributions (all views): TV and JS
    usage_tv = 0.5 * (ua["weight"] - ub["weight"]).abs().sum(-1)  # [V, L]
    usage_js = js_rows(ua["weight"].float().reshape(-1, stats.n_experts),
                       ub["weight"].float().reshape(-1, stats.n_experts)).reshape(usage_tv.shape)
    prob_js = js_rows(ua["prob"].float().reshape(-1, stats.n_experts),
                      ub["prob"].float().reshape(-1, stats.n_experts)).reshape(usage_tv.shape)
    points = points_of(stats, ua["weight"][0], ub["weight"][0], q, +1)
    reverse = points_of(stats, ua["weight"][0], ub["weight"][0], q, -1)
    top = top_cells(points)
    boot = (stats.b.boot_usage() - stats.a.boot_usage()).float()  # [R, L, E]
    intervals = []
    for pt in top:
        li = stats.layers.index(pt["layer"])
        reps = boot[:, li, pt["router"]]
        intervals.append([float(reps.quantile(0.025)), float(reps.quantile(0.975))])
    return {
        "usage_a": ua, "usage_b": ub, "diff": diff, "p": p, "q": q,
        "significant": significant, "q_alpha": Q_ALPHA,
        "thresholded": torch.stack(signs), "thresholds": thresholds,
        "usage_tv": usage_tv, "usage_js": usage_js, "prob_js": prob_js,
        "pair": stats.pair.means() if stats.pair is not None else None,
        "points": points, "reverse": reverse, "top": top, "intervals": intervals,
    }


def points_of(stats: Stats, wa, wb, q, sign: int) -> list[dict]:
    """Every (layer, expert) cell, sorted by ``sign * (b - a)`` descending: X4A's points format plus q."""
    d = (wb - wa) * sign
    order_ = d.flatten().double().argsort(descending=True, stable=True).tolist()
    E = stats.n_experts
    first, second = (wa, wb) if sign > 0 else (wb, wa)
    return [{"layer": stats.layers[i // E], "router": i % E, "diff": float(d.flatten()[i]),
             "a": float(first.flatten()[i]), "b": float(second.flatten()[i]), "q": float(q.flatten()[i])}
            for i in order_]


def top_cells(points: list[dict], n: int = TOP) -> list[dict]:
    """The ``n`` cells with the largest |difference|, increases and drops alike, largest first (ties keep the
    points' order); each keeps its signed ``diff``."""
    return sorted(points, key=lambda pt: -abs(pt["diff"]))[:n]


def significance_map(diff, q, alpha: float = Q_ALPHA):
    """+1 / -1 (the sign of ``diff``) where the cell's q < ``alpha``, else 0: int8, the shape of ``q``."""
    return torch.where(q < alpha, diff.sign(), torch.zeros_like(diff)).to(torch.int8)
