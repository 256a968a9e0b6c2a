"""NMF topics of promoted tokens (used by `mine`; shared with later commands such as `interpret`).

A sparse positions x tokens matrix of each position's top-K positive entries is factorised by beta-divergence
multiplicative updates with one of two backends from the same seeded initialisation: ``torchnmf``
(``torchnmf.nmf.NMF.fit`` on the dense column-compressed matrix, only the token columns that occur) or
``sparse`` (the same update rules, eps and stopping rule, run on CSR matrices with SDDMM: torchnmf's own sparse
path is far too slow at 100k positions x K=100), the latter optionally with an orthogonality penalty on the
topic-token matrix. ``auto`` picks torchnmf when the dense matrix fits ``DENSE_BUDGET`` floats and no
orthogonality is asked. Fully vectorised; deterministic per seed."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

MODES = ("binary", "magnitude")
BACKENDS = ("auto", "torchnmf", "sparse")
EPS = torch.finfo(torch.float32).eps  # torchnmf's eps: added to numerators (and Frobenius denominators)

# dense [positions, distinct tokens] floats up to which `auto` uses torchnmf (16 MB in float32). Set by time, not
# memory: the dense fit costs O(positions x distinct tokens) per iteration against O(entries) for the sparse
# backend (mine's matrices are ~0.5-3% dense): 100 torchnmf iterations on a 300 x 6454 matrix took 9 s against
# 0.3 s for the sparse backend (benchmarks/mine_overhead.py; docs/mine.md "NMF backends").
DENSE_BUDGET = 4_000_000


def dense_size(shape: tuple[int, int]) -> int:
    return int(shape[0]) * int(shape[1])


def torchnmf_updates(v: Tensor, h: Tensor, w: Tensor, beta: float, max_iter: int = 200,
                     tol: float = 1e-4) -> tuple[Tensor, Tensor, int]:
    """``V ~ H W^T`` by torchnmf's multiplicative updates (``NMF.fit``: W then H each iteration, loss
    ``sqrt(2 D_beta)`` checked every 10 iterations against ``tol``) on the dense copy of sparse ``v
    [positions, m]``, starting from ``h [positions, r]`` and ``w [m, r]`` (copied, not modified)."""
    from torchnmf.nmf import NMF

    dense = v.to_dense().float() if v.is_sparse else v.float()
    model = NMF(W=w.float(), H=h.float())
    iters = model.fit(dense, beta=beta, tol=tol, max_iter=max_iter)
    return model.H.detach(), model.W.detach(), int(iters)


@dataclass
class Topics:
    """``weights [topics, tokens]`` (token ids in ``token_ids``), each row summing to 1; ``loadings
    [positions, topics]``; metrics per topic; cosine ``[topics, topics]`` between topic token vectors."""

    token_ids: Tensor
    weights: Tensor
    loadings: Tensor
    mass: Tensor
    prevalence: Tensor
    cosine: Tensor
    iterations: int
    n_entries: int
    backend: str = "sparse"


def sparse_matrix(ids: Tensor, values: Tensor, keep: Tensor | None, mode: str) -> tuple[Tensor, Tensor]:
    """COO ``[positions, m]`` of the positive entries and the token id of each of its ``m`` columns."""
    mask = values > 0
    if keep is not None:
        mask &= keep.to(ids.device)[ids.long()]
    rows = torch.arange(ids.shape[0], device=ids.device)[:, None].expand_as(ids)[mask]
    cols = ids[mask].long()
    vals = torch.ones_like(values[mask]) if mode == "binary" else values[mask].float()
    token_ids, inv = torch.unique(cols, return_inverse=True)
    size = (ids.shape[0], token_ids.numel())
    m = torch.sparse_coo_tensor(torch.stack([rows, inv]), vals, size, check_invariants=False).coalesce()
    return m, token_ids


class SparseV:
    """V in CSR (for V @ X) and V^T in CSR (for V^T @ X); (H W^T) at the stored entries by SDDMM."""

    def __init__(self, v: Tensor):
        import warnings

        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        v = v.coalesce()
        n, m = self.shape = tuple(v.shape)
        rows, cols = v.indices()
        self.vals = v.values().float()
        self.csr = torch.sparse_coo_tensor(v.indices(), self.vals, v.shape, check_invariants=False).to_sparse_csr()
        perm = torch.argsort(cols * n + rows)
        t_idx = torch.stack([cols[perm], rows[perm]])
        self.vals_t = self.vals[perm]
        self.csr_t = torch.sparse_coo_tensor(t_idx, self.vals_t, (m, n), check_invariants=False).to_sparse_csr()

    @staticmethod
    def _with(csr: Tensor, values: Tensor) -> Tensor:
        return torch.sparse_csr_tensor(csr.crow_indices(), csr.col_indices(), values, csr.shape, check_invariants=False)

    def mm(self, x: Tensor, values: Tensor | None = None) -> Tensor:
        return (self.csr if values is None else self._with(self.csr, values)) @ x

    def tmm(self, x: Tensor, values_t: Tensor | None = None) -> Tensor:
        return (self.csr_t if values_t is None else self._with(self.csr_t, values_t)) @ x

    def recon(self, h: Tensor, w: Tensor) -> Tensor:
        """(H W^T) at the stored entries of V (CSR order)."""
        return torch.sparse.sampled_addmm(self.csr, h, w.t().contiguous(), beta=0.0).values() + EPS

    def recon_t(self, h: Tensor, w: Tensor) -> Tensor:
        """(W H^T) at the stored entries of V^T (CSR order of the transpose)."""
        return torch.sparse.sampled_addmm(self.csr_t, w, h.t().contiguous(), beta=0.0).values() + EPS


def divergence(v: SparseV, h: Tensor, w: Tensor, beta: float) -> float:
    """beta-divergence D(V || H W^T) over the whole matrix (zeros included, computed in closed form)."""
    rec = v.recon(h, w)
    if beta == 1:
        return float((v.vals * torch.log(v.vals / rec) - v.vals).sum() + (h.sum(0) * w.sum(0)).sum())
    return 0.5 * float((v.vals**2).sum() - 2 * (v.vals * rec).sum() + ((h.t() @ h) * (w.t() @ w)).sum())


def _loss(v: SparseV, h: Tensor, w: Tensor, beta: float) -> float:
    """torchnmf's monitored loss ``sqrt(2 D)``."""
    return (2 * max(divergence(v, h, w, beta), 0.0)) ** 0.5


