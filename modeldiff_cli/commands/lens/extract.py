"""Hidden states of every analysed layer at the selected positions, and the readouts that turn them into
log-probabilities (logit lens or patchscope), chunk by chunk."""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from ...core.data import Batch
from ...core.hooks import capture_layers
from ...core.models import LoadedModel
from ...core.readout import readout

# (layer index, hidden states [n, d]) -> float32 logits [n, vocab]
Reader = Callable[[int, Tensor], Tensor]


def last_position_mask(mask: Bool[Tensor, "b t"]) -> Bool[Tensor, "b t"]:
    """Keep only the last True position of each row."""
    csum = mask.long().cumsum(-1)
    return mask & (csum == csum[:, -1:])


def layer_states(
    loaded: LoadedModel, batch: Batch, layers: list[int]
) -> dict[int, Float[Tensor, "n d"]]:
    """One forward; the output of each layer in ``layers`` (and the last) at ``batch.position_mask`` rows."""
    wanted = sorted(set(layers) | {loaded.adapter.n_layers - 1})
    batch = batch.to(loaded.device)
    with torch.no_grad(), capture_layers(loaded.adapter.layers, wanted) as store:
        _forward(loaded.model, batch.input_ids, batch.attention_mask)
    mask = batch.position_mask
    return {i: store[i][mask] for i in wanted}


def _forward(model, input_ids: Tensor, attention_mask: Tensor) -> None:
    """Forward pass that skips the full ``[batch, seq, vocab]`` logits where the model allows it."""
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=1, use_cache=False)
    except TypeError:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)


def logit_lens_reader(loaded: LoadedModel) -> Reader:
    """Logit lens: final norm then lm_head applied to the layer's hidden state."""
    return lambda _layer, h: readout(loaded.adapter, h)


def patchscope_reader(loaded: LoadedModel, prompt: str | None, target_layer: str | None, chunk_size: int) -> Reader:
    """Patchscope: each hidden state patched into an identity prompt at ``target_layer`` (default: the layer it
    comes from), one decode step reusing the prompt's key/value cache (``core.patchscope``)."""
    from ...core import patchscope

    kwargs: dict = {"chunk_size": chunk_size}
    if prompt is not None:
        kwargs["prompt"] = prompt
    if target_layer is not None:
        kwargs["target_layer"] = target_layer

    def read(layer: int, h: Tensor) -> Tensor:
        return patchscope.patchscope_logits(loaded, h, source_layer=layer, **kwargs).float()

    return read


def log_probs(logits: Float[Tensor, "n V"], vocab: int) -> Float[Tensor, "n v"]:
    """float32 log-softmax over the first ``vocab`` ids (the ids both models share)."""
    return torch.log_softmax(logits[..., :vocab].float(), dim=-1)
