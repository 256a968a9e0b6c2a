"""Mixture-of-experts routers: find them, read what they decided, and mask experts out of the computation.

Shared by ``modeldiff routing`` and the organism builder (``organisms/measure.py``).

- :func:`router_specs` — one :class:`RouterSpec` per MoE layer (dense layers between MoE layers have none),
  found through the architecture adapter (``core.model.arch``); a model without routers is a one-line ``UserError``
  naming its architecture and the supported MoE families.
- :func:`read_router` — one captured router output (``core.model.forward.forward(..., routers=True)`` records them in
  ``Capture.routers``) -> :class:`Routing`: the full router distribution, the selected experts and their
  weights renormalised over the top k. The output may be a tensor or a tuple with the logits at ``[0]``
  (transformers 5: ``(logits [T, E], top weights [T, k], top indices [T, k])``); rows that are already
  probabilities are detected and not softmaxed twice; where the router returns its own selected indices they
  are cross-checked against the top k recomputed from the logits (a mismatch is an error naming the layer).
- :func:`mask_experts` — a context manager on the router hooks that keeps chosen experts out of every top-k
  selection at every position (``keep-topk``, ``replace-topk``, ``deactivate``), and counts any masked expert
  that still reaches the experts (must stay 0).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..errors import UserError
from .arch import FAMILIES, router_logits

MASK_MODES = ("keep-topk", "replace-topk", "deactivate")
PROB_ATOL = 1e-3  # a row is "already probabilities" when non-negative and summing to 1 within this


def moe_families() -> list[str]:
    """The model types whose routers ``core.model.arch`` finds (family ``moe``)."""
    return sorted(t for t, (family, _) in FAMILIES.items() if family == "moe")


@dataclass(frozen=True)
class RouterSpec:
    """How one MoE layer's router scores and selects experts."""

    layer: int
    module: nn.Module
    n_experts: int
    top_k: int
    scoring: str = "softmax"  # "softmax" (distribution = softmax of the logits) or "sigmoid" (DeepSeek-V3 style)
    n_group: int = 1  # group-limited routing (DeepSeek-V2/V3): experts in n_group groups, topk_group kept
    topk_group: int = 1
    group_score: str = "top2"  # a group's score: sum of its top two (DeepSeek-V3) or its max (V2)

    def bias(self) -> Tensor | None:
        """The selection-only score correction (DeepSeek-V3's ``e_score_correction_bias``), if any."""
        return getattr(self.module, "e_score_correction_bias", None)


@dataclass
class Routing:
    """What one router decided for ``n`` tokens."""

    probs: Tensor  # [n, E] float32 router distribution (rows sum to 1)
    indices: Tensor  # [n, k] selected experts (the model's own where the router returns them)
    weights: Tensor  # [n, k] float32 top-k weights renormalised over the top k (rows sum to 1)
    own_indices: bool = False  # the indices came from the router's output (cross-checked)

    def dense_weights(self) -> Tensor:
        """``[n, E]``: each token's renormalised top-k weight per expert (0 outside its top k)."""
        out = torch.zeros_like(self.probs)
        return out.scatter_(1, self.indices, self.weights)

    def slots(self) -> Tensor:
        """``[n, E]``: 1 where the expert is in the token's top k."""
        out = torch.zeros_like(self.probs)
        return out.scatter_(1, self.indices, 1.0)


def _config_value(config, *names, default=None):
    for cfg in (config, getattr(config, "text_config", None)):
        if cfg is None:
            continue
        for name in names:
            value = getattr(cfg, name, None)
            if value is not None:
                return value
    return default


def top_k_of(config) -> int | None:
    """The model's own experts per token."""
    value = _config_value(config, "num_experts_per_tok", "moe_k", "moe_topk", "top_k")
    return int(value) if value is not None else None


def _n_experts(module: nn.Module, config) -> int:
    for name in ("num_experts", "n_routed_experts", "num_local_experts"):
        value = getattr(module, name, None)
        if isinstance(value, int):
            return value
    weight = getattr(module, "weight", None)
    if isinstance(weight, Tensor) and weight.dim() == 2:
        return int(weight.shape[0])
    value = _config_value(config, "num_experts", "n_routed_experts", "num_local_experts", "moe_num_experts")
    if value is None:
        raise UserError(f"cannot tell how many experts the router {type(module).__name__} has")
    return int(value)