def multiplicative_updates(v: SparseV, h: Tensor, w: Tensor, beta: float, orthogonal: float = 0.0,
                           max_iter: int = 200, tol: float = 1e-4) -> tuple[Tensor, Tensor, int]:
    """Beta-divergence multiplicative updates of ``V ~ H W^T`` (beta 1 = KL, 2 = Frobenius) exactly as
    torchnmf's ``NMF.fit`` applies them (W then H; ``W *= (num + eps) / den`` with eps also in the Frobenius
    denominator; loss ``sqrt(2 D)`` checked every 10 iterations, stop when its decrease relative to the initial
    loss falls below ``tol``), on a CSR matrix. ``orthogonal`` adds ``lam * sum_{i != j} w_i . w_j``
    (distinct topics' token vectors) to the objective of W: ``lam * W (11^T - I)`` joins W's denominator."""
    r = w.shape[1]
    off = orthogonal * (torch.ones(r, r, device=w.device) - torch.eye(r, device=w.device)) if orthogonal > 0 else None
    first = prev = _loss(v, h, w, beta)
    it = 0
    for it in range(1, max_iter + 1):
        if beta == 1:
            num, den = v.tmm(h, v.vals_t / v.recon_t(h, w)), h.sum(0, keepdim=True).clamp_min(1e-30)
        else:
            num, den = v.tmm(h), w @ (h.t() @ h) + EPS
        w = w * (num + EPS) / (den if off is None else den + w @ off)
        if beta == 1:
            num, den = v.mm(w, v.vals / v.recon(h, w)), w.sum(0, keepdim=True).clamp_min(1e-30)
        else:
            num, den = v.mm(w), h @ (w.t() @ w) + EPS
        h = h * (num + EPS) / den
        if it % 10 == 0:
            loss = _loss(v, h, w, beta)
            if (prev - loss) / max(first, 1e-12) < tol:
                break
            prev = loss
    return h, w, it


