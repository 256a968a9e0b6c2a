"""`mine` overhead vs two bare forward passes, peak memory vs samples, and NMF time.

Usage: .venv/bin/python benchmarks/mine_overhead.py [--device cpu] [--dtype float32] [--shape smollm-135m] [--samples 64] [--tokens 128] [--batch-size 8] [--repeats 3] [--chunk-size N]
       [--memory-tokens 128] [--skip-memory] [--skip-nmf] [--skip-overhead] [--nmf-small 300] [--nmf-dense 2000]
       [--nmf-coo 100000] [--nmf-iters 5]

Pair: a random Llama pair of ``--shape`` (benchmarks/shapes.py; default SmolLM-135M's: vocab 49152, hidden 576,
30 layers, 9 heads, 3 KV heads, intermediate 1536; ``llama-0.4b`` for the 0.4B shape), two seeds, on ``--device`` in
``--dtype``. The NMF timings run on ``--device`` too. Ratio = median mine-loop time (core.model.forward + core.model.readout extractors,
readout chunks of --chunk-size rows, default the shared 256) / median time of both models' plain forward (full
logits) over the same batches, after a warm-up, in one process, the two alternating within each repeat. Memory: ru_maxrss of a fresh
subprocess per sample count at the same batch size (orderings top-k-occurring,fraction-positive-diff).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import SHAPES, add_device_options, llama, loaded, resolve_device, sync  # noqa: E402


def build_pair(a):
    return [loaded(llama(a.shape, seed, dtype=a.dtype, device=a.device)) for seed in (0, 1)]


def vocab(a) -> int:
    return SHAPES[a.shape]["vocab_size"]


def batches(samples: int, tokens: int, batch_size: int, vocab: int = 49152):
    import torch

    from modeldiff_cli.core.data.datasets import Sample, iter_batches

    g = torch.Generator().manual_seed(0)
    ss = [Sample(i, torch.randint(3, vocab, (tokens,), generator=g).tolist(), [True] * tokens) for i in range(samples)]
    return list(iter_batches(ss, batch_size, 0))


def mine_loop(base, ft, bs, chunk_size=None, vocab=49152):
    """The streaming loop of `mine` as the command runs it: core.model.forward + core.model.readout extractors, the shared
    --chunk-size default (Readout's)."""
    from modeldiff_cli.commands.mine.accumulate import accumulate
    from modeldiff_cli.commands.mine.extract import make_extractor
    from modeldiff_cli.core.spine.ingredients import Readout

    chunk = chunk_size or Readout().chunk_size  # None: auto (core.model.readout.chunk_rows)
    acc = accumulate(bs, make_extractor(base, "logits"), make_extractor(ft, "logits"), vocab=vocab, top_k=100,
                     n_samples=len(bs) * bs[0].input_ids.shape[0], max_len=bs[0].input_ids.shape[1], chunk_size=chunk)
    sync(base.device)
    return acc


def bare(base, ft, bs):
    import torch

    with torch.inference_mode():
        for b in bs:
            ids, mask = b.input_ids.to(base.device), b.attention_mask.to(base.device)
            _ = base.model(input_ids=ids, attention_mask=mask).logits
            _ = ft.model(input_ids=ids, attention_mask=mask).logits
    sync(base.device)


def timed(fns, repeats):
    """Median seconds of each function; the functions alternate within each repeat, so a change of machine
    load mid-benchmark hits both sides alike."""
    ts: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, ts):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return [(statistics.median(x), x) for x in ts]


def overhead(a):
    base, ft = build_pair(a)
    bs = batches(a.samples, a.tokens, a.batch_size, vocab(a))
    bare(base, ft, bs[:1])  # warm-up
    mine_loop(base, ft, bs[:1], a.chunk_size, vocab(a))
    (t_bare, all_bare), (t_mine, all_mine) = timed([lambda: bare(base, ft, bs),
                                                    lambda: mine_loop(base, ft, bs, a.chunk_size, vocab(a))], a.repeats)
    print(f"overhead: {a.shape} pair, {a.dtype}, {a.device}, {a.samples} samples x {a.tokens} tokens, batch {a.batch_size}: two bare forwards {t_bare:.2f} s "
          f"(runs {[round(x, 2) for x in all_bare]}), mine {t_mine:.2f} s (runs {[round(x, 2) for x in all_mine]}); "
          f"chunk {a.chunk_size or 'default'}; ratio mine / bare = {t_mine / t_bare:.3f}")


