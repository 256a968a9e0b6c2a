"""Per-model extraction: the hidden rows of a batch's analysed positions (``core.model.forward``) and a reader that
turns such rows into float32 logits (``core.model.readout``: the model's head, the logit lens, or patchscope).

Splitting the two lets the command (a) apply lm_head only to analysed rows (never to padding) and
(b) keep only the base model's rows in two-pass mode, recomputing its logits later from them.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from ...core.data.datasets import Batch
from ...core.model.forward import forward, hidden_rows
from ...core.model.loading import LoadedModel
from ...core.model.readout import head, make_reader, readout


@dataclass
class Extractor:
    """``hidden(batch) -> [n, d]`` rows at the batch's analysed positions; ``read(rows) -> [n, vocab]`` float32."""

    kind: str
    hidden: Callable[[Batch], Tensor]
    read: Callable[[Tensor], Tensor]


def make_extractor(
    loaded: LoadedModel, kind: str, layer: int | None = None, *,
    patchscope_prompt: str | None = None, patchscope_layer: str | None = None, chunk_size: int | None = None,
) -> Extractor:
    """``logits``: final-normed states read by the output head; ``logit-lens`` / ``patchscope``: the residual
    stream after ``layer`` (the forward stops after it) read through ``core.model.readout.make_reader``."""
    reader = make_reader(loaded, kind, chunk_size=chunk_size, patchscope_prompt=patchscope_prompt,
                         patchscope_layer=patchscope_layer)
    if kind == "logits":
        last = loaded.adapter.n_layers - 1

        def final(batch: Batch) -> Tensor:
            cap = forward(loaded, batch.input_ids, batch.attention_mask, final=True)
            return hidden_rows(cap.final, batch.position_mask)

        return Extractor(kind, final, lambda rows: reader(last, rows))
    if layer is None:
        raise ValueError(f"readout {kind!r} needs a layer")

    def at_layer(batch: Batch) -> Tensor:
        cap = forward(loaded, batch.input_ids, batch.attention_mask, layers=[layer])
        return hidden_rows(cap.layers[layer], batch.position_mask)

    return Extractor(kind, at_layer, lambda rows: reader(layer, rows))


def detached(extractor: Extractor, loaded: LoadedModel) -> Extractor:
    """Two-pass mode: a reader that survives freeing the model — copies of its final norm and lm_head, read
    through ``core.model.readout`` (``head`` for logits, ``readout`` for the logit lens). It has no forward."""
    adapter = dataclasses.replace(
        loaded.adapter, layers=nn.ModuleList(), embed=nn.Identity(), routers={},
        lm_head=copy.deepcopy(loaded.adapter.lm_head), final_norm=copy.deepcopy(loaded.adapter.final_norm),
    )
    if extractor.kind == "logits":
        read = lambda rows: head(adapter, rows)  # noqa: E731
    elif extractor.kind == "logit-lens":
        read = lambda rows: readout(adapter, rows)  # noqa: E731
    else:
        raise ValueError(f"readout {extractor.kind!r} cannot be detached from its model")

    def no_forward(_batch: Batch) -> Tensor:
        raise RuntimeError("a detached readout has no forward (its model was freed)")

    return Extractor(extractor.kind, no_forward, read)
