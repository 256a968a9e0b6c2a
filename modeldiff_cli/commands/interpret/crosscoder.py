"""Step 3: an acausal crosscoder — a TopK sparse autoencoder on the concatenation [h_base; h_ft].

The sparse coder is eai-sparsify's ``SparseCoder`` (extra ``modeldiff[interpret]``): TopK activation, unit-norm
decoder rows, a fused encoder with a sparse backward, the AuxK loss for dead latents. Our training loop follows
sparsify's own trainer (decoder bias initialised to the data mean, the gradient parallel to each decoder row
removed, rows renormalised after each step) and adds one term sparsify's loss does not have: the decoder-norm
penalty of Lindsey et al. (2024), activation x (|d_base| + |d_ft|), computed from the coder's latent activations
and decoder, which lets a latent specialise to one model. Each model's activations are divided by their RMS
first, so both halves weigh the same. Training is seeded (same --seed, same dictionary); each epoch visits every
vector once in a seeded order.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from dataclasses import dataclass, field

import torch

from ...core.spine import console
from .sides import BASE_ONLY, FT_ONLY, SHARED_BAND, dec_norm_share, latent_side  # noqa: F401 (thresholds re-exported)

RATIO = 1.5  # alignmt's norm-ratio categories
LIBRARY = "eai-sparsify"
AUXK_ALPHA = 1 / 32  # sparsify's usual AuxK weight
VIEW_ROWS = 16384  # rows the per-model firing frequencies are measured on (a seeded subset)
SMALL_STEP = 1 << 26  # multiply-adds of one step's encoder (batch x 2d x latents) below which one thread is used


def _sparsify():
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a note when Triton is missing
        from sparsify import SparseCoder, SparseCoderConfig
    return SparseCoder, SparseCoderConfig


@dataclass
class Codes:
    """The sparse code of every sample row: the k active latents and their activations."""

    acts: torch.Tensor  # [n, k] float32
    idx: torch.Tensor  # [n, k] int64

    def column(self, latent: int) -> torch.Tensor:
        """Dense activations [n] of one latent."""
        return (self.acts * (self.idx == latent)).sum(-1)


@dataclass
class Crosscoder:
    layer: int
    model: torch.nn.Module  # sparsify.SparseCoder on [h_base / rms_base; h_ft / rms_ft]
    d: int
    rms: tuple[float, float]
    library: str
    losses: list[float]
    explained_variance: float
    seconds: float  # the optimisation loop
    codes: Codes | None = None  # of the training sample (filled by train)
    settings: dict = field(default_factory=dict)

    @property
    def latents(self) -> int:
        return int(self.model.W_dec.shape[0])

    @torch.no_grad()
    def code(self, base: torch.Tensor, ft: torch.Tensor, chunk: int = 8192, fit: list | None = None) -> Codes:
        """Sparse codes of paired (raw) activations, in chunks. With ``fit`` (a list), appends the squared
        reconstruction error, the sum of squares and the column sums of x (for the explained variance)."""
        acts, idx = [], []
        err, sq, col = 0.0, 0.0, torch.zeros(2 * self.d, dtype=torch.float64)
        for s in range(0, base.shape[0], chunk):
            x = paired(base[s : s + chunk], ft[s : s + chunk], self.rms)
            out = self.model.encode(x)
            acts.append(out.top_acts.float())
            idx.append(out.top_indices)
            if fit is not None:
                err += float((x - self.model.decode(out.top_acts, out.top_indices)).pow(2).sum())
                sq += float(x.double().pow(2).sum())
                col += x.double().sum(0)
        if fit is not None:
            fit += [err, sq, col]
        return Codes(torch.cat(acts), torch.cat(idx))

    def decoders(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each latent's decoder rows in the two halves, in normalised units: ([n, d] base, [n, d] ft)."""
        W = self.model.W_dec.detach().float()
        return W[:, : self.d], W[:, self.d :]


def paired(base: torch.Tensor, ft: torch.Tensor, rms: tuple[float, float]) -> torch.Tensor:
    """[h_base / rms_base; h_ft / rms_ft] as one contiguous float32 tensor (written in place)."""
    n, d = base.shape
    x = torch.empty(n, 2 * d, dtype=torch.float32)
    torch.div(base, rms[0], out=x[:, :d])
    torch.div(ft, rms[1], out=x[:, d:])
    return x


