"""Capture and patch hidden states at decoder layers, and capture any module's output (e.g. MoE routers).

A decoder layer's output is the residual stream after that layer (before the final norm), whatever the
family returns (a tensor in transformers 5, a tuple whose first item is the hidden state in 4.x).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn


def _hidden(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace_hidden(output, new: torch.Tensor):
    if isinstance(output, tuple):
        return (new, *output[1:])
    return new


@contextmanager
def capture_layers(
    layers: nn.ModuleList, indices: list[int], detach: bool = True
) -> Iterator[dict[int, torch.Tensor]]:
    """Record the output hidden state ``[batch, seq, hidden]`` of each chosen layer on every forward.

    The dict is filled in place by each forward (the latest forward wins). ``detach=False`` keeps the graph,
    for gradients with respect to hidden states.
    """
    store: dict[int, torch.Tensor] = {}
    handles = []

    def make(i: int):
        def hook(_module, _inputs, output):
            h = _hidden(output)
            store[i] = h.detach() if detach else h

        return hook

    try:
        for i in indices:
            handles.append(layers[i].register_forward_hook(make(i)))
        yield store
    finally:
        for h in handles:
            h.remove()


PatchFn = Callable[[torch.Tensor], torch.Tensor]


@contextmanager
def patch_layers(layers: nn.ModuleList, patches: Mapping[int, torch.Tensor | PatchFn]) -> Iterator[None]:
    """Replace the output hidden state of chosen layers.

    A patch is either a tensor (broadcastable to the layer output) or a function ``h -> new_h``.
    """
    handles = []

    def make(patch):
        def hook(_module, _inputs, output):
            h = _hidden(output)
            new = patch(h) if callable(patch) else patch.to(dtype=h.dtype, device=h.device).expand_as(h)
            return _replace_hidden(output, new)

        return hook

    try:
        for i, patch in patches.items():
            handles.append(layers[i].register_forward_hook(make(patch)))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def capture_modules(
    modules: Mapping[object, nn.Module], transform: Callable | None = None
) -> Iterator[dict[object, list]]:
    """Record each module's (optionally transformed) output on every forward, appended in call order."""
    store: dict[object, list] = {key: [] for key in modules}
    handles = []

    def make(key):
        def hook(_module, _inputs, output):
            value = transform(output) if transform else output
            store[key].append(value.detach() if isinstance(value, torch.Tensor) else value)

        return hook

    try:
        for key, module in modules.items():
            handles.append(module.register_forward_hook(make(key)))
        yield store
    finally:
        for h in handles:
            h.remove()


class StopForward(Exception):
    """Raised by :func:`stop_after` to end a forward pass once the needed layer has run."""


@contextmanager
def stop_after(layers: nn.ModuleList, index: int) -> Iterator[None]:
    """Abort the forward right after layer ``index`` (wrap the call in ``try/except StopForward``)."""

    def hook(_module, _inputs, _output):
        raise StopForward

    handle = layers[index].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