def no_routers_error(adapter) -> UserError:
    return UserError(
        f"{adapter.model_type} has no mixture-of-experts routers (dense architecture); routing needs an MoE model: "
        + ", ".join(moe_families())
    )


def router_specs(loaded) -> dict[int, RouterSpec]:
    """MoE layer index -> :class:`RouterSpec` of a loaded model (``core.model.loading.LoadedModel``) or a bare one."""
    if hasattr(loaded, "adapter"):
        adapter, config = loaded.adapter, loaded.model.config
    else:
        from .arch import adapter_for

        adapter, config = adapter_for(loaded), loaded.config
    if not adapter.routers:
        raise no_routers_error(adapter)
    k_default = top_k_of(config)
    specs: dict[int, RouterSpec] = {}
    for layer, module in sorted(adapter.routers.items()):
        k = getattr(module, "top_k", None) or k_default
        if not isinstance(k, int):
            raise UserError(f"{adapter.model_type}: cannot tell the router's experts per token (layer {layer})")
        sigmoid = getattr(module, "e_score_correction_bias", None) is not None
        method = getattr(module, "topk_method", None)
        grouped = sigmoid or method == "group_limited_greedy"
        specs[layer] = RouterSpec(
            layer=layer, module=module, n_experts=_n_experts(module, config), top_k=int(k),
            scoring="sigmoid" if sigmoid else "softmax",
            n_group=int(getattr(module, "num_group", None) or getattr(module, "n_group", None) or 1) if grouped else 1,
            topk_group=int(getattr(module, "topk_group", None) or 1),
            group_score="max" if method == "group_limited_greedy" else "top2",
        )
    return specs


def is_probability(rows: Tensor, atol: float = PROB_ATOL) -> bool:
    """Rows that are already a distribution: non-negative and each summing to 1."""
    if rows.numel() == 0:
        return False
    rows = rows.float()
    return bool((rows >= 0).all()) and bool(((rows.sum(-1) - 1).abs() <= atol).all())


def distribution(logits: Tensor, spec: RouterSpec) -> Tensor:
    """``[n, E]`` float32 router distribution: the rows themselves when they already are probabilities, else the
    softmax of the logits (sigmoid routers: the sigmoid scores normalised to sum to 1)."""
    x = logits.float()
    if is_probability(x):
        return x
    if spec.scoring == "sigmoid":
        s = x.sigmoid()
        return s / s.sum(-1, keepdim=True).clamp_min(1e-20)
    return x.softmax(-1)


