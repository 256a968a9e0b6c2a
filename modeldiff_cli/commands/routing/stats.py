"""Streaming routing statistics: accumulators of size views x layers x experts (plus bootstrap replicates of
the same size), so memory does not grow with the number of samples.

Per side (:class:`SideStats`), summed over the rows of each view:
- weight usage: each token's top-k weights renormalised over its top k, summed per expert (X4A's usage; divided
  by the view's tokens it is the token-weighted mean, each layer summing to 1);
- slots: how many tokens have the expert in their top k (slot fraction = slots / (tokens * k));
- router probability: the full router distribution summed per expert;
- entropy of the full router distribution per layer.
Per pair of aligned rows (:class:`PairStats`, base vs ft on the same tokens, or aligned pairs): TV over the union
of the two top-k sets, Jaccard and intersection size (averaged per sample, then over samples), top-1 agreement
and Jensen-Shannon divergence of the full distributions (token means).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ...core.model.routers import Routing
from .artifacts import PAIR_SAMPLE, PAIR_TOKEN

LOG2 = math.log(2.0)


def entropy(p: Tensor) -> Tensor:
    return -torch.special.xlogy(p, p).sum(-1)


def js_rows(p: Tensor, q: Tensor) -> Tensor:
    """Jensen-Shannon divergence (nats) per row of two distributions."""
    m = 0.5 * (p + q)
    kl_pm = (torch.special.xlogy(p, p) - torch.special.xlogy(p, m)).sum(-1)
    kl_qm = (torch.special.xlogy(q, q) - torch.special.xlogy(q, m)).sum(-1)
    return (0.5 * (kl_pm + kl_qm)).clamp(0.0, LOG2)


def pair_rows(a: Routing, b: Routing) -> dict[str, Tensor]:
    """Per aligned row: TV over the union of the top-k sets (1/2 sum |w_a - w_b|, the weights renormalised over
    each side's top k), intersection and Jaccard of the two sets, top-1 agreement, JS of the full distributions."""
    tv = 0.5 * (a.dense_weights() - b.dense_weights()).abs().sum(-1)
    sa, sb = a.slots(), b.slots()
    inter = (sa * sb).sum(-1)
    union = ((sa + sb) > 0).float().sum(-1)
    return {
        "tv_topk": tv, "jaccard_topk": inter / union.clamp_min(1), "intersection_topk": inter,
        "top1_agreement": (a.probs.argmax(-1) == b.probs.argmax(-1)).float(), "js": js_rows(a.probs, b.probs),
    }


def sample_onehot(sample: Tensor) -> tuple[Tensor, Tensor]:
    """The batch's distinct samples and a [S_batch, N] one-hot of each row's sample."""
    uniq, inv = torch.unique(sample, return_inverse=True)
    onehot = torch.zeros(len(uniq), len(sample), dtype=torch.float32)
    onehot[inv, torch.arange(len(sample))] = 1.0
    return uniq, onehot


@dataclass
class SideStats:
    n_views: int
    n_layers: int
    n_experts: int
    k: int
    replicates: int
    weight: Tensor = field(init=False)  # [V, L, E]
    slots: Tensor = field(init=False)
    prob: Tensor = field(init=False)
    entropy: Tensor = field(init=False)  # [V, L]
    tokens: Tensor = field(init=False)  # [V]
    samples: int = 0
    boot_weight: Tensor = field(init=False)  # [R, L, E] Poisson-weighted weight sums over samples (view all)
    boot_tokens: Tensor = field(init=False)  # [R]

    def __post_init__(self):
        V, L, E, R = self.n_views, self.n_layers, self.n_experts, self.replicates
        self.weight, self.slots, self.prob = (torch.zeros(V, L, E, dtype=torch.float64) for _ in range(3))
        self.entropy = torch.zeros(V, L, dtype=torch.float64)
        self.tokens = torch.zeros(V, dtype=torch.float64)
        self.boot_weight = torch.zeros(R, L, E, dtype=torch.float64)
        self.boot_tokens = torch.zeros(R, dtype=torch.float64)

    def add(self, routing: list[Routing], views: Tensor, sample: Tensor, poisson: Tensor) -> None:
        """One batch: ``routing[li]`` over its N rows, ``views`` [V, N], ``sample`` [N], ``poisson`` [R, S_batch]
        bootstrap weights of the batch's distinct samples (sorted by sample number)."""
        vm = views.float()
        _, onehot = sample_onehot(sample)
        self.tokens += vm.sum(1).double()
        self.samples += onehot.shape[0]
        self.boot_tokens += (poisson @ onehot.sum(1)).double()
        for li, r in enumerate(routing):
            dense = r.dense_weights().cpu()
            self.weight[:, li] += (vm @ dense).double()
            self.slots[:, li] += (vm @ r.slots().cpu()).double()
            probs = r.probs.cpu()
            self.prob[:, li] += (vm @ probs).double()
            self.entropy[:, li] += (vm @ entropy(probs)).double()
            self.boot_weight[:, li] += (poisson @ (onehot @ dense)).double()

    # ---- means ---------------------------------------------------------------------------------------------
    def usage(self) -> dict[str, Tensor]:
        """[V, L, E] weight usage, slot fraction and mean router probability; [V, L] mean entropy."""
        n = self.tokens.clamp_min(1)[:, None, None]
        return {"weight": self.weight / n, "slot": self.slots / (n * self.k), "prob": self.prob / n,
                "entropy": self.entropy / n[:, :, 0]}

    def boot_usage(self) -> Tensor:
        return self.boot_weight / self.boot_tokens.clamp_min(1)[:, None, None]


@dataclass
class PairStats:
    n_views: int
    n_layers: int
    sample_sums: dict[str, Tensor] = field(init=False)  # [V, L] sums over samples of per-sample means
    sample_counts: Tensor = field(init=False)  # [V, L] samples with rows in the view
    token_sums: dict[str, Tensor] = field(init=False)  # [V, L]
    tokens: Tensor = field(init=False)  # [V]

    def __post_init__(self):
        V, L = self.n_views, self.n_layers
        self.sample_sums = {k: torch.zeros(V, L, dtype=torch.float64) for k in PAIR_SAMPLE}
        self.sample_counts = torch.zeros(V, L, dtype=torch.float64)
        self.token_sums = {k: torch.zeros(V, L, dtype=torch.float64) for k in PAIR_TOKEN}
        self.tokens = torch.zeros(V, dtype=torch.float64)

    def add(self, a: list[Routing], b: list[Routing], views: Tensor, sample: Tensor) -> None:
        vm = views.float()
        _, onehot = sample_onehot(sample)
        self.tokens += vm.sum(1).double()
        per_view = onehot[None] * vm[:, None, :]  # [V, S_batch, N]
        counts = per_view.sum(-1)  # [V, S_batch]
        present = counts > 0
        for li, (ra, rb) in enumerate(zip(a, b, strict=True)):
            rows = {k: v.cpu() for k, v in pair_rows(ra, rb).items()}
            for key in PAIR_SAMPLE:
                means = (per_view @ rows[key]) / counts.clamp_min(1)
                self.sample_sums[key][:, li] += (means * present).sum(-1).double()
            for key in PAIR_TOKEN:
                self.token_sums[key][:, li] += (vm @ rows[key]).double()
            self.sample_counts[:, li] += present.sum(-1).double()

    def means(self) -> dict[str, Tensor]:
        """[V, L] per-layer means: TV / Jaccard / intersection averaged per sample then over samples; top-1
        agreement and JS over tokens."""
        out = {k: v / self.sample_counts.clamp_min(1) for k, v in self.sample_sums.items()}
        out.update({k: v / self.tokens.clamp_min(1)[:, None] for k, v in self.token_sums.items()})
        return out


# ---------------------------------------------------------------------------------------------------- tests
def two_proportion_p(x_a: Tensor, n_a: Tensor, x_b: Tensor, n_b: Tensor) -> Tensor:
    """Two-sided p-value of the two-proportion z-test (pooled variance) per cell; 1 where undefined."""
    x_a, n_a, x_b, n_b = (t.double() for t in (x_a, n_a, x_b, n_b))
    pooled = (x_a + x_b) / (n_a + n_b).clamp_min(1)
    se = (pooled * (1 - pooled) * (1 / n_a.clamp_min(1) + 1 / n_b.clamp_min(1))).sqrt()
    z = (x_b / n_b.clamp_min(1) - x_a / n_a.clamp_min(1)) / se
    p = torch.special.erfc(z.abs() / math.sqrt(2.0))
    return torch.where(se > 0, p, torch.ones_like(p))


def benjamini_hochberg(p: Tensor) -> Tensor:
    """Benjamini-Hochberg q-values (same shape as ``p``), by ``scipy.stats.false_discovery_control``."""
    from scipy.stats import false_discovery_control

    q = false_discovery_control(p.flatten().double().numpy(), method="bh")
    return torch.from_numpy(q).reshape(p.shape)


def thresholded(diff: Tensor, floor: float = 0.005, quantile: float = 0.99) -> tuple[Tensor, float]:
    """X4A's map: +1 / -1 where |diff| >= max(floor, the 99th percentile of |diff|), else 0."""
    thr = max(floor, float(torch.quantile(diff.abs().double().flatten(), quantile)))
    sign = torch.where(diff.abs() >= thr, diff.sign(), torch.zeros_like(diff))
    return sign.to(torch.int8), thr