def default_latents(width: int) -> int:
    """Latents when --latents is 0: four times the concatenated width (4608 at SmolLM-135M's d = 576)."""
    return 4 * width


def default_steps(n: int, batch: int, epochs: float = 2.0) -> int:
    """Steps when --steps is 0: ``epochs`` passes over the sample, at least 200 steps, at most 2000."""
    return max(200, min(2000, math.ceil(epochs * n / batch)))


@contextlib.contextmanager
def _num_threads(n: int):
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)


def train(sample, *, latents: int, k: int, steps: int, batch: int, lr: float, seed: int, label: str = "",
          exclusive: float = 0.0) -> Crosscoder:
    """Adam on FVU + AuxK/32 (+ the decoder-norm penalty), then the sample's codes and explained variance.
    Each step pairs and scales its batch in one preallocated buffer: no copy of the whole sample is made.

    Threads: torch's (default: the physical cores; OMP_NUM_THREADS overrides), but one below SMALL_STEP
    multiply-adds per step, where the threads' synchronisation costs more than they gain (a 128-latent coder:
    15x slower on two threads than on one on a busy machine)."""
    batch = min(batch, sample.base.shape[0])
    k = min(k, latents)
    threads = torch.get_num_threads() if batch * 2 * sample.base.shape[1] * latents >= SMALL_STEP else 1
    with _num_threads(threads):
        return _fit(sample, latents, k, steps, batch, lr, seed, label, exclusive, threads)


