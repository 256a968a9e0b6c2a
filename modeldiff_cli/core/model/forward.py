"""The one forward-and-capture path: a batch through a model, with what each command needs recorded.

``forward(loaded, ids, mask, layers=[...], final=True, routers=True, logits="last")`` runs one forward pass and
returns a :class:`Capture` with the residual stream after each requested decoder layer, the final-normed hidden
state, the raw output of every MoE router, and the logits when asked. Without logits the decoder body runs
alone (no lm_head at all); ``logits="last"`` passes ``logits_to_keep=1`` when the model's forward takes it
(detected from its signature). When only layers up to ``k`` are needed the pass stops after layer ``k``.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .arch import forward_accepts
from .hooks import StopForward, capture_layers, capture_modules, stop_after


@dataclass
class Capture:
    layers: dict[int, Tensor] = field(default_factory=dict)  # layer -> [B, T, d] residual after that layer
    final: Tensor | None = None  # [B, T, d] after the final norm
    logits: Tensor | None = None  # [B, T or 1, V] in the model's dtype
    routers: dict[int, list] = field(default_factory=dict)  # MoE layer -> router outputs, one per call


def forward(
    loaded,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    layers: list[int] | tuple[int, ...] = (),
    final: bool = False,
    routers: bool = False,
    logits: str | None = None,
    grad: bool = False,
    **model_kwargs,
) -> Capture:
    """One forward of ``loaded`` (a :class:`core.model.loading.LoadedModel`, or a bare model) on a batch; see above.

    ``logits``: None (no head), ``"last"`` (last position only, where the model allows) or ``"all"``.
    ``grad`` keeps the autograd graph (captured tensors are not detached).
    """
    if not hasattr(loaded, "adapter"):  # a bare transformers model (e.g. while an organism is built)
        from .arch import adapter_for

        model, adapter = loaded, adapter_for(loaded)
        device = adapter.embed.weight.device
    else:
        model, adapter, device = loaded.model, loaded.adapter, loaded.device
    input_ids = input_ids.to(device)
    if attention_mask is not None:
        attention_mask = attention_mask.to(device)
    layers = sorted(set(int(i) for i in layers))
    early_stop = logits is None and not final and not routers and layers and layers[-1] < adapter.n_layers - 1
    cap = Capture()
    with ExitStack() as stack:
        if not grad:
            stack.enter_context(torch.no_grad())
        store = stack.enter_context(capture_layers(adapter.layers, layers, detach=not grad)) if layers else {}
        finals = stack.enter_context(capture_modules({"final": adapter.final_norm})) if final else {}
        if routers and adapter.routers:
            cap.routers = stack.enter_context(capture_modules(adapter.routers))
        if early_stop:
            stack.enter_context(stop_after(adapter.layers, layers[-1]))
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, **model_kwargs}
        if forward_accepts(model, "use_cache") and "use_cache" not in model_kwargs:
            kwargs["use_cache"] = False
        try:
            if logits is None:
                model.base_model(**kwargs)
            else:
                if logits == "last" and forward_accepts(model, "logits_to_keep"):
                    kwargs["logits_to_keep"] = 1
                cap.logits = model(**kwargs).logits
        except StopForward:
            pass
        cap.layers = dict(store)
        if final:
            out = finals["final"]
            cap.final = out[-1] if out else None
    return cap


def hidden_rows(h: Tensor, mask: Tensor) -> Tensor:
    """Rows ``[n, d]`` of a ``[B, T, d]`` state at a boolean ``[B, T]`` mask."""
    return h[mask.to(h.device)]
