"""Routing statistics vs a bare forward pass on a Qwen3-MoE-shaped random model (64 experts, top-8, ~200M
parameters, asserted), and peak memory at 64 vs 512 samples (each in its own process).

    .venv/bin/python benchmarks/routing_overhead.py            # ratio + memory (a few minutes on 2 cores)
    .venv/bin/python benchmarks/routing_overhead.py --memory 512  # one memory measurement (used internally)

Both sides of a base-vs-ft run are the same model here (two forwards per batch either way): the bare pass is
``core.forward`` without hooks, the routing pass is the command's own ``collect`` (router hooks, reading,
cross-check, every accumulator, bootstrap replicates). Goal: ratio <= 1.15, peak memory flat in the samples.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from types import SimpleNamespace

CONFIG = dict(vocab_size=4096, hidden_size=512, intermediate_size=1024, moe_intermediate_size=256, num_hidden_layers=8,
              num_attention_heads=8, num_key_value_heads=4, head_dim=64, num_experts=64, num_experts_per_tok=8,
              decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=True, max_position_embeddings=256,
              tie_word_embeddings=False)
N_PARAMS = 212_084_224
SEQ, BATCH = 32, 16


def build():
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model("qwen3_moe", **CONFIG)).eval()
    n = sum(p.numel() for p in model.parameters())
    assert n == N_PARAMS, f"parameter count {n} != {N_PARAMS}"
    return model


def inputs(n_samples: int):
    import torch

    from modeldiff_cli.commands.routing.inputs import Inputs, batches_of
    from modeldiff_cli.core.data import Dataset, Sample

    g = torch.Generator().manual_seed(1)
    samples = [Sample(i, torch.randint(3, CONFIG["vocab_size"], (SEQ,), generator=g).tolist(), [True] * SEQ)
               for i in range(n_samples)]
    data = Dataset("bench", "<bench>", samples, "bench")
    batches = batches_of(data, BATCH, 0, 8)
    return Inputs("models", ["all", "last", "first8"], batches, batches, True, (n_samples, n_samples), ("b", "b"))


def command():
    return SimpleNamespace(top_k=None, bootstrap=200, run=SimpleNamespace(seed=0), sides=("base", "ft"))


def loaded(model):
    from modeldiff_cli.core.arch import adapter_for

    adapter = adapter_for(model)
    return SimpleNamespace(model=model, adapter=adapter, device=adapter.embed.weight.device)


def timings(model, n_samples: int, repeats: int = 3) -> tuple[float, float]:
    import torch

    from modeldiff_cli.commands.routing.collect import collect
    from modeldiff_cli.commands.routing.inputs import Models
    from modeldiff_cli.core.forward import forward

    m = loaded(model)
    inp = inputs(n_samples)
    models = Models(m, m, None)

    def bare():
        for batch in inp.a:
            for _ in range(2):
                forward(m, batch.ids, batch.attn)

    def routing():
        collect(models, inp, command())

    bare()  # warm-up
    best = {}
    for name, fn in (("bare", bare), ("routing", routing)) * repeats:
        t = time.perf_counter()
        with torch.no_grad():
            fn()
        best[name] = min(best.get(name, float("inf")), time.perf_counter() - t)
    return best["bare"], best["routing"]


def memory(n_samples: int) -> float:
    """Peak RSS (MiB) of one routing collect over ``n_samples`` samples."""
    from modeldiff_cli.commands.routing.collect import collect
    from modeldiff_cli.commands.routing.inputs import Models

    m = loaded(build())
    collect(Models(m, m, None), inputs(n_samples), command())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory", type=int)
    parser.add_argument("--samples", type=int, default=64)
    args = parser.parse_args()
    if args.memory:
        print(f"{memory(args.memory):.1f}")
        return
    import torch

    model = build()
    print(f"model: qwen3_moe, {N_PARAMS / 1e6:.1f}M parameters, {CONFIG['num_hidden_layers']} MoE layers x "
          f"{CONFIG['num_experts']} experts, top-{CONFIG['num_experts_per_tok']}; {args.samples} samples x {SEQ} tokens, "
          f"batch {BATCH}, {torch.get_num_threads()} threads")
    bare, routed = timings(model, args.samples)
    print(f"bare forward (2 per batch): {bare:.2f} s; routing statistics: {routed:.2f} s; ratio {routed / bare:.3f}x "
          f"(goal <= 1.15x)")
    del model
    peaks = {}
    for n in (64, 512):
        out = subprocess.run([sys.executable, __file__, "--memory", str(n)], capture_output=True, text=True, check=True)
        peaks[n] = float(out.stdout.strip().splitlines()[-1])
    print(f"peak RSS: {peaks[64]:.0f} MiB at 64 samples, {peaks[512]:.0f} MiB at 512 samples "
          f"({peaks[512] - peaks[64]:+.0f} MiB)")


if __name__ == "__main__":
    main()
