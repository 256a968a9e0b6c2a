"""How much work one pass of the native engine may take: budgets from the device.

A pass is one chunked forward over ``rows x positions`` (for integrated gradients the rows are prompts x
interpolation points) and, per chunk of ``c`` targets, one batched backward over ``c x rows x positions``.

* CPU: fixed budgets, tuned on a 2-core machine (larger vmapped backwards ran slower there: cache):
  4096 rows x positions per forward, 8192 targets x rows x positions per batched backward.
* CUDA: as many rows as the free device memory holds (``torch.cuda.mem_get_info`` plus what PyTorch's allocator
  has cached but not used, times a safety factor ``SAFETY``), under a memory model of one pass read from the
  model's config: the activations the forward saves per row and position, the gradients one layer of the
  vmapped backward holds per target, row and position, and the logits of the chunk's read positions. The
  estimate is conservative; if a pass still runs out of memory the engine halves the budget and retries.

No CUDA call is made unless the device is CUDA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

CHUNK = 8  # targets per batched backward (truncation saved vs graph traversals and small matmuls)
TOKEN_BUDGET = 4096  # CPU: rows x positions per forward (bounds saved activations)
VMAP_BUDGET = 8192  # CPU: targets x rows x positions per batched backward (larger ones run slower on CPU: cache)
SAFETY = 0.5  # CUDA: fraction of the free memory a pass may plan to use


@dataclass(frozen=True)
class Footprint:
    """Bytes of one pass per unit, from the model's config (see :func:`footprint`)."""

    saved: int  # forward activations kept for the backward, per row x position (every layer)
    saved_attention: int  # eager attention probabilities kept, per row x position x key position
    backward: int  # one layer's transient gradients (+ the leaf gradients), per target x row x position
    backward_attention: int  # attention-probability gradients, per target x row x position x key position
    logits: int  # logits of a read position (forward, fp32 copies), per row x read position
    vmapped_logits: int  # their vmapped gradients, per target x row x read position

    def pass_bytes(self, rows: int, positions: int, chunk: int) -> float:
        per_row = (positions * (self.saved + positions * self.saved_attention) + chunk * self.logits
                   + chunk * positions * (self.backward + positions * self.backward_attention)
                   + chunk * chunk * self.vmapped_logits)
        return float(rows * per_row)


@dataclass(frozen=True)
class Budgets:
    """Either fixed CPU caps (``tokens``, ``vmap``) or a memory budget (``memory`` bytes, ``footprint``)."""

    tokens: int = TOKEN_BUDGET
    vmap: int = VMAP_BUDGET
    memory: float | None = None
    footprint: Footprint | None = None

    def forward_rows(self, positions: int, chunk: int) -> int:
        """Most rows of ``positions`` tokens one batch may hold (the batch planner's bound)."""
        if self.memory is None:
            return max(1, self.tokens // positions)
        return self.pass_rows(positions, chunk)

    def pass_rows(self, positions: int, chunk: int) -> int:
        """Most rows (prompts x interpolation points) one pass may hold, at least one."""
        if self.memory is None:
            return max(1, min(self.tokens // positions, self.vmap // (positions * chunk)))
        return max(1, int(self.memory // self.footprint.pass_bytes(1, positions, chunk)))

    def halved(self) -> Budgets:
        if self.memory is None:
            return Budgets(max(1, self.tokens // 2), max(1, self.vmap // 2))
        return Budgets(memory=self.memory / 2, footprint=self.footprint)


CPU = Budgets()


def _cfg(config, *names, default=None):
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def footprint(config, element_size: int) -> Footprint:
    """A conservative memory model of one pass for a decoder-only transformer config (Llama, GPT-2, Gemma,
    MoE ...): per layer and position a forward saves ~16 hidden-wide and ~6 MLP-wide tensors (norms, q/k/v,
    rotary, attention output, residuals, gate/up/activation) and the eager attention probabilities (fp32 and
    the model dtype); one layer of the backward holds ~12 hidden-wide and ~6 MLP-wide gradients per target."""
    config = getattr(config, "text_config", None) or config
    h = int(_cfg(config, "hidden_size", "n_embd", "d_model", default=1024))
    layers = int(_cfg(config, "num_hidden_layers", "n_layer", "num_layers", default=24))
    heads = int(_cfg(config, "num_attention_heads", "n_head", default=16))
    vocab = int(_cfg(config, "vocab_size", default=50000))
    mlp = int(_cfg(config, "intermediate_size", "n_inner", default=4 * h) or 4 * h)
    experts_per_token = _cfg(config, "num_experts_per_tok", "moe_topk", default=None)
    moe = _cfg(config, "moe_intermediate_size", default=None)
    if experts_per_token:  # routed experts: each token's activations in its top-k experts (+ a shared expert)
        mlp = int(experts_per_token) * int(moe or mlp) + int(_cfg(config, "shared_expert_intermediate_size", default=0))
    e = element_size
    return Footprint(
        saved=layers * e * (16 * h + 6 * mlp),
        saved_attention=layers * heads * (4 + e),
        backward=e * (12 * h + 6 * mlp) + 3 * 4 * h,  # + the leaves' gradients, their concatenation, fp32 copy
        backward_attention=3 * 4 * heads,
        logits=4 * 4 * vocab,
        vmapped_logits=3 * 4 * vocab,
    )


def free_memory(device) -> int:
    """Bytes a pass may still allocate on a CUDA device: the driver's free memory plus the allocator's cache."""
    free, _total = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def for_model(model) -> Budgets:
    """The budgets for ``model``'s device: CPU caps, or on CUDA ``SAFETY`` x the free memory."""
    weight = model.get_input_embeddings().weight
    if weight.device.type != "cuda":
        return CPU
    return Budgets(memory=SAFETY * free_memory(weight.device), footprint=footprint(model.config, weight.element_size()))


def release_cache(model) -> None:
    """Give the allocator's cached blocks back after a failed pass (CUDA only)."""
    if model.get_input_embeddings().weight.device.type == "cuda":
        torch.cuda.empty_cache()


def split(n: int, most: int) -> list[tuple[int, int]]:
    """``0..n`` cut into the fewest pieces of at most ``most``, their sizes differing by one at most."""
    pieces = math.ceil(n / max(1, most))
    size, extra = divmod(n, pieces)
    bounds = [0]
    for i in range(pieces):
        bounds.append(bounds[-1] + size + (i < extra))
    return list(zip(bounds, bounds[1:]))


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError)