def choose_backend(requested: str, shape: tuple[int, int], orthogonal: float, budget: int = DENSE_BUDGET) -> str:
    """``auto`` -> ``torchnmf`` when ``positions x distinct tokens <= budget`` and no orthogonality penalty
    (torchnmf has none), else ``sparse``; an explicit choice is kept."""
    if requested != "auto":
        return requested
    return "torchnmf" if orthogonal == 0 and dense_size(shape) <= budget else "sparse"


def init_factors(n: int, m: int, rank: int, total: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded uniform initialisation ``h [n, rank]``, ``w [m, rank]`` scaled so ``H W^T`` matches V's mean."""
    gen = torch.Generator().manual_seed(seed)
    scale = (total / max(n * m, 1) / rank) ** 0.5
    h = torch.rand(n, rank, generator=gen) * scale + 1e-6
    w = torch.rand(m, rank, generator=gen) * scale + 1e-6
    return h, w


def fit_topics(v: Tensor, token_ids: Tensor, *, topics: int, beta: float, orthogonal: float, seed: int,
               max_iter: int = 200, tol: float = 1e-4, backend: str = "auto", budget: int = DENSE_BUDGET) -> Topics:
    """Factorise ``v`` (sparse ``[positions, m]``) into ``topics`` topics with ``backend`` (auto, torchnmf,
    sparse; see ``choose_backend``); same seed, same topics. The updates run on ``v``'s device (the
    initialisation is drawn on the CPU, so a GPU fit starts from the same factors); the topics come back on
    the CPU."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown NMF backend {backend!r}")
    v = v.coalesce()
    n, m = v.shape
    rank = max(1, min(topics, m, n))
    chosen = choose_backend(backend, (n, m), orthogonal, budget)
    if chosen == "torchnmf" and orthogonal > 0:
        raise ValueError("the torchnmf backend has no orthogonality penalty; use the sparse backend")
    h, w = init_factors(n, m, rank, float(v.values().float().sum()), seed)
    h, w = h.to(v.device), w.to(v.device)
    if chosen == "torchnmf":
        h, w, iters = torchnmf_updates(v, h, w, beta, max_iter, tol)
    else:
        h, w, iters = multiplicative_updates(SparseV(v), h, w, beta, orthogonal, max_iter, tol)
    return _topics(h, w, token_ids, iters, int(v._nnz()), chosen)


def _topics(h: Tensor, w: Tensor, token_ids: Tensor, iters: int, n_entries: int, backend: str) -> Topics:
    """Normalise W's columns to sum 1 (H takes the scale), sort topics by mass, compute the metrics."""
    rank = w.shape[1]
    scale = w.sum(0).clamp_min(1e-12)
    w, h = w / scale, h * scale
    mass = h.sum(0) / h.sum().clamp_min(1e-12)
    order = torch.argsort(-mass, stable=True)
    w, h, mass = w[:, order], h[:, order], mass[order]
    active = h.sum(1) > 0
    dominant = h[active].argmax(1)
    prevalence = torch.bincount(dominant, minlength=rank).double() / max(int(active.sum()), 1)
    unit = w / w.norm(dim=0, keepdim=True).clamp_min(1e-12)
    return Topics(token_ids=token_ids.cpu(), weights=w.t().contiguous().cpu(), loadings=h.cpu(), mass=mass.cpu(),
                  prevalence=prevalence.cpu(), cosine=(unit.t() @ unit).cpu(), iterations=int(iters),
                  n_entries=n_entries, backend=backend)
