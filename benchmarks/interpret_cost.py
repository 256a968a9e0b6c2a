"""Cost of `interpret`: extraction tokens/s and peak memory at 1k vs 10k prompts (a random SmolLM-shaped pair,
short prompts), and crosscoder training on 100k vectors at d = 576 (random data) on 2 threads.

    .venv/bin/python benchmarks/interpret_cost.py [--prompts 1000 10000] [--vectors 100000]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch


def smol_pair(layers: int = 4):
    from transformers import LlamaConfig, LlamaForCausalLM

    from modeldiff_cli.core.arch import adapter_for

    cfg = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=layers, num_attention_heads=9,
                      num_key_value_heads=3, vocab_size=49152, max_position_embeddings=256)
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = LlamaForCausalLM(cfg).eval()
        out.append(type("L", (), {"model": m, "adapter": adapter_for(m), "device": torch.device("cpu")})())
    return out


def extraction(n_prompts: int, length: int = 16, batch: int = 32) -> dict:
    from types import SimpleNamespace

    from modeldiff_cli.commands.interpret.activations import extract
    from modeldiff_cli.commands.interpret.categories import Category
    from modeldiff_cli.core.data import Sample

    base, ft = smol_pair()
    gen = torch.Generator().manual_seed(0)
    cats = [Category(c, [Sample(i, torch.randint(3, 49152, (length,), generator=gen).tolist(), [True] * length)
                         for i in range(n_prompts // 2)]) for c in ("a", "b")]
    pair = SimpleNamespace(base=base, ft=ft, tokenizer=SimpleNamespace(pad_token_id=0))
    t = time.perf_counter()
    stats = extract(pair, cats, list(range(4)), 8, batch)
    s = time.perf_counter() - t
    return {"prompts": n_prompts, "tokens_per_s": stats.tokens / s, "seconds": s,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def training(n: int, d: int = 576, latents: int = 2304, steps: int = 0, library: str = "builtin-topk") -> dict:
    from modeldiff_cli.commands.interpret import crosscoder as xc
    from modeldiff_cli.commands.interpret.activations import Sample

    b = torch.randn(n, d)
    f = b + 0.1 * torch.randn(n, d)
    z = torch.zeros(n, dtype=torch.long)
    s = Sample(0, b, f, z, z, z, z, rms=(1.0, 1.0))
    steps = steps or xc.default_steps(n, 1024)  # the command's default: ~3 epochs
    t = time.perf_counter()
    cc = xc.train(s, latents=latents, k=32, steps=steps, batch=1024, lr=1e-3, seed=0, library=library,
                  exclusive=0.1)
    return {"vectors": n, "d": d, "latents": latents, "steps": steps, "library": cc.library,
            "seconds": time.perf_counter() - t, "explained_variance": cc.explained_variance}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--vectors", type=int, default=100000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=0, help="crosscoder steps (0: the command's default)")
    ap.add_argument("--coder", default="builtin-topk", choices=["builtin-topk", "eai-sparsify"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for n in args.prompts:
        print(extraction(n))
    print(training(args.vectors, steps=args.steps, library=args.coder))


if __name__ == "__main__":
    main()
