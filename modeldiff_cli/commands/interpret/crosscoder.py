"""Step 3: an acausal crosscoder — a TopK sparse autoencoder on the concatenation [h_base; h_ft].

The sparse coder is eai-sparsify's ``SparseCoder`` (TopK activation, unit-norm decoder rows, the
AuxK loss for dead latents) when that library is installed (extra ``modeldiff[interpret]``); otherwise a
minimal TopK autoencoder with the same parametrisation (:class:`TopK`). Each model's activations are divided
by their RMS first, so both halves weigh the same. Training is seeded (same --seed, same dictionary).
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from ...core import console

# diffing-toolkit's dec_norm_diff thresholds
FT_ONLY, BASE_ONLY, SHARED_BAND = 0.1, 0.9, 0.1
RATIO = 1.5  # alignmt's norm-ratio categories


class TopK(nn.Module):
    """Fallback TopK SAE: encoder (linear, ReLU, keep the k largest), unit-norm decoder rows, decoder bias."""

    def __init__(self, d_in: int, num_latents: int, k: int):
        super().__init__()
        self.k = k
        self.encoder = nn.Linear(d_in, num_latents)
        self.encoder.bias.data.zero_()
        self.W_dec = nn.Parameter(nn.functional.normalize(self.encoder.weight.data.clone(), dim=1))
        self.b_dec = nn.Parameter(torch.zeros(d_in))

    def encode(self, x: torch.Tensor):
        pre = torch.relu(self.encoder(x - self.b_dec))
        acts, idx = pre.topk(self.k, sorted=False)
        return acts, idx, pre

    def decode(self, acts: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return (acts.unsqueeze(-1) * self.W_dec[idx]).sum(-2) + self.b_dec

    def loss(self, x: torch.Tensor, dead_mask: torch.Tensor | None = None):
        acts, idx, _ = self.encode(x)
        e = x - self.decode(acts, idx)
        return e.pow(2).sum() / (x - x.mean(0)).pow(2).sum(), idx, acts

    @torch.no_grad()
    def set_decoder_norm_to_unit_norm(self) -> None:
        self.W_dec.data = nn.functional.normalize(self.W_dec.data, dim=1)


class Sparsify(nn.Module):
    """eai-sparsify's SparseCoder behind the interface of :class:`TopK`."""

    def __init__(self, d_in: int, num_latents: int, k: int):
        super().__init__()
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a note when Triton is missing
            from sparsify import SparseCoder, SparseCoderConfig
        self.coder = SparseCoder(d_in, SparseCoderConfig(num_latents=num_latents, k=k))

    @property
    def W_dec(self):
        return self.coder.W_dec

    @property
    def b_dec(self):
        return self.coder.b_dec

    def encode(self, x):
        out = self.coder.encode(x)
        return out.top_acts, out.top_indices, out.pre_acts

    def decode(self, acts, idx):
        return self.coder.decode(acts, idx)

    def loss(self, x, dead_mask=None):
        out = self.coder(x, dead_mask=dead_mask)
        return out.fvu + out.auxk_loss / 32, out.latent_indices, out.latent_acts

    def set_decoder_norm_to_unit_norm(self):
        self.coder.set_decoder_norm_to_unit_norm()


def installed_library() -> str:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import sparsify  # noqa: F401
    except ImportError:
        return "builtin-topk"
    return "eai-sparsify"


