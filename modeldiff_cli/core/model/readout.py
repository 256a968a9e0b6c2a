"""Logit-lens readout: hidden state -> final norm -> lm_head, in chunks of positions, float32 out.

Peak memory of a readout is ``chunk_size x vocab`` floats, whatever the number of positions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .arch import ArchAdapter

DEFAULT_CHUNK = 1024
CPU_CHUNK = 256  # positions per lm_head chunk on the CPU when --chunk-size is auto (cache-friendly there)
ACCELERATOR_CHUNK_BYTES = 512 << 20  # on an accelerator: float32 logits per chunk, at most 1/8 of free memory


def chunk_rows(chunk_size: int | None, device, vocab: int) -> int:
    """Positions read through lm_head at once. ``chunk_size`` given: that. None (``--chunk-size auto``): 256 on the
    CPU; on CUDA as many as ``ACCELERATOR_CHUNK_BYTES`` of float32 logits hold (and 1/8 of the device's free
    memory), so a batch is a few large matmuls and top-Ks instead of dozens of small, launch-bound ones."""
    if chunk_size is not None:
        return max(1, int(chunk_size))
    device = torch.device(device)
    if device.type != "cuda":
        return CPU_CHUNK
    free, _total = torch.cuda.mem_get_info(device)
    budget = min(ACCELERATOR_CHUNK_BYTES, free // 8)
    return max(CPU_CHUNK, int(budget // (4 * max(1, vocab))))


def head(adapter: ArchAdapter, normed: torch.Tensor) -> torch.Tensor:
    """The model's output head on final-normed hidden states: lm_head (+ logit soft-capping), float32."""
    with torch.no_grad():
        return adapter.head(normed).float()


# (layer index, hidden rows [n, d]) -> float32 logits [n, vocab]
Reader = Callable[[int, torch.Tensor], torch.Tensor]


def make_reader(loaded, kind: str, *, chunk_size: int | None = DEFAULT_CHUNK, patchscope_prompt: str | None = None,
                patchscope_layer: str | None = None) -> Reader:
    """The one reader of hidden rows, by readout kind.

    ``logits``: rows are final-normed states, read by the output head; ``logit-lens``: rows are a layer's
    residual stream, read through the final norm and the head; ``patchscope``: rows patched into an identity
    prompt at ``patchscope_layer`` (default: the layer they come from), one decode step (``core.model.patchscope``).
    """
    adapter = loaded.adapter
    if kind == "logits":
        return lambda _layer, rows: head(adapter, rows)
    if kind == "logit-lens":
        return lambda _layer, rows: readout(adapter, rows)
    from . import patchscope

    kwargs: dict = {"chunk_size": chunk_size}
    if patchscope_prompt is not None:
        kwargs["prompt"] = patchscope_prompt
    if patchscope_layer is not None:
        kwargs["target_layer"] = patchscope_layer
    return lambda layer, rows: patchscope.patchscope_logits(loaded, rows, source_layer=layer, **kwargs).float()


def readout(adapter: ArchAdapter, hidden: torch.Tensor) -> torch.Tensor:
    """Logits (float32) for hidden states ``[..., d]``; all positions at once (use chunks for many)."""
    with torch.no_grad():
        dtype, device = _param_info(adapter.final_norm)
        return adapter.readout(hidden.to(device=device, dtype=dtype)).float()


def _param_info(module: torch.nn.Module) -> tuple[torch.dtype, torch.device]:
    for p in module.parameters():
        return p.dtype, p.device
    return torch.float32, torch.device("cpu")
