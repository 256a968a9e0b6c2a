"""Routing statistics vs a bare forward pass on a Qwen3-MoE-shaped random model (64 experts, top-8, ~200M
parameters, asserted), and peak memory at 64 vs 512 samples (each in its own process).

    .venv/bin/python benchmarks/routing_overhead.py            # ratio + memory (a few minutes on 2 cores)
    .venv/bin/python benchmarks/routing_overhead.py --device cuda --dtype bfloat16 --shape qwen3-moe-212m
    .venv/bin/python benchmarks/routing_overhead.py --memory 512  # one memory measurement (used internally)

Both sides of a base-vs-ft run are the same model here (two forwards per batch either way): the bare pass is
``core.model.forward`` without hooks, the routing pass is the command's own ``collect`` (router hooks, reading,
cross-check, every accumulator, bootstrap replicates). Goal: ratio <= 1.15, peak memory flat in the samples.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import DTYPES, resolve_device, sync  # noqa: E402

CONFIG = dict(vocab_size=4096, hidden_size=512, intermediate_size=1024, moe_intermediate_size=256, num_hidden_layers=8,
              num_attention_heads=8, num_key_value_heads=4, head_dim=64, num_experts=64, num_experts_per_tok=8,
              decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=True, max_position_embeddings=256,
              tie_word_embeddings=False)
N_PARAMS = 212_084_224
# --shape: the Qwen3-MoE shape above, or a tiny one for dry runs (same expert layout, 2 layers, 16 experts)
SHAPES = {"qwen3-moe-212m": (CONFIG, N_PARAMS),
          "tiny": ({**CONFIG, "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32,
                    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                    "num_experts": 16, "num_experts_per_tok": 4}, 289_152)}  # counted by hand
SEQ, BATCH = 32, 16


def build(shape: str = "qwen3-moe-212m", device: str = "cpu", dtype: str = "float32"):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config, expected = SHAPES[shape]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model("qwen3_moe", **config)).eval()
    n = sum(p.numel() for p in model.parameters())
    assert n == expected, f"parameter count {n} != {expected}"
    return model.to(device=device, dtype=getattr(torch, dtype))


def inputs(n_samples: int, vocab: int = CONFIG["vocab_size"]):
    import torch

    from modeldiff_cli.commands.routing.inputs import Inputs, batches_of
    from modeldiff_cli.core.data.datasets import Dataset, Sample

    g = torch.Generator().manual_seed(1)
    samples = [Sample(i, torch.randint(3, vocab, (SEQ,), generator=g).tolist(), [True] * SEQ)
               for i in range(n_samples)]
    data = Dataset("bench", "<bench>", samples, "bench")
    batches = batches_of(data, BATCH, 0, 8)
    return Inputs("models", ["all", "last", "first8"], batches, batches, True, (n_samples, n_samples), ("b", "b"))


def command():
    return SimpleNamespace(top_k=None, bootstrap=200, run=SimpleNamespace(seed=0), sides=("base", "ft"), checkpoint_every=0,
                           sweep=None)


def loaded(model):
    from modeldiff_cli.core.model.arch import adapter_for

    adapter = adapter_for(model)
    return SimpleNamespace(model=model, adapter=adapter, device=adapter.embed.weight.device)


def timings(model, n_samples: int, repeats: int = 3) -> tuple[float, float]:
    import torch

    from modeldiff_cli.commands.routing.collect import collect
    from modeldiff_cli.commands.routing.inputs import Models
    from modeldiff_cli.core.model.forward import forward

    m = loaded(model)
    inp = inputs(n_samples, model.config.vocab_size)
    models = Models(m, m, None)

    def bare():
        for batch in inp.a:
            for _ in range(2):
                forward(m, batch.ids, batch.attn)
        sync(m.device)

    def routing():
        collect(models, inp, command())
        sync(m.device)

    bare()  # warm-up
    best = {}
    for name, fn in (("bare", bare), ("routing", routing)) * repeats:
        t = time.perf_counter()
        with torch.no_grad():
            fn()
        best[name] = min(best.get(name, float("inf")), time.perf_counter() - t)
    return best["bare"], best["routing"]


def memory(n_samples: int, args) -> float:
    """Peak RSS (MiB) of one routing collect over ``n_samples`` samples."""
    from modeldiff_cli.commands.routing.collect import collect
    from modeldiff_cli.commands.routing.inputs import Models

    model = build(args.shape, args.device, args.dtype)
    m = loaded(model)
    collect(Models(m, m, None), inputs(n_samples, model.config.vocab_size), command())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory", type=int)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--dtype", default="float32", choices=DTYPES)
    parser.add_argument("--shape", default="qwen3-moe-212m", choices=list(SHAPES))
    args = parser.parse_args()
    resolve_device(args.device)
    if args.memory:
        print(f"{memory(args.memory, args):.1f}")
        return
    import torch

    model = build(args.shape, args.device, args.dtype)
    cfg, n_params = SHAPES[args.shape]
    print(f"model: qwen3_moe ({args.shape}), {n_params / 1e6:.1f}M parameters, {cfg['num_hidden_layers']} MoE layers x "
          f"{cfg['num_experts']} experts, top-{cfg['num_experts_per_tok']}; {args.dtype} on {args.device}; "
          f"{args.samples} samples x {SEQ} tokens, batch {BATCH}, {torch.get_num_threads()} threads")
    bare, routed = timings(model, args.samples)
    print(f"bare forward (2 per batch): {bare:.2f} s; routing statistics: {routed:.2f} s; ratio {routed / bare:.3f}x "
          f"(goal <= 1.15x)")
    del model
    peaks = {}
    for n in (64, 512):
        out = subprocess.run([sys.executable, __file__, "--memory", str(n), "--shape", args.shape, "--device",
                              args.device, "--dtype", args.dtype], capture_output=True, text=True, check=True)
        peaks[n] = float(out.stdout.strip().splitlines()[-1])
    print(f"peak RSS: {peaks[64]:.0f} MiB at 64 samples, {peaks[512]:.0f} MiB at 512 samples "
          f"({peaks[512] - peaks[64]:+.0f} MiB)")


if __name__ == "__main__":
    main()