@dataclass
class Crosscoder:
    layer: int
    model: nn.Module
    d: int
    rms: tuple[float, float]
    library: str
    losses: list[float]
    explained_variance: float
    seconds: float

    @torch.no_grad()
    def encode(self, base: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        """Dense latent activations [n, latents] of paired (raw) activations."""
        x = paired(base, ft, self.rms)
        acts, idx, pre = self.model.encode(x)
        dense = torch.zeros(x.shape[0], self.model.W_dec.shape[0])
        return dense.scatter_(1, idx, acts.float())

    def decoders(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each latent's decoder rows in the two halves, in normalised units: ([n, d] base, [n, d] ft)."""
        W = self.model.W_dec.detach().float()
        return W[:, : self.d], W[:, self.d :]


def paired(base: torch.Tensor, ft: torch.Tensor, rms: tuple[float, float]) -> torch.Tensor:
    return torch.cat([base / rms[0], ft / rms[1]], dim=-1)


def train(sample, *, latents: int, k: int, steps: int, batch: int, lr: float, seed: int, label: str = "",
          library: str | None = None, exclusive: float = 0.0) -> Crosscoder:
    """Adam on the fraction of variance unexplained (+ AuxK in sparsify), decoder rows renormalised each step."""
    x = paired(sample.base, sample.ft, sample.rms)
    d_in = x.shape[1]
    lib = library or installed_library()
    torch.manual_seed(seed)
    model = (Sparsify if lib == "eai-sparsify" else TopK)(d_in, latents, min(k, latents))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    last_fired = torch.zeros(latents, dtype=torch.long)
    losses: list[float] = []
    started = time.perf_counter()
    model.train()
    for step in console.track(range(steps), f"interpret: crosscoder {label}".strip()):
        rows = torch.randint(0, x.shape[0], (min(batch, x.shape[0]),), generator=gen)
        dead = (step - last_fired) > max(50, steps // 10)
        xb = x[rows]
        loss, idx, acts = model.loss(xb, dead_mask=dead if dead.any() else None)
        if exclusive > 0:  # Lindsey et al. (2024): activation x (|d_base| + |d_ft|), relative to the input norm
            W = model.W_dec
            halves = W[:, :d_in // 2].norm(dim=-1) + W[:, d_in // 2:].norm(dim=-1)
            loss = loss + exclusive * (acts * halves[idx]).sum(-1).mean() / xb.norm(dim=-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.set_decoder_norm_to_unit_norm()
        last_fired[idx.flatten().unique()] = step
        losses.append(float(loss.detach()))
    model.eval()
    seconds = time.perf_counter() - started
    ev = explained_variance(model, x)
    console.info(f"crosscoder at layer {sample.layer} ({lib}): {steps} steps, final loss {losses[-1]:.4f}, "
                 f"explained variance {ev:.3f}, {seconds:.1f} s")
    return Crosscoder(sample.layer, model, d_in // 2, sample.rms, lib, losses, ev, seconds)


@torch.no_grad()
def explained_variance(model, x: torch.Tensor, chunk: int = 8192) -> float:
    err = 0.0
    for s in range(0, x.shape[0], chunk):
        xs = x[s : s + chunk]
        acts, idx, _ = model.encode(xs)
        err += float((xs - model.decode(acts, idx)).pow(2).sum())
    total = float((x - x.mean(0)).pow(2).sum())
    return 1.0 - err / max(total, 1e-12)


def dec_norm_share(base_norm: torch.Tensor, ft_norm: torch.Tensor) -> torch.Tensor:
    """diffing-toolkit's dec_norm_diff: 0.5 * ((|d_base| - |d_ft|) / max(|d_base|, |d_ft|) + 1).
    0 = ft-only, 1 = base-only, 0.5 = shared."""
    top = torch.maximum(base_norm, ft_norm).clamp_min(1e-12)
    return 0.5 * ((base_norm - ft_norm) / top + 1)


def side(share: float) -> str:
    if share < FT_ONLY:
        return "ft-only"
    if share > BASE_ONLY:
        return "base-only"
    if abs(share - 0.5) < SHARED_BAND:
        return "shared"
    return "changed"


def ratio_category(real_base: float, real_ft: float) -> str:
    """alignmt's norm-ratio categories on real (un-normalised) decoder norms."""
    ratio = real_ft / max(real_base, 1e-12)
    if ratio >= RATIO:
        return "ft-enhanced"
    if ratio <= 1 / RATIO:
        return "base-enhanced"
    return "balanced"


@torch.no_grad()
def latent_stats(cc: Crosscoder, sample, n_categories: int) -> dict:
    """Per latent: decoder norms and share, side, ratio category, firing frequency (paired, base view, ft view,
    per category), mean activation, and the real-unit ft-minus-base decoder direction."""
    db, df = cc.decoders()
    nb, nf = db.norm(dim=-1), df.norm(dim=-1)
    share = dec_norm_share(nb, nf)
    real_b, real_f = nb * cc.rms[0], nf * cc.rms[1]
    acts = cc.encode(sample.base, sample.ft)
    fired = acts > 0
    # each model alone: both halves from that model (at the other half's scale)
    base_view = cc.encode(sample.base, sample.base * cc.rms[1] / cc.rms[0]) > 0
    ft_view = cc.encode(sample.ft * cc.rms[0] / cc.rms[1], sample.ft) > 0
    per_cat = torch.zeros(n_categories, acts.shape[1])
    for c in range(n_categories):
        rows = sample.category == c
        if rows.any():
            per_cat[c] = fired[rows].float().mean(0)
    mean_act = acts.sum(0) / fired.sum(0).clamp_min(1)
    direction = df * cc.rms[1] - db * cc.rms[0]  # what the latent adds to ft minus what it adds to base
    return {
        "base_norm": nb, "ft_norm": nf, "share": share, "real_base_norm": real_b, "real_ft_norm": real_f,
        "freq": fired.float().mean(0), "freq_base_view": base_view.float().mean(0),
        "freq_ft_view": ft_view.float().mean(0), "freq_category": per_cat, "mean_act": mean_act,
        "direction": direction, "acts": acts,
    }


def clusters(stats: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in stats["share"].tolist():
        out[side(s)] = out.get(side(s), 0) + 1
    return out


def default_steps(n: int, batch: int) -> int:
    return max(200, min(2000, math.ceil(3 * n / batch)))
