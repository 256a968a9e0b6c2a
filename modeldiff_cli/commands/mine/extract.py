"""Per-model extraction: a forward pass giving the hidden rows of the analysed positions, and a readout
that turns such rows into float32 logits (model output head, logit lens, or patchscope).

Splitting the two lets the command (a) apply lm_head only to analysed rows (never to padding) and
(b) keep only the base model's rows in two-pass mode, recomputing its logits later from them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ...core.data import Batch
from ...core.hooks import StopForward, capture_layers, stop_after
from ...core.models import LoadedModel

EXTRACTIONS = ("logits", "logit-lens", "patchscope")


@dataclass
class Extractor:
    """``hidden(batch) -> [n, d]`` rows at the batch's analysed positions; ``read(rows) -> [n, vocab]`` float32."""

    kind: str
    hidden: Callable[[Batch], Tensor]
    read: Callable[[Tensor], Tensor]


def head_readout(loaded: LoadedModel) -> Callable[[Tensor], Tensor]:
    """The model's own output head on final (already normed) hidden states: lm_head (+ logit soft-capping)."""
    head, cap = loaded.adapter.lm_head, loaded.adapter.logit_softcap

    def read(rows: Tensor) -> Tensor:
        w = head.weight
        logits = head(rows.to(device=w.device, dtype=w.dtype))
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits.float()

    return read


def detached_readout(loaded: LoadedModel, kind: str) -> Callable[[Tensor], Tensor]:
    """A readout that survives freeing the model (two-pass mode): copies of the final norm / lm_head only."""
    adapter = copy.copy(loaded.adapter)
    adapter.lm_head = copy.deepcopy(loaded.adapter.lm_head)
    adapter.final_norm = copy.deepcopy(loaded.adapter.final_norm)
    if kind == "logits":
        return head_readout(LoadedModel(loaded.source, None, None, adapter, loaded.device, loaded.dtype))
    return lambda rows: adapter.readout(rows.to(device=adapter.lm_head.weight.device, dtype=loaded.dtype)).float()


def _body(loaded: LoadedModel):
    """The decoder stack without the output head (``model.model`` for Llama, ``model.transformer`` for GPT-2)."""
    return loaded.model.base_model


def final_hidden(loaded: LoadedModel, batch: Batch) -> Tensor:
    """Final hidden states (after the final norm) at the analysed positions: ``[n, d]``."""
    out = _body(loaded)(input_ids=batch.input_ids.to(loaded.device),
                        attention_mask=batch.attention_mask.to(loaded.device), use_cache=False)
    return out.last_hidden_state[batch.position_mask.to(out.last_hidden_state.device)]


def layer_hidden(loaded: LoadedModel, batch: Batch, layer: int) -> Tensor:
    """Residual stream after decoder layer ``layer`` at the analysed positions (later layers are skipped)."""
    with capture_layers(loaded.adapter.layers, [layer]) as store, stop_after(loaded.adapter.layers, layer):
        try:
            _body(loaded)(input_ids=batch.input_ids.to(loaded.device),
                          attention_mask=batch.attention_mask.to(loaded.device), use_cache=False)
        except StopForward:
            pass
    h = store[layer]
    return h[batch.position_mask.to(h.device)]


def make_extractor(
    loaded: LoadedModel, kind: str, layer: int | None = None, *,
    patchscope_prompt: str | None = None, patchscope_layer: str | None = None, chunk_size: int = 256,
) -> Extractor:
    if kind == "logits":
        return Extractor(kind, lambda b: final_hidden(loaded, b), head_readout(loaded))
    hidden = lambda b: layer_hidden(loaded, b, layer)  # noqa: E731
    if kind == "logit-lens":
        adapter = loaded.adapter
        return Extractor(kind, hidden, lambda rows: adapter.readout(rows).float())
    from ...core import patchscope

    kwargs = {"prompt": patchscope_prompt} if patchscope_prompt else {}

    def read(rows: Tensor) -> Tensor:
        return patchscope.patchscope_logits(
            loaded, rows, target_layer=patchscope_layer, source_layer=layer, chunk_size=chunk_size, **kwargs
        )

    return Extractor(kind, hidden, read)
