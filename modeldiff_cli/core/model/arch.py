"""Architecture adapter: where each supported family keeps its decoder layers, final norm, lm_head,
input embeddings and MoE routers, and how a layer selector (``0.75``, ``12``, ``-1``) maps to an index."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import UserError

# model_type -> (family, path to decoder layers, final norm, embeddings)
_LLAMA_LIKE = ("model.layers", "model.norm", "model.embed_tokens")
FAMILIES: dict[str, tuple[str, tuple[str, str, str]]] = {
    "gpt2": ("gpt2", ("transformer.h", "transformer.ln_f", "transformer.wte")),
    "llama": ("llama", _LLAMA_LIKE),
    "mistral": ("mistral", _LLAMA_LIKE),
    "qwen2": ("qwen2", _LLAMA_LIKE),
    "qwen3": ("qwen3", _LLAMA_LIKE),
    "olmo2": ("olmo2", _LLAMA_LIKE),
    "gemma": ("gemma", _LLAMA_LIKE),
    "gemma2": ("gemma", _LLAMA_LIKE),
    "gemma3_text": ("gemma", _LLAMA_LIKE),
    "qwen2_moe": ("moe", _LLAMA_LIKE),
    "qwen3_moe": ("moe", _LLAMA_LIKE),
    "olmoe": ("moe", _LLAMA_LIKE),
    "mixtral": ("moe", _LLAMA_LIKE),
    "deepseek_v2": ("moe", _LLAMA_LIKE),
    "deepseek_v3": ("moe", _LLAMA_LIKE),
    "gpt_oss": ("moe", _LLAMA_LIKE),
    "qwen3_next": ("moe", _LLAMA_LIKE),
    "phimoe": ("moe", _LLAMA_LIKE),
    "granitemoe": ("moe", _LLAMA_LIKE),
    "granitemoeshared": ("moe", _LLAMA_LIKE),
    "glm4_moe": ("moe", _LLAMA_LIKE),
    "minimax": ("moe", _LLAMA_LIKE),
    "flex_olmo": ("moe", _LLAMA_LIKE),
    "ernie4_5_moe": ("moe", _LLAMA_LIKE),
}
# Router (gate) module of a decoder layer, first match wins: transformers 5 uses mlp.gate (Qwen, OLMoE, Mixtral,
# DeepSeek, GLM, MiniMax, ...), mlp.router (GPT-OSS, PhiMoE) or block_sparse_moe.router (GraniteMoE);
# transformers 4 Mixtral used block_sparse_moe.gate. Dense layers between MoE layers match none.
_ROUTER_PATHS = ("mlp.gate", "mlp.router", "block_sparse_moe.router", "block_sparse_moe.gate")


def supported_architectures() -> list[str]:
    return sorted(FAMILIES)


def _get(root: nn.Module, path: str) -> nn.Module:
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class ArchAdapter:
    """Handles to the parts of a causal LM that readouts, hooks and routing need."""

    model_type: str
    family: str
    layers: nn.ModuleList
    final_norm: nn.Module
    lm_head: nn.Module
    embed: nn.Module
    routers: dict[int, nn.Module] = field(default_factory=dict)
    logit_softcap: float | None = None

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def head(self, normed: torch.Tensor) -> torch.Tensor:
        """lm_head (and the family's logit soft-capping) on final-normed states, in the model's dtype."""
        head_weight = self.lm_head.weight
        logits = self.lm_head(normed.to(device=head_weight.device, dtype=head_weight.dtype))
        if self.logit_softcap:
            logits = torch.tanh(logits / self.logit_softcap) * self.logit_softcap
        return logits

    def readout(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm then :meth:`head`, in the model's dtype."""
        return self.head(self.final_norm(hidden))


def resolve_layer(selector: str | int | float, n_layers: int, flag: str = "--layer") -> int:
    text = str(selector).strip()
    try:
        if isinstance(selector, float) or "." in text:
            frac = float(text)
            if not 0.0 <= frac <= 1.0:
                raise UserError(f"{flag} {text}: relative depth must lie in [0, 1] (model has {n_layers} layers)")
            return int(round(frac * (n_layers - 1)))
        idx = int(text)
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected a layer index (e.g. 12, -1) or a relative depth (e.g. 0.75)") from None
    if not -n_layers <= idx < n_layers:
        raise UserError(f"{flag} {idx} is out of range: the model has {n_layers} layers (0..{n_layers - 1}, or -1 for the last)")
    return idx % n_layers


def resolve_layers(spec: str | None, n_layers: int, flag: str = "--layers") -> list[int]:
    """``None``/``all`` -> every layer; otherwise a comma list of selectors and ``a:b`` ranges (end exclusive)."""
    if spec is None or str(spec).strip().lower() in ("", "all"):
        return list(range(n_layers))
    out: list[int] = []
    for part in str(spec).split(","):
        part = part.strip()
        if ":" in part:
            lo, hi = part.split(":", 1)
            a = resolve_layer(lo or "0", n_layers, flag)
            b = n_layers if hi.strip() in ("", str(n_layers)) else resolve_layer(hi, n_layers, flag)
            out.extend(range(a, b))
        elif part:
            out.append(resolve_layer(part, n_layers, flag))
    if not out:
        raise UserError(f"{flag} {spec!r} selects no layer")
    return sorted(set(out))


def adapter_for(model: nn.Module) -> ArchAdapter:
    """Build the adapter for a transformers causal LM; unknown architecture -> UserError listing the known ones."""
    config = model.config
    model_type = getattr(config, "model_type", type(model).__name__)
    if model_type not in FAMILIES:
        raise UserError(
            f"unsupported architecture {model_type!r} ({type(model).__name__}); supported: "
            + ", ".join(supported_architectures())
        )
    family, (layers_path, norm_path, embed_path) = FAMILIES[model_type]
    layers = _get(model, layers_path)
    routers: dict[int, nn.Module] = {}
    for i, layer in enumerate(layers):
        for path in _ROUTER_PATHS:
            try:
                gate = _get(layer, path)
            except AttributeError:
                continue
            if isinstance(gate, nn.Module) and not isinstance(gate, nn.ModuleList):
                routers[i] = gate
                break
    lm_head = model.get_output_embeddings()
    return ArchAdapter(
        model_type=model_type,
        family=family,
        layers=layers,
        final_norm=_get(model, norm_path),
        lm_head=lm_head,
        embed=_get(model, embed_path),
        routers=routers,
        logit_softcap=getattr(config, "final_logit_softcapping", None),
    )


def forward_accepts(model: nn.Module, name: str) -> bool:
    """Whether ``model.forward`` takes the keyword ``name`` (e.g. ``logits_to_keep``, ``position_ids``)."""
    import inspect

    return name in inspect.signature(model.forward).parameters


def cache_kwarg(model: nn.Module) -> str:
    """Keyword of the key/value cache: ``cache`` in transformers >= 5.x (``past_key_values`` deprecated there)."""
    return "cache" if forward_accepts(model, "cache") else "past_key_values"


def router_logits(output) -> torch.Tensor:
    """The router logits ``[tokens, experts]`` from a gate module's forward output (tensor or tuple)."""
    return output[0] if isinstance(output, tuple) else output
