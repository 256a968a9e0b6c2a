"""Model shapes, dtypes and device options shared by the benchmarks (random weights built from a config).

``--shape``: ``tiny`` (dry runs), ``smollm-135m`` (SmolLM-135M's shape), ``llama-0.4b`` (hidden 896, 24 layers,
14 heads / 2 KV heads, intermediate 4864, vocabulary 49152: 401.99M parameters). Parameter counts are computed by
hand and asserted, so a misspelt config key cannot go unnoticed. ``--device`` / ``--dtype`` as the CLI's; no CUDA
call is made unless the device is CUDA.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Llama config keys by shape (tied embeddings); vocab_size None: the caller's tokenizer decides
SHAPES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, vocab_size=2048),
    "smollm-135m": dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                        intermediate_size=1536, vocab_size=49152),
    "llama-0.4b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                       intermediate_size=4864, vocab_size=49152),
}
DTYPES = ("float32", "bfloat16", "float16")


def llama_parameters(shape: dict, vocab: int) -> int:
    """Parameters of a tied-embedding Llama of this shape, counted by hand."""
    h, i, layers = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    kv = h // shape["num_attention_heads"] * shape["num_key_value_heads"]
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * i + 2 * h
    return layers * per_layer + vocab * h + h


def add_device_options(ap: argparse.ArgumentParser, shape: str = "smollm-135m", dtype: str = "float32",
                       shapes: dict | None = None) -> None:
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    ap.add_argument("--dtype", default=dtype, choices=DTYPES)
    ap.add_argument("--shape", default=shape, choices=list(shapes or SHAPES))


def resolve_device(spec: str) -> str:
    """The CLI's device check: CUDA asked for on a machine without it is one line and exit 2."""
    from modeldiff_cli.core.errors import UserError
    from modeldiff_cli.core.model.loading import resolve_device as resolve

    try:
        return str(resolve(spec))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def sync(device) -> None:
    """Wait for queued kernels (CUDA only), so that a host clock measures the work."""
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


def llama(shape: str, seed: int = 0, vocab: int | None = None, dtype: str = "float32", device: str = "cpu",
          max_positions: int = 2048, **config):
    """A random Llama of ``shape`` (``vocab`` overrides the shape's vocabulary), eval mode, no grads, on
    ``device`` in ``dtype``; its parameter count is asserted."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    keys = dict(SHAPES[shape])
    vocab = vocab or keys.pop("vocab_size")
    keys.pop("vocab_size", None)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, **keys, max_position_embeddings=max_positions,
                                         tie_word_embeddings=True, **config)).eval().requires_grad_(False)
    n = sum(p.numel() for p in model.parameters())
    assert n == llama_parameters(SHAPES[shape], vocab), (shape, n)
    return model.to(device=device, dtype=getattr(torch, dtype))


def loaded(model, label: str = "bench"):
    """A bare model as ``core.model.loading.LoadedModel`` (what the command pipelines take)."""
    from modeldiff_cli.core.model.arch import adapter_for
    from modeldiff_cli.core.model.loading import LoadedModel, ModelSource

    p = next(model.parameters())
    return LoadedModel(ModelSource(label, label, True, label), model, None, adapter_for(model), p.device, p.dtype)
