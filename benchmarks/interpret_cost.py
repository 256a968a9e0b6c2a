"""Cost of `interpret` on CPU: extraction tokens/s and peak memory at 1k vs 10k prompts (a random SmolLM-shaped
pair, short prompts; each size in its own process, so peak RSS is that size's), and crosscoder training on 100k
paired vectors at d = 576 (SmolLM-135M's width; the crosscoder sees the 1152-wide concatenation) with the
command's defaults, on synthetic activations with a known sparse structure (shared, ft-only and base-only atoms),
so the explained variance and the recovery of the ft-only atoms say whether the fast settings still learn.

    .venv/bin/python benchmarks/interpret_cost.py [--prompts 1000 10000] [--vectors 100000] [--threads 2]
        [--steps 0 --batch 0 --latents 0 --k 0 --lr 0]   (0: the command's default)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch


def smol_pair(layers: int = 4):
    from transformers import LlamaConfig, LlamaForCausalLM

    from modeldiff_cli.core.model.arch import adapter_for

    cfg = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=layers, num_attention_heads=9,
                      num_key_value_heads=3, vocab_size=49152, max_position_embeddings=256)
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = LlamaForCausalLM(cfg).eval()
        out.append(type("L", (), {"model": m, "adapter": adapter_for(m), "device": torch.device("cpu")})())
    return out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def extraction(n_prompts: int, length: int = 16, batch: int = 32, max_vectors: int = 20000) -> dict:
    """The two streaming passes of the command: difference means (extract) and the paired sample (collect)."""
    from types import SimpleNamespace

    from modeldiff_cli.commands.interpret.activations import collect, extract
    from modeldiff_cli.commands.interpret.categories import Category
    from modeldiff_cli.core.data.datasets import Sample

    base, ft = smol_pair()
    gen = torch.Generator().manual_seed(0)
    cats = [Category(c, [Sample(i, torch.randint(3, 49152, (length,), generator=gen).tolist(), [True] * length)
                         for i in range(n_prompts // 2)]) for c in ("a", "b")]
    pair = SimpleNamespace(base=base, ft=ft, tokenizer=SimpleNamespace(pad_token_id=0))
    loaded_mb = _rss_mb()
    t = time.perf_counter()
    stats = extract(pair, cats, list(range(4)), 8, batch)
    s = time.perf_counter() - t
    after_means = _rss_mb()
    t = time.perf_counter()
    samples = collect(pair, cats, [2], max_vectors, batch, 0)
    s2 = time.perf_counter() - t
    sample_mb = sum(x.base.numel() + x.ft.numel() for x in samples.values()) * 4 / 2**20
    return {"prompts": n_prompts, "tokens": stats.tokens, "tokens_per_s": round(stats.tokens / s),
            "means_seconds": round(s, 1), "sample_seconds": round(s2, 1), "rss_loaded_mb": round(loaded_mb),
            "peak_rss_means_mb": round(after_means), "peak_rss_mb": round(_rss_mb()),
            "sample_vectors": int(next(iter(samples.values())).base.shape[0]), "sample_mb": round(sample_mb, 1)}


def synthetic(n: int, d: int = 576, atoms: int = 1024, active: int = 16, special: int = 32, seed: int = 0):
    """Paired activations with a known sparse structure: ``atoms`` unit atoms with power-law frequencies, each
    vector a sum of ``active`` of them with exponential coefficients, plus a mean and noise (SNR ~ 20). The ft
    half uses slightly rotated atoms; ``special`` atoms are ft-only (zero in base) and as many base-only."""
    g = torch.Generator().manual_seed(seed)
    nrm = torch.nn.functional.normalize
    Db = nrm(torch.randn(atoms, d, generator=g), dim=-1)
    Df = nrm(Db + 0.2 * torch.randn(atoms, d, generator=g) / d**0.5, dim=-1)
    perm = torch.randperm(atoms, generator=g)
    ft_only, base_only = perm[:special], perm[special : 2 * special]
    Db[ft_only] = 0
    Df[base_only] = 0
    p = 1.0 / (torch.arange(atoms, dtype=torch.float64) + 30) ** 0.6
    p = p[torch.argsort(torch.randperm(atoms, generator=g))].float()
    idx = torch.cat([torch.multinomial(p.expand(min(8192, n - s), -1), active, generator=g)
                     for s in range(0, n, 8192)])
    coef = -torch.log(torch.rand(n, active, generator=g).clamp_min(1e-9))
    mb = torch.randn(d, generator=g) * 0.5
    mf = mb + torch.randn(d, generator=g) * 0.1
    emb = torch.nn.functional.embedding_bag
    base = emb(idx, Db, per_sample_weights=coef, mode="sum") + mb + 0.05 * torch.randn(n, d, generator=g)
    ft = emb(idx, Df, per_sample_weights=coef, mode="sum") + mf + 0.05 * torch.randn(n, d, generator=g)
    return base, ft, Df[ft_only]


def training(n: int, d: int, steps: int, batch: int, latents: int, k: int, lr: float) -> dict:
    from modeldiff_cli.commands.interpret import crosscoder as xc
    from modeldiff_cli.commands.interpret.activations import Sample
    from modeldiff_cli.commands.interpret.command import Interpret

    defaults = {f: Interpret.__dataclass_fields__[f].default for f in ("crosscoder_batch", "k", "lr", "norm_penalty")}
    b, f, ft_atoms = synthetic(n, d)
    z = torch.zeros(n, dtype=torch.long)
    d2 = 2 * d
    s = Sample(0, b, f, z, z, z, z, rms=(float(b.pow(2).mean().sqrt()), float(f.pow(2).mean().sqrt())))
    batch = batch or defaults["crosscoder_batch"]
    latents = latents or xc.default_latents(d2)
    steps = steps or xc.default_steps(n, batch)
    k, lr = k or defaults["k"], lr or defaults["lr"]
    before = _rss_mb()
    t, cpu = time.perf_counter(), time.process_time()
    cc = xc.train(s, latents=latents, k=k, steps=steps, batch=batch, lr=lr, seed=0, label="benchmark",
                  exclusive=defaults["norm_penalty"])
    total, cpu = time.perf_counter() - t, time.process_time() - cpu
    t = time.perf_counter()
    ls = xc.latent_stats(cc, s, 1)
    stats_s = time.perf_counter() - t
    # recovery of the planted ft-only atoms: an ft-only latent (share < 0.1) whose ft half has cos > 0.9 with it
    ft_half = torch.nn.functional.normalize(cc.decoders()[1], dim=-1)
    cos = torch.nn.functional.normalize(ft_atoms, dim=-1) @ ft_half.T
    only = ls["share"] < xc.FT_ONLY
    recovered = float(((cos > 0.9) & only.unsqueeze(0)).any(1).float().mean())
    return {"vectors": n, "d": d, "concat": d2, "latents": latents, "k": k, "steps": steps, "batch": batch, "lr": lr,
            "epochs": round(steps * batch / n, 2), "library": cc.library, "train_loop_s": round(cc.seconds, 1),
            "train_total_s": round(total, 1),
            "train_cpu_s": round(cpu, 1), "latent_stats_s": round(stats_s, 1),
            "explained_variance": round(cc.explained_variance, 3), "ft_only_atoms_recovered": round(recovered, 3),
            "peak_rss_mb": round(_rss_mb()), "rss_before_mb": round(before)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--vectors", type=int, default=100000)
    ap.add_argument("--d", type=int, default=576)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--latents", type=int, default=0)
    ap.add_argument("--k", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.0)
    ap.add_argument("--one-extraction", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the crosscoder's trainer keeps this thread count
    torch.set_num_threads(args.threads)
    if args.one_extraction:
        print(json.dumps(extraction(args.one_extraction)))
        return
    print(json.dumps({"load_average": os.getloadavg(), "threads": args.threads}))
    for n in args.prompts:  # a fresh process per size: ru_maxrss is that size's peak
        res = subprocess.run([sys.executable, __file__, "--one-extraction", str(n), "--threads", str(args.threads)],
                             capture_output=True, text=True, check=True)
        print(res.stdout.strip().splitlines()[-1], flush=True)
    if args.vectors:
        print(json.dumps(training(args.vectors, args.d, args.steps, args.batch, args.latents, args.k, args.lr)),
              flush=True)
    print(json.dumps({"load_average": os.getloadavg()}))


if __name__ == "__main__":
    main()
