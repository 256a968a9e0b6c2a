"""The torchnmf backend of `mine`'s NMF: the column-compressed matrix (only the token columns that occur) made
dense and factorised by ``torchnmf.nmf.NMF(...).fit`` from a given (seeded) initialisation."""

from __future__ import annotations

from torch import Tensor

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
