"""Peak memory of `modeldiff lens` readouts vs the number of positions (same --chunk-size).

A random Llama pair of ``--shape`` (benchmarks/shapes.py; default SmolLM-135M's: vocab 49152, 30 layers, hidden
576, 9 heads, 3 KV heads, intermediate 1536; ``llama-0.4b`` for the 0.4B shape; parameter count asserted), on
``--device`` in ``--dtype``, runs the lens accumulation over every layer of both models on
one sequence of N positions. Each setting runs in a fresh subprocess and reports its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), next to a subprocess that only builds the models.
Materialising the lens naively would need ``layers x positions x vocab`` floats per model; the chunked
readout must stay far below that, and its growth from 512 to 2048 positions must be small.

    .venv/bin/python benchmarks/readout_memory.py [--chunk-size 256] [--positions 512 2048] [--device cpu] [--dtype float32] [--shape smollm-135m]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import SHAPES, add_device_options, llama, loaded, resolve_device  # noqa: E402


def build(seed: int, a):
    model = llama(a.shape, seed, dtype=a.dtype, device=a.device, rms_norm_eps=1e-5)
    return loaded(model, f"random-{seed}"), sum(p.numel() for p in model.parameters())


def child(positions: int, chunk: int, a) -> dict:
    import types

    import torch

    from modeldiff_cli.commands.lens.command import Lens
    from modeldiff_cli.commands.lens.pipeline import accumulate
    from modeldiff_cli.core.data.datasets import Dataset, Sample
    from modeldiff_cli.core.model.loading import ModelPair, PairReport
    from modeldiff_cli.core.spine.ingredients import Data, Readout

    torch.set_grad_enabled(False)
    device, shape = a.device, SHAPES[a.shape]
    base, n_params = build(0, a)
    ft, _ = build(1, a)
    pair = ModelPair(base, ft, PairReport([], [], "identical", shape["vocab_size"]))
    pair.base.tokenizer = types.SimpleNamespace(pad_token_id=0)
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    if positions:
        ids = torch.randint(0, shape["vocab_size"], (positions,), generator=torch.Generator().manual_seed(0)).tolist()
        data = Dataset("bench", Path("bench"), [Sample(0, ids, [True] * positions)], "bench")
        cmd = Lens(data=Data(data=("bench",), batch_size=1), readout=Readout(readout="logit-lens", chunk_size=chunk))
        acc = accumulate(pair, data, list(range(shape["num_hidden_layers"])), cmd)
        assert int(acc.count[0]) == positions
    out = {"positions": positions, "chunk_size": chunk, "params": n_params, "seconds": time.perf_counter() - t0,
           "rss_after_load_mb": rss_loaded, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--positions", type=int, nargs="+", default=[512, 2048])
    add_device_options(ap)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    resolve_device(args.device)
    shape = SHAPES[args.shape]
    if args.child is not None:
        print(json.dumps(child(args.child, args.chunk_size, args)))
        return
    rows = []
    for n in [0, *args.positions]:
        cmd = [sys.executable, __file__, "--child", str(n), "--chunk-size", str(args.chunk_size), "--device", args.device,
               "--dtype", args.dtype, "--shape", args.shape]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        naive = 2 * shape["num_hidden_layers"] * n * shape["vocab_size"] * 4 / 2**20
        print(f"positions {n:5d}  chunk {args.chunk_size}  peak RSS {r['peak_rss_mb']:8.1f} MiB  "
              f"(models only {r['rss_after_load_mb']:.1f})  time {r['seconds']:6.1f} s  "
              f"naive 2 x layers x positions x vocab float32 = {naive:9.1f} MiB"
              + (f"  cuda peak {r['cuda_peak_mb']:.1f} MiB" if "cuda_peak_mb" in r else ""), flush=True)
    base = rows[0]["peak_rss_mb"]
    first, last = rows[1], rows[-1]
    growth = last["peak_rss_mb"] - first["peak_rss_mb"]
    naive_growth = 2 * shape["num_hidden_layers"] * (last["positions"] - first["positions"]) * shape["vocab_size"] * 4 / 2**20
    print(f"params per model: {rows[0]['params']:,}")
    print(f"peak above models-only: {first['positions']} positions {first['peak_rss_mb'] - base:.1f} MiB, "
          f"{last['positions']} positions {last['peak_rss_mb'] - base:.1f} MiB")
    print(f"growth {first['positions']} -> {last['positions']} positions: {growth:.1f} MiB "
          f"(naive materialisation would grow by {naive_growth:.1f} MiB; ratio {growth / naive_growth:.4f})")


if __name__ == "__main__":
    main()
