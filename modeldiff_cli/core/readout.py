"""Logit-lens readout: hidden state -> final norm -> lm_head, in chunks of positions, float32 out.

Peak memory of a readout is ``chunk_size x vocab`` floats, whatever the number of positions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from .arch import ArchAdapter

DEFAULT_CHUNK = 1024


def head(adapter: ArchAdapter, normed: torch.Tensor) -> torch.Tensor:
    """The model's output head on final-normed hidden states: lm_head (+ logit soft-capping), float32."""
    with torch.no_grad():
        return adapter.head(normed).float()


# (layer index, hidden rows [n, d]) -> float32 logits [n, vocab]
Reader = Callable[[int, torch.Tensor], torch.Tensor]


def make_reader(loaded, kind: str, *, chunk_size: int = DEFAULT_CHUNK, patchscope_prompt: str | None = None,
                patchscope_layer: str | None = None) -> Reader:
    """The one reader of hidden rows, by readout kind.

    ``logits``: rows are final-normed states, read by the output head; ``logit-lens``: rows are a layer's
    residual stream, read through the final norm and the head; ``patchscope``: rows patched into an identity
    prompt at ``patchscope_layer`` (default: the layer they come from), one decode step (``core.patchscope``).
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


def _param_info(module: torch.nn.Module) -> tuple[torch.dtype, torch.device]:
    for p in module.parameters():
        return p.dtype, p.device
    return torch.float32, torch.device("cpu")