def selection_scores(logits: Tensor, spec: RouterSpec) -> Tensor:
    """The scores the router ranks experts by (probabilities, or sigmoid + correction bias with group limits);
    experts outside the kept groups score ``-inf``."""
    x = logits.float()
    if is_probability(x) or spec.scoring != "sigmoid":
        scores = distribution(x, spec)
    else:
        scores = x.sigmoid()
        bias = spec.bias()
        if bias is not None:
            scores = scores + bias.to(scores.device, torch.float32)
    if spec.n_group > 1 and spec.topk_group < spec.n_group:
        n, E = scores.shape
        grouped = scores.view(n, spec.n_group, E // spec.n_group)
        if spec.group_score == "max":
            group_scores = grouped.max(-1).values
        else:
            group_scores = grouped.topk(min(2, E // spec.n_group), dim=-1).values.sum(-1)
        keep = torch.zeros_like(group_scores).scatter_(1, group_scores.topk(spec.topk_group, dim=-1).indices, 1.0)
        scores = scores.masked_fill(~keep.bool().repeat_interleave(E // spec.n_group, dim=1), float("-inf"))
    return scores


def own_indices(output) -> Tensor | None:
    """The router's own selected experts ``[n, k]`` (``output[2]`` of a transformers 5 router), if it returns them."""
    if isinstance(output, tuple) and len(output) >= 3:
        idx = output[2]
        if isinstance(idx, Tensor) and not idx.is_floating_point() and idx.dim() == 2:
            return idx
    return None


def read_router(output, spec: RouterSpec, check: bool = True) -> Routing:
    """One router output -> :class:`Routing` (see the module docstring). ``check``: cross-check the router's own
    indices against the top k of its logits; a mismatch raises ``UserError`` naming the layer."""
    logits = router_logits(output)
    logits = logits.reshape(-1, logits.shape[-1])
    probs = distribution(logits, spec)
    own = own_indices(output)
    k = spec.top_k if own is None else own.shape[-1]
    scores = selection_scores(logits, spec)
    if own is None:
        indices = scores.topk(k, dim=-1).indices
    else:
        indices = own.reshape(-1, k).to(probs.device).long()
        if check:
            _cross_check(indices, scores, spec)
    picked = probs.gather(1, indices)
    weights = picked / picked.sum(-1, keepdim=True).clamp_min(1e-20)
    return Routing(probs=probs, indices=indices, weights=weights, own_indices=own is not None)


def _cross_check(indices: Tensor, scores: Tensor, spec: RouterSpec, atol: float = 1e-5) -> None:
    """The router's own picks must be a top k of its scores (ties may pick either expert)."""
    k = indices.shape[-1]
    top = scores.topk(k, dim=-1).values
    got = scores.gather(1, indices).sort(-1, descending=True).values
    bad = ~torch.isclose(got, top, atol=atol, rtol=1e-4).all(-1)
    if bool(bad.any()):
        raise UserError(
            f"layer {spec.layer}: the router's own selected experts differ from the top-{k} of its logits on "
            f"{int(bad.sum())} of {len(bad)} tokens (unknown routing rule for {type(spec.module).__name__})"
        )


def capture_routing(cap_routers: Mapping[int, list], specs: Mapping[int, RouterSpec], n_tokens: int,
                    check: bool = True) -> dict[int, Routing]:
    """``Capture.routers`` of one forward -> one :class:`Routing` per MoE layer over its ``n_tokens`` tokens
    (batch x positions, flattened). A router that did not run, or saw another number of tokens, is an error."""
    out: dict[int, Routing] = {}
    for layer, spec in specs.items():
        calls = cap_routers.get(layer) or []
        if not calls:
            raise UserError(f"layer {layer}: the router hook saw no call (the MoE block bypasses {type(spec.module).__name__})")
        parts = [read_router(o, spec, check) for o in calls]
        r = parts[0] if len(parts) == 1 else Routing(
            torch.cat([p.probs for p in parts]), torch.cat([p.indices for p in parts]),
            torch.cat([p.weights for p in parts]), parts[0].own_indices)
        if r.probs.shape[0] != n_tokens:
            raise UserError(f"layer {layer}: the router saw {r.probs.shape[0]} tokens, the batch has {n_tokens}")
        out[layer] = r
    return out


# ---------------------------------------------------------------------------------------------------- masking
@dataclass
class MaskReport:
    """What the mask did during the forwards it was active for."""

    slots: int = 0  # top-k slots seen (tokens x k, summed over layers)
    masked_slots: int = 0  # slots the mask emptied or re-assigned
    violations: int = 0  # masked experts that still reached the experts with a non-zero weight (must be 0)
    calls: dict[int, int] = field(default_factory=dict)  # layer -> router calls seen


def mask_matrix(masks: Mapping[int, list[int]], specs: Mapping[int, RouterSpec]) -> dict[int, Tensor]:
    """Per MoE layer, a boolean ``[E]`` of masked experts; a mask leaving fewer than k experts is an error."""
    out: dict[int, Tensor] = {}
    for layer, experts in masks.items():
        if layer not in specs:
            raise UserError(f"mask: layer {layer} has no router (MoE layers: {', '.join(map(str, specs))})")
        spec = specs[layer]
        m = torch.zeros(spec.n_experts, dtype=torch.bool)
        for e in experts:
            if not 0 <= int(e) < spec.n_experts:
                raise UserError(f"mask: layer {layer} expert {e} is out of range (0..{spec.n_experts - 1})")
            m[int(e)] = True
        left = spec.n_experts - int(m.sum())
        if left < spec.top_k:
            raise UserError(f"mask: layer {layer} keeps {left} experts, fewer than the {spec.top_k} each token uses")
        if m.any():
            out[layer] = m
    return out


def _weight_rule(weights: Tensor, picked: Tensor) -> Tensor | None:
    """The router's top-k weights as ``c * picked`` (a global constant, e.g. un-renormalised softmax) -> c;
    otherwise ``None`` (weights renormalised over the top k, possibly scaled: keep each row's total)."""
    ratio = weights / picked.clamp_min(1e-20)
    c = ratio.median()
    return c if bool(torch.allclose(ratio, c.expand_as(ratio), rtol=1e-3, atol=1e-5)) else None


def _reweight(picked: Tensor, weights: Tensor, rule: Tensor | None) -> Tensor:
    if rule is not None:
        return picked * rule
    total = weights.sum(-1, keepdim=True)
    return picked / picked.sum(-1, keepdim=True).clamp_min(1e-20) * total


def _masked_output(output, spec: RouterSpec, m: Tensor, mode: str, report: MaskReport):
    if not isinstance(output, tuple) or own_indices(output) is None:
        raise UserError(f"layer {spec.layer}: {type(spec.module).__name__} does not return its selected experts; "
                        "masking needs a transformers 5 router ((logits, weights, indices))")
    logits, weights, indices = output[0], output[1], output[2]
    shape = logits.shape
    flat = logits.reshape(-1, shape[-1]).float()
    w = weights.reshape(-1, weights.shape[-1]).float()
    idx = indices.reshape(-1, indices.shape[-1]).long()
    m = m.to(flat.device)
    probs = distribution(flat, spec)
    rule = _weight_rule(w, probs.gather(1, idx))
    hit = m[idx]  # [n, k] selected slot holds a masked expert
    if mode == "keep-topk":  # masked slots dropped, survivors renormalised to the row's original total
        keep = (~hit).float()
        new_w = w * keep
        total = new_w.sum(-1, keepdim=True)
        new_w = torch.where(total > 0, new_w / total.clamp_min(1e-20) * w.sum(-1, keepdim=True), new_w)
        filler = int((~m).nonzero()[0])  # an unmasked expert, weight 0 (contributes nothing)
        new_idx = torch.where(hit, torch.full_like(idx, filler), idx)
        new_logits = flat
    else:
        if mode == "deactivate":  # SteerMoE: score set below the minimum, distribution and top-k re-picked
            low = flat.min(-1, keepdim=True).values - 10.0
            new_logits = torch.where(m, low, flat)
            probs = distribution(new_logits, spec)
            scores = selection_scores(new_logits, spec).masked_fill(m, float("-inf"))
        else:  # replace-topk: the next-best experts take the masked ones' places
            new_logits = flat
            scores = selection_scores(flat, spec).masked_fill(m, float("-inf"))
        new_idx = scores.topk(idx.shape[-1], dim=-1).indices
        new_w = _reweight(probs.gather(1, new_idx), w, rule)
    report.slots += idx.numel()
    report.masked_slots += int(hit.sum())
    report.violations += int((m[new_idx] & (new_w != 0)).sum())
    report.calls[spec.layer] = report.calls.get(spec.layer, 0) + 1
    return (new_logits.to(logits.dtype).reshape(shape), new_w.to(weights.dtype).reshape(weights.shape),
            new_idx.to(indices.dtype).reshape(indices.shape), *output[3:])


@contextmanager
def mask_experts(specs: Mapping[int, RouterSpec], masks: Mapping[int, list[int]], mode: str) -> Iterator[MaskReport]:
    """Keep the ``masks`` experts (MoE layer -> expert indices) out of every token's top k while active.

    Hooks go on the router modules, so they run before any capture hook registered later (``core.model.forward``)
    and the MoE block computes with the masked decision. ``keep-topk``: masked slots dropped, the surviving
    weights renormalised; ``replace-topk``: the next-best experts take their places (weights by the router's
    own rule); ``deactivate``: the masked logits set below the row's minimum, distribution and top k re-picked.
    """
    if mode not in MASK_MODES:
        raise UserError(f"--sweep-mode {mode!r}: expected one of {', '.join(MASK_MODES)}")
    matrix = mask_matrix(masks, specs)
    report = MaskReport()
    handles = []

    def make(spec: RouterSpec, m: Tensor):
        def hook(_module, _inputs, output):
            return _masked_output(output, spec, m, mode, report)

        return hook

    try:
        for layer, m in matrix.items():
            handles.append(specs[layer].module.register_forward_hook(make(specs[layer], m)))
        yield report
    finally:
        for h in handles:
            h.remove()