def _fit(sample, latents: int, k: int, steps: int, batch: int, lr: float, seed: int, label: str, exclusive: float,
         threads: int) -> Crosscoder:
    SparseCoder, SparseCoderConfig = _sparsify()
    n, d = sample.base.shape
    d_in = 2 * d
    inv = (1.0 / sample.rms[0], 1.0 / sample.rms[1])
    torch.manual_seed(seed)
    model = SparseCoder(d_in, SparseCoderConfig(num_latents=latents, k=k))
    with torch.no_grad():  # sparsify's trainer: the decoder bias starts at the data mean
        model.b_dec.copy_(torch.cat([sample.base.mean(0) * inv[0], sample.ft.mean(0) * inv[1]]))
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)  # one fused kernel: ~4x cheaper on CPU
    gen = torch.Generator().manual_seed(seed)
    last_fired = torch.zeros(latents, dtype=torch.long)
    dead_after = max(50, steps // 10)
    losses = torch.zeros(steps)
    order = torch.empty(0, dtype=torch.long)
    xb = torch.empty(batch, d_in)
    started = time.perf_counter()
    model.train()
    with console.progress_bar() as bar:
        title = f"interpret: crosscoder {label}".strip()
        task = bar.add_task(title, total=steps)
        for step in range(steps):
            if order.numel() < batch:  # a new epoch: every vector once, in a seeded order
                order = torch.cat([order, torch.randperm(n, generator=gen)])
            rows, order = order[:batch], order[batch:]
            torch.mul(sample.base[rows], inv[0], out=xb[:, :d])
            torch.mul(sample.ft[rows], inv[1], out=xb[:, d:])
            dead = (step - last_fired) > dead_after
            out = model(xb, dead_mask=dead if bool(dead.any()) else None)
            loss = out.fvu + AUXK_ALPHA * out.auxk_loss
            if exclusive > 0:  # Lindsey et al. (2024): activation x (|d_base| + |d_ft|), relative to |x|
                W = model.W_dec
                halves = W[:, :d].norm(dim=-1) + W[:, d:].norm(dim=-1)
                loss = loss + exclusive * (out.latent_acts * halves[out.latent_indices]).sum(-1).mean() \
                    / xb.norm(dim=-1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            model.remove_gradient_parallel_to_decoder_directions()
            opt.step()
            model.set_decoder_norm_to_unit_norm()
            last_fired[out.latent_indices.flatten()] = step
            losses[step] = out.fvu.detach()
            if step % 10 == 9 or step == steps - 1:
                recent = float(losses[max(0, step - 9) : step + 1].mean())
                bar.update(task, completed=step + 1, description=f"{title}: EV {1 - recent:.3f}")
    model.eval()
    seconds = time.perf_counter() - started
    cc = Crosscoder(sample.layer, model, d, sample.rms, LIBRARY, losses.tolist(), float("nan"), seconds,
                    settings={"latents": latents, "k": k, "steps": steps, "batch": batch, "lr": lr,
                              "norm_penalty": exclusive, "auxk_alpha": AUXK_ALPHA, "threads": threads})
    fit: list = []
    cc.codes = cc.code(sample.base, sample.ft, fit=fit)
    err, sq, col = fit
    variance = sq - float(col.pow(2).sum()) / max(n, 1)  # sum |x - mean x|^2
    cc.explained_variance = 1.0 - err / max(variance, 1e-12)
    console.info(f"crosscoder at layer {sample.layer} ({LIBRARY}): {steps} steps x {batch} on {n} vectors, "
                 f"{latents} latents, k = {k}, {threads} thread(s): explained variance "
                 f"{cc.explained_variance:.3f}, {seconds:.1f} s")
    return cc


def side(share: float) -> str:
    """A latent's side from its decoder-norm share (``sides.latent_side``: ft-only, ft-mostly, shared,
    base-mostly, base-only)."""
    return latent_side(share)


def ratio_category(real_base: float, real_ft: float) -> str:
    """alignmt's norm-ratio categories on real (un-normalised) decoder norms."""
    ratio = real_ft / max(real_base, 1e-12)
    if ratio >= RATIO:
        return "ft-enhanced"
    if ratio <= 1 / RATIO:
        return "base-enhanced"
    return "balanced"


def _frequency(codes: Codes, latents: int) -> torch.Tensor:
    """Fraction of rows on which each latent is active (non-zero activation)."""
    on = codes.idx[codes.acts > 0]
    return torch.bincount(on, minlength=latents).double().div(max(codes.idx.shape[0], 1)).float()


def latent_stats(cc: Crosscoder, sample, n_categories: int, seed: int = 0) -> dict:
    """See :func:`_latent_stats` (on the thread count the coder trained with)."""
    with _num_threads(cc.settings.get("threads", torch.get_num_threads())):
        return _latent_stats(cc, sample, n_categories, seed)


@torch.no_grad()
def _latent_stats(cc: Crosscoder, sample, n_categories: int, seed: int) -> dict:
    """Per latent: decoder norms and share, side, ratio category, firing frequency (paired, per category; base
    and ft views on a seeded subset of at most VIEW_ROWS rows), mean activation, and the real-unit
    ft-minus-base decoder direction. ``codes`` keeps the sample's sparse codes (for top contexts)."""
    db, df = cc.decoders()
    nb, nf = db.norm(dim=-1), df.norm(dim=-1)
    share = dec_norm_share(nb, nf)
    real_b, real_f = nb * cc.rms[0], nf * cc.rms[1]
    codes = cc.codes if cc.codes is not None else cc.code(sample.base, sample.ft)
    L = cc.latents
    n = codes.idx.shape[0]
    fired = codes.acts > 0
    counts = torch.bincount(codes.idx[fired], minlength=L).double()
    act_sum = torch.zeros(L, dtype=torch.float64).index_add_(0, codes.idx[fired], codes.acts[fired].double())
    cat_of = sample.category.unsqueeze(1).expand_as(codes.idx)[fired]
    per_cat = torch.bincount(cat_of * L + codes.idx[fired], minlength=n_categories * L).double().view(n_categories, L)
    rows_per_cat = torch.bincount(sample.category, minlength=n_categories).double().clamp_min(1).unsqueeze(1)
    # each model alone: both halves from that model (at the other half's scale)
    sub = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: min(n, VIEW_ROWS)].sort().values
    b, f = sample.base[sub], sample.ft[sub]
    base_view = _frequency(cc.code(b, b * (cc.rms[1] / cc.rms[0])), L)
    ft_view = _frequency(cc.code(f * (cc.rms[0] / cc.rms[1]), f), L)
    direction = df * cc.rms[1] - db * cc.rms[0]  # what the latent adds to ft minus what it adds to base
    return {
        "base_norm": nb, "ft_norm": nf, "share": share, "real_base_norm": real_b, "real_ft_norm": real_f,
        "freq": (counts / max(n, 1)).float(), "freq_base_view": base_view, "freq_ft_view": ft_view,
        "freq_category": (per_cat / rows_per_cat).float(), "mean_act": (act_sum / counts.clamp_min(1)).float(),
        "direction": direction, "codes": codes, "view_rows": int(sub.numel()),
    }


def clusters(stats: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in stats["share"].tolist():
        out[side(s)] = out.get(side(s), 0) + 1
    return out