def memory_child(a):
    base, ft = build_pair(a)
    mine_loop(base, ft, batches(a.child, a.memory_tokens, a.batch_size, vocab(a)), vocab=vocab(a))
    print(json.dumps({"maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def memory(a):
    """Peak memory of a fresh process per sample count: host RSS (ru_maxrss); on CUDA the device's allocations
    are not in it (the GPU figure is the stage table's cuda_max_allocated_mb of a mine run)."""
    res = {}
    for n in (64, 512):
        p = subprocess.run([sys.executable, __file__, "--child", str(n), "--memory-tokens", str(a.memory_tokens),
                            "--batch-size", str(a.batch_size), "--device", a.device, "--dtype", a.dtype,
                            "--shape", a.shape], capture_output=True, text=True, check=True)
        res[n] = json.loads(p.stdout.strip().splitlines()[-1])["maxrss_mib"]
    print(f"memory: peak RSS 64 samples {res[64]:.0f} MiB, 512 samples {res[512]:.0f} MiB (x {a.memory_tokens} tokens, "
          f"batch {a.batch_size}): growth {100 * (res[512] / res[64] - 1):+.1f}%")


def _zipf_records(n: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    probs = 1 / torch.arange(1, 49153).double() ** 1.1
    ids = torch.multinomial(probs, n * 100, replacement=True, generator=g).view(n, 100).int()
    return ids, torch.rand(n, 100, generator=g)


def nmf_bench(a):
    """100k x K=100 with the backend `auto` picks (sparse); torchnmf vs sparse from the same initialisation at a
    size inside auto's dense budget; per-iteration cost of torchnmf's dense fit near 5e7 floats and of torchnmf's
    own sparse-COO path, against the sparse backend on the same matrices."""
    import torch

    from modeldiff_cli.commands.mine.nmf import DENSE_BUDGET, choose_backend, fit_topics, sparse_matrix

    dev = torch.device(a.device)
    ids, vals = (t.to(dev) for t in _zipf_records(100_000))
    for beta in (2.0, 1.0):
        t, c = time.perf_counter(), time.process_time()
        m, tok = sparse_matrix(ids, vals, None, "binary")
        topics = fit_topics(m, tok, topics=5, beta=beta, orthogonal=0.0, seed=0, max_iter=100)
        print(f"nmf: 100000 positions x K=100 ({m._nnz()} entries, {tok.numel()} tokens), beta {beta:g}, 5 topics, "
              f"auto -> {topics.backend}: {time.perf_counter() - t:.1f} s wall, {time.process_time() - c:.1f} s CPU "
              f"({topics.iterations} iterations, matrix build included)")
    # both backends, full fits, inside auto's budget
    m, tok = sparse_matrix(*(t.to(dev) for t in _zipf_records(a.nmf_small)), None, "binary")
    fits = {}
    for backend in ("torchnmf", "sparse"):
        t = time.perf_counter()
        fits[backend] = fit_topics(m, tok, topics=5, beta=2.0, orthogonal=0.0, seed=0, max_iter=100, backend=backend)
        fits[backend].seconds = time.perf_counter() - t
    tn, sp = fits["torchnmf"], fits["sparse"]
    print(f"nmf backends: {a.nmf_small} x {tok.numel()} ({a.nmf_small * tok.numel() / 1e6:.1f}M dense floats, budget "
          f"{DENSE_BUDGET / 1e6:g}M, auto -> {choose_backend('auto', tuple(m.shape), 0.0)}), beta 2, 5 topics: torchnmf "
          f"{tn.seconds:.2f} s ({tn.iterations} it), sparse {sp.seconds:.2f} s ({sp.iterations} it); "
          f"max |W_torchnmf - W_sparse| = {float((tn.weights - sp.weights).abs().max()):.1e}")
    # per-iteration costs, fixed iteration count
    it = a.nmf_iters
    for n, backends in ((a.nmf_dense, ("torchnmf", "sparse")), (a.nmf_coo, ("torchnmf-sparse", "sparse"))):
        m, tok = sparse_matrix(*(t.to(dev) for t in _zipf_records(n)), None, "binary")
        per = {}
        for backend in backends:
            t = time.perf_counter()
            if backend == "torchnmf-sparse":
                from torchnmf.nmf import NMF

                model = NMF(W=torch.rand(m.shape[1], 5, device=dev), H=torch.rand(m.shape[0], 5, device=dev))
                model.fit(m, beta=2.0, tol=float("-inf"), max_iter=it)
            else:
                fit_topics(m, tok, topics=5, beta=2.0, orthogonal=0.0, seed=0, max_iter=it, tol=float("-inf"), backend=backend)
            per[backend] = (time.perf_counter() - t) / it
        print(f"nmf per iteration ({it} iterations, beta 2, 5 topics): {n} positions x K=100 ({m._nnz()} entries, "
              f"{tok.numel()} tokens, {n * tok.numel() / 1e6:.1f}M dense floats): "
              + ", ".join(f"{b} {s:.3f} s" for b, s in per.items()) + f"; ratio {per[backends[0]] / per['sparse']:.0f}x")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    add_device_options(ap)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunk-size", type=int, default=None, help="rows per readout chunk (default: --chunk-size's)")
    ap.add_argument("--memory-tokens", type=int, default=128)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-nmf", action="store_true")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--nmf-small", type=int, default=300, help="positions of the torchnmf-vs-sparse full fits")
    ap.add_argument("--nmf-dense", type=int, default=2000, help="positions of the dense torchnmf per-iteration timing")
    ap.add_argument("--nmf-coo", type=int, default=100000, help="positions of the torchnmf sparse-path timing")
    ap.add_argument("--nmf-iters", type=int, default=5, help="iterations of the per-iteration timings (setup included)")
    ap.add_argument("--child", type=int)
    a = ap.parse_args()
    resolve_device(a.device)
    if a.child:
        memory_child(a)
        sys.exit()
    if not a.skip_overhead:
        overhead(a)
    if not a.skip_memory:
        memory(a)
    if not a.skip_nmf:
        nmf_bench(a)
