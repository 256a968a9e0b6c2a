"""tokenlens speed ceiling: how fast could ANY exact per-target gradient engine be on this machine?

Same model, prompts and generation as ``tokenlens_speed.py``. In one run it measures:

* inseq 0.7 (batch 1) end to end, once per method (the denominator of the issue's ratios);
* the native engine's parts: batched greedy generation, the attribution forward and the batched backwards
  (``torch.autograd.grad`` calls), medians of ``--repeats``;
* the machine's float32 GEMM rate on exactly the input-gradient GEMMs of one backward (every ``nn.Linear`` of
  every layer, ``[rows, out] @ [out, in]``), and how much of the native backward those GEMMs alone take.

Then the ceiling: any engine that takes target ``t``'s gradient exactly (float32) must back-propagate through its
prefix, ``sum_r sum_t (P_r + t)`` positions per interpolation point, each costing at least the layers' GEMMs;
the generation is needed by both sides. Ceiling time = generation + floor positions x GEMM FLOP per position /
measured GEMM rate, i.e. no padding, no wasted positions, no forward, no attention or elementwise cost, and
GEMMs at the measured rate; ceiling ratio = inseq time / ceiling time. Optimistic by construction.

``--device``, ``--dtype``, ``--shape`` and the workload options are those of ``tokenlens_speed.py`` (on CUDA the
device is synchronised around every timed call and the GEMMs run there, in the model's dtype; no CUDA call is
made otherwise).

    .venv/bin/python benchmarks/tokenlens_ceiling.py                        # saliency and IG (8 steps), ~4 min
    .venv/bin/python benchmarks/tokenlens_ceiling.py --methods saliency     # ~1.5 min
    .venv/bin/python benchmarks/tokenlens_ceiling.py --shape tiny --repeats 1   # dry run, seconds
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tokenlens_speed as speed  # noqa: E402  (also puts the project and tests/ on sys.path)

from modeldiff_cli.commands.tokenlens import engine  # noqa: E402
from modeldiff_cli.commands.tokenlens.generate import greedy  # noqa: E402


def layer_linears(model) -> tuple[list[nn.Linear], int]:
    layers = model.model.layers
    return [m for m in layers[0].modules() if isinstance(m, nn.Linear)], len(layers)


def gemm_rate(model, rows: int, repeats: int = 3) -> tuple[float, float]:
    """(seconds, FLOP) of the input-gradient GEMMs of one backward over ``rows`` positions, best of ``repeats``."""
    linears, n_layers = layer_linears(model)
    w0 = linears[0].weight
    device = str(w0.device)
    ops = [(torch.randn(rows, m.out_features, device=w0.device, dtype=w0.dtype), m.weight.detach()) for m in linears]
    flop = n_layers * sum(2 * rows * w.shape[0] * w.shape[1] for _, w in ops)

    def run() -> None:
        for _ in range(n_layers):
            for g, w in ops:
                g @ w

    run()
    best = float("inf")
    for _ in range(repeats):
        speed.sync(device)
        t0 = time.perf_counter()
        run()
        speed.sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, flop


class Timed:
    """Accumulates the wall time of ``model.forward`` and ``torch.autograd.grad`` calls while active."""

    def __init__(self, model):
        self.model, self.fwd, self.bwd, self.bwd_rows, self.calls = model, 0.0, 0.0, 0, 0
        self.device = str(model.get_input_embeddings().weight.device)

    def __enter__(self):
        self._grad, self._forward = torch.autograd.grad, self.model.forward
        sync = speed.sync

        def grad(outputs, inputs, grad_outputs=None, **kw):
            sync(self.device)
            t0 = time.perf_counter()
            out = self._grad(outputs, inputs, grad_outputs, **kw)
            sync(self.device)
            self.bwd += time.perf_counter() - t0
            self.calls += 1
            self.bwd_rows += grad_outputs.shape[0] * sum(x.shape[0] * x.shape[1] for x in inputs)
            return out

        def forward(*a, **kw):
            sync(self.device)
            t0 = time.perf_counter()
            out = self._forward(*a, **kw)
            sync(self.device)
            self.fwd += time.perf_counter() - t0
            return out

        torch.autograd.grad, self.model.forward = grad, forward
        return self

    def __exit__(self, *exc):
        torch.autograd.grad = self._grad
        del self.model.forward  # back to the class's forward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    speed.add_model_options(ap)
    ap.add_argument("--methods", default="saliency,integrated_gradients")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    a.device = speed.resolve_device(a.device)
    model, tok, n_params = speed.build_model(a.shape, a.device, a.dtype)
    prompts = (speed.PROMPTS * (a.prompts // len(speed.PROMPTS) + 1))[: a.prompts]
    new_tokens, chunk = a.new_tokens, a.chunk or engine.CHUNK
    print(speed.describe(a, n_params, tok), flush=True)
    speed.run_native(model, tok, prompts[:1], "saliency", 2, a.ig_steps, 1)  # warm-up

    gen = []
    for _ in range(a.repeats):
        speed.sync(a.device)
        t0 = time.perf_counter()
        seqs = greedy(model, tok, [tok(p)["input_ids"] for p in prompts], new_tokens, a.batch_size)
        gen.append(time.perf_counter() - t0)
    t_gen = statistics.median(gen)
    useful = sum(s.prompt_len + t for s in seqs for t in range(s.n_targets))  # exact prefix of every target
    linears, n_layers = layer_linears(model)
    flop_per_pos = 2 * n_layers * sum(m.weight.numel() for m in linears)
    print(f"generation (batched greedy): {t_gen:.2f} s (median of {a.repeats}); floor: {useful} backward positions "
          f"per interpolation point, {flop_per_pos / 1e9:.3f} GFLOP of GEMMs each", flush=True)

    for method in a.methods.split(","):
        steps = a.ig_steps if method == "integrated_gradients" else 1
        _, t_inseq, _ = speed.run_inseq(model, tok, prompts, method, new_tokens, a.ig_steps)
        fwd, bwd, tot, rows, calls = [], [], [], 0, 1
        for _ in range(a.repeats):
            with Timed(model) as tm:
                t0 = time.perf_counter()
                engine.attribute(model, tok, seqs, method, n_steps=a.ig_steps, batch_size=a.batch_size, chunk=chunk)
                tot.append(time.perf_counter() - t0)
            fwd.append(tm.fwd)
            bwd.append(tm.bwd)
            rows, calls = tm.bwd_rows, tm.calls
        t_fwd, t_bwd, t_att = (statistics.median(x) for x in (fwd, bwd, tot))
        g_s, g_flop = gemm_rate(model, rows // calls, a.repeats)  # at the mean rows of one batched backward
        rate = g_flop / g_s
        gemm_bwd = rows * flop_per_pos / rate
        ceiling = t_gen + steps * useful * flop_per_pos / rate
        now = t_gen + t_att
        print(f"{method}: inseq {t_inseq:.1f} s | native {now:.2f} s = generation {t_gen:.2f} + forward {t_fwd:.2f} "
              f"+ backward {t_bwd:.2f} + other {t_att - t_fwd - t_bwd:.2f} -> {t_inseq / now:.2f}x", flush=True)
        print(f"  backward rows (cotangents x rows x positions): {rows} = {rows / (steps * useful):.2f}x the floor; "
              f"GEMM rate {rate / 1e9:.0f} GFLOP/s; those GEMMs alone {gemm_bwd:.2f} s = "
              f"{100 * gemm_bwd / t_bwd:.0f}% of the measured backward", flush=True)
        print(f"  CEILING {ceiling:.2f} s (generation + {steps} x {useful} positions at the GEMM rate) -> at most "
              f"{t_inseq / ceiling:.2f}x inseq; the native engine reaches {100 * ceiling / now:.0f}% of it", flush=True)


if __name__ == "__main__":
    main()
