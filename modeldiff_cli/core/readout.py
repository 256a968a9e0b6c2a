"""Logit-lens readout: hidden state -> final norm -> lm_head, in chunks of positions, float32 out.

Peak memory of a readout is ``chunk_size x vocab`` floats, whatever the number of positions.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .arch import ArchAdapter

DEFAULT_CHUNK = 1024


def readout(adapter: ArchAdapter, hidden: torch.Tensor) -> torch.Tensor:
    """Logits (float32) for hidden states ``[..., d]``; all positions at once (use chunks for many)."""
    with torch.no_grad():
        dtype, device = _param_info(adapter.final_norm)
        return adapter.readout(hidden.to(device=device, dtype=dtype)).float()


def readout_chunks(
    adapter: ArchAdapter, hidden: torch.Tensor, chunk_size: int = DEFAULT_CHUNK
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ``(rows, logits)`` for consecutive chunks of the flattened positions of ``hidden [..., d]``.

    ``rows`` indexes the flattened positions; ``logits`` is float32 ``[rows, vocab]``.
    """
    flat = hidden.reshape(-1, hidden.shape[-1])
    step = max(1, int(chunk_size))
    for start in range(0, flat.shape[0], step):
        rows = slice(start, min(start + step, flat.shape[0]))
        yield rows, readout(adapter, flat[rows])


def log_softmax_chunks(
    adapter: ArchAdapter, hidden: torch.Tensor, chunk_size: int = DEFAULT_CHUNK
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Like :func:`readout_chunks`, yielding float32 log-probabilities."""
    for rows, logits in readout_chunks(adapter, hidden, chunk_size):
        yield rows, torch.log_softmax(logits, dim=-1)


def _param_info(module: torch.nn.Module) -> tuple[torch.dtype, torch.device]:
    for p in module.parameters():
        return p.dtype, p.device
    return torch.float32, torch.device("cpu")
