"""Patchscope readout: read a hidden state by patching it into an identity prompt and decoding one step.

The identity prompt (default ``"man -> man\\n1135 -> 1135\\nhello -> hello\\n?"``) makes the model repeat
whatever token the last position stands for. A hidden state ``h`` (from any layer of any prompt) replaces
the output of decoder layer ``target_layer`` at the placeholder position (the last ``?``); the logits at
that position are the patchscope's reading of ``h``.

Only the placeholder position depends on ``h``, so the prompt prefix's key/value cache is computed once per
(model, prompt) and reused: each chunk of ``N`` states costs one single-token decode step of batch ``N``.
Tokens after the placeholder cannot influence it (causal attention) and are ignored.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ..errors import UserError
from .arch import cache_kwarg, forward_accepts, resolve_layer
from .hooks import patch_layers

DEFAULT_PROMPT = "man -> man\n1135 -> 1135\nhello -> hello\n?"
DEFAULT_PLACEHOLDER = "?"
DEFAULT_CHUNK = 256


@dataclass
class IdentityPrompt:
    """The tokenized identity prompt: prefix ids (cached) and the placeholder token id."""

    prefix_ids: list[int]
    placeholder_id: int


def split_prompt(tokenizer, prompt: str, placeholder: str = DEFAULT_PLACEHOLDER) -> IdentityPrompt:
    """Token ids before the placeholder (its last occurrence) and the placeholder's token id."""
    at = prompt.rfind(placeholder)
    if not placeholder or at < 0:
        raise UserError(f"patchscope prompt {prompt!r} does not contain the placeholder {placeholder!r}")
    enc = tokenizer(prompt, add_special_tokens=True, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    end = at + len(placeholder)
    hits = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > at]
    if not hits:
        raise UserError(f"patchscope prompt {prompt!r}: the placeholder {placeholder!r} maps to no token")
    pos = hits[-1]
    if pos == 0:
        raise UserError(f"patchscope prompt {prompt!r}: the placeholder needs a prefix before it")
    return IdentityPrompt(prefix_ids=list(ids[:pos]), placeholder_id=int(ids[pos]))


def _prefix_cache(loaded, ident: IdentityPrompt):
    """Key/value cache of the prompt prefix (batch 1), computed once per model and prompt."""
    key = ("patchscope_prefix", tuple(ident.prefix_ids))
    cached = loaded.info.get(key)
    if cached is None:
        ids = torch.tensor([ident.prefix_ids], dtype=torch.long, device=loaded.device)
        with torch.inference_mode():
            keep = {"logits_to_keep": 1} if forward_accepts(loaded.model, "logits_to_keep") else {}
            out = loaded.model(input_ids=ids, use_cache=True, **keep)
        cached = out.past_key_values
        loaded.info[key] = cached
    return cached


def patchscope_logits(
    loaded,
    layer_hidden: torch.Tensor,
    prompt: str = DEFAULT_PROMPT,
    target_layer: int | str | None = None,
    placeholder: str = DEFAULT_PLACEHOLDER,
    *,
    source_layer: int | None = None,
    chunk_size: int | None = DEFAULT_CHUNK,
) -> torch.Tensor:
    """float32 logits ``[N, vocab]`` of ``loaded`` (a ``core.model.loading.LoadedModel``) reading ``layer_hidden [N, d]``.

    ``target_layer`` is the decoder layer whose output is replaced at the placeholder position (a selector:
    index, ``-1`` or relative depth). Default: ``source_layer`` (the layer ``layer_hidden`` comes from: the
    same-layer patchscope) when given, else layer 0. States are processed ``chunk_size`` at a time.
    """
    adapter = loaded.adapter
    if target_layer is None:
        target_layer = source_layer if source_layer is not None else 0
    target = resolve_layer(target_layer, adapter.n_layers, "--patchscope-layer")
    ident = split_prompt(loaded.tokenizer, prompt, placeholder)
    prefix = _prefix_cache(loaded, ident)
    flat = layer_hidden.reshape(-1, layer_hidden.shape[-1])
    outs = []
    step = DEFAULT_CHUNK if chunk_size is None else max(1, int(chunk_size))  # prompts x prefix cache: not logits-bound
    with torch.inference_mode():
        for start in range(0, flat.shape[0], step):
            rows = flat[start : start + step].to(device=loaded.device, dtype=loaded.dtype)
            n = rows.shape[0]
            cache = copy.deepcopy(prefix)
            cache.batch_repeat_interleave(n)
            ids = torch.full((n, 1), ident.placeholder_id, dtype=torch.long, device=loaded.device)
            with patch_layers(adapter.layers, {target: lambda h, r=rows: r[:, None, :].to(h.dtype).expand_as(h)}):
                out = loaded.model(input_ids=ids, use_cache=True, **{cache_kwarg(loaded.model): cache})
            outs.append(out.logits[:, -1, :].float())
    if not outs:
        return torch.empty(0, adapter.lm_head.weight.shape[0], dtype=torch.float32)
    return torch.cat(outs)
