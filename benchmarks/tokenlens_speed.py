"""tokenlens speed: native batched gradient engine vs inseq 0.7 (batch_size=1), side by side in one run.

Model: a random Llama built from a config (no hub), of one of these shapes (``--shape``):
  smollm-135m-testvocab  SmolLM-135M's layers (hidden 576, 30 layers, 9 heads, 3 KV heads, intermediate 1536)
                         with the test suite's 320-token vocabulary: 106.4M parameters (the default, as before)
  smollm-135m            the same with SmolLM's 49152-token vocabulary: 134.5M parameters
  llama-0.4b             hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate 4864, vocabulary 49152: 401.9M
  tiny                   hidden 64, 2 layers (dry runs of the script)
The tokenizer is always the test suite's byte-level BPE (320 tokens); a larger model vocabulary leaves the extra
ids unused. Each pipeline starts from prompt text and ends with the attribution matrices of every generated token:
  inseq  : ``model.attribute(prompt, generation_args={max_new_tokens, greedy})`` per prompt (inseq generates);
  native : one batched greedy generation, then ``engine.attribute`` (one forward + one batched backward per batch).
tokens/s = attributed generated tokens / wall time (on CUDA the device is synchronised before each clock read).
Integrated gradients run at the same number of steps in both. The ratio printed is native tok/s / inseq tok/s.

Same work on both sides: inseq decodes the generated ids to text and tokenizes that text again, so a random model's
byte tokens that are not valid UTF-8 on their own (or that merge with their neighbours) would make inseq attribute
a different, longer continuation (48 steps instead of 16 for some prompts). Generation is therefore limited, for
both engines through the model's ``generation_config.suppress_tokens``, to single-character tokens that take part
in no merge, and the benchmark checks that both attribute the same token ids (float32; in half precision, batched
and single-prompt generation may break near-ties differently, so only the token counts must agree).

The machine's speed drifts by +-20% over minutes (shared host), so each pair is run ``--repeats`` times,
alternating inseq and native, and the medians are compared. No CUDA call is made unless ``--device`` is CUDA.

    .venv/bin/python benchmarks/tokenlens_speed.py            # 8 prompts x 16 new tokens, 3 repeats, CPU
    .venv/bin/python benchmarks/tokenlens_speed.py --quick    # 2 prompts x 8 new tokens, 1 repeat (sanity check)
    .venv/bin/python benchmarks/tokenlens_speed.py --device cuda --shape smollm-135m --prompts 16 \\
        --batch-size 16 --ig-steps 16                          # the GPU comparison of issue 21
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import shapes as _shapes  # noqa: E402

PROMPTS = [
    "the cat sat on the mat and the dog",
    "hello world, this is a tiny corpus",
    "models diff: base and fine-tuned language",
    "numbers 0 1 2 3 4 5 and punctuation",
    "the dog ran in the park with the cat",
    "a tiny tokenizer for a tiny corpus of",
    "compared token by token, the fine-tuned",
    "this is the mat where the cat sat",
]

# name -> Llama config keys: benchmarks/shapes.py's, plus SmolLM-135M's shape with the test tokenizer's vocabulary
# (vocab_size None: the tokenizer decides)
SHAPES = {"smollm-135m-testvocab": {**_shapes.SHAPES["smollm-135m"], "vocab_size": None}, **_shapes.SHAPES,
          "tiny": {**_shapes.SHAPES["tiny"], "vocab_size": None}}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TARGETS = {  # native / inseq tok/s the issues asked for
    "cpu": {"saliency": 5.0, "input_x_gradient": 5.0, "integrated_gradients": 3.0},
    "cuda": {"integrated_gradients": 20.0},
}


llama_parameters, resolve_device, sync = _shapes.llama_parameters, _shapes.resolve_device, _shapes.sync


def build_model(shape: str = "smollm-135m-testvocab", device: str = "cpu", dtype: str = "float32"):
    from tiny import make_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_tokenizer()
    keys = dict(SHAPES[shape])
    vocab = keys.pop("vocab_size") or len(tok)
    cfg = LlamaConfig(
        vocab_size=vocab, **keys, max_position_embeddings=2048, tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=None,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    model.requires_grad_(False)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == llama_parameters(SHAPES[shape], vocab), (shape, n_params)
    model.to(device=device, dtype=DTYPES[dtype])
    model.generation_config.suppress_tokens = sorted(set(range(vocab)) - set(round_trip_safe(tok)))
    return model, tok, n_params


def round_trip_safe(tok) -> list[int]:
    """Ids of printable single-character tokens whose character occurs in no longer token: any run of them
    decodes and re-tokenizes to the same ids, after any prompt."""
    vocab = tok.get_vocab()
    longer = "".join(t for t in vocab if len(t) > 1 and t not in tok.all_special_tokens)
    out = []
    for t, i in vocab.items():
        text = tok.convert_tokens_to_string([t])
        if len(t) == 1 and t not in longer and text.isascii() and text.isprintable() and text.strip():
            out.append(i)
    return out


def _device(model) -> str:
    return str(model.get_input_embeddings().weight.device)


def run_inseq(model, tok, prompts, method, new_tokens, ig_steps):
    import inseq

    device = _device(model)
    wrapped = inseq.load_model(model, method, tokenizer=tok, device=device)  # inseq would pick cuda by itself
    args = {"n_steps": ig_steps} if method == "integrated_gradients" else {}
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    ids = []
    for p in prompts:
        out = wrapped.attribute(p, generation_args={"max_new_tokens": new_tokens, "do_sample": False},
                                attribution_args=args, show_progress=False, batch_size=1)
        sa = out.sequence_attributions[0]
        ids.append(tok.convert_tokens_to_ids([t.token for t in sa.target[-sa.target_attributions.shape[1]:]]))
    sync(device)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    wrapped.attribution_method.unhook()
    return ids, dt, cpu


def run_native(model, tok, prompts, method, new_tokens, ig_steps, batch_size, chunk=None):
    from modeldiff_cli.commands.tokenlens import engine
    from modeldiff_cli.commands.tokenlens.generate import greedy

    device = _device(model)
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    seqs = greedy(model, tok, [tok(p)["input_ids"] for p in prompts], new_tokens, batch_size)
    t_gen = time.perf_counter() - t0
    mats = engine.attribute(model, tok, seqs, method, n_steps=ig_steps, batch_size=batch_size,
                            chunk=chunk or engine.CHUNK)  # matrices come back on the CPU: synchronised
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert [m.shape[1] for m in mats] == [s.n_targets for s in seqs]
    return [s.ids[s.prompt_len:] for s in seqs], dt, cpu, t_gen


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def add_model_options(ap: argparse.ArgumentParser) -> None:
    """``--device``, ``--dtype``, ``--shape`` and the workload options (shared with tokenlens_ceiling.py)."""
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    ap.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    ap.add_argument("--shape", default="smollm-135m-testvocab", choices=list(SHAPES))
    ap.add_argument("--prompts", type=int, default=8, help="number of prompts (the 8 built-in ones, repeated)")
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--ig-steps", type=int, default=8, help="integrated-gradients steps (same for both engines)")
    ap.add_argument("--batch-size", type=int, default=8, help="native engine: prompts per batch")
    ap.add_argument("--chunk", type=int, default=None, help="native engine: targets per batched backward (default 8)")


def describe(a, n_params: int, tok) -> str:
    return (f"model: random Llama {a.shape}, {n_params / 1e6:.1f}M params, {a.dtype}, device {a.device}; "
            f"{a.prompts} prompts x {a.new_tokens} new tokens (tokenizer {len(tok)} tokens); "
            f"torch threads {torch.get_num_threads()}; IG steps {a.ig_steps}; batch {a.batch_size}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 prompts x 8 new tokens, 1 repeat")
    add_model_options(ap)
    ap.add_argument("--methods", default="saliency,input_x_gradient,integrated_gradients")
    ap.add_argument("--repeats", type=int, default=3, help="alternating inseq/native runs per method (medians)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = ap.parse_args()
    if a.quick:
        a.prompts, a.new_tokens, a.repeats = 2, 8, 1
    a.device = resolve_device(a.device)
    model, tok, n_params = build_model(a.shape, a.device, a.dtype)
    prompts = (PROMPTS * (a.prompts // len(PROMPTS) + 1))[: a.prompts]
    print(describe(a, n_params, tok) + f"; {a.repeats} repeats", flush=True)
    target = TARGETS["cuda" if a.device.startswith("cuda") else "cpu"]
    rows = []
    run_native(model, tok, prompts[:1], "saliency", 2, a.ig_steps, 1)  # warm-up (allocator, kernels)
    for method in a.methods.split(","):
        runs = []
        for _ in range(a.repeats):
            ids_i, t_i, c_i = run_inseq(model, tok, prompts, method, a.new_tokens, a.ig_steps)
            ids_n, t_n, c_n, g_n = run_native(model, tok, prompts, method, a.new_tokens, a.ig_steps, a.batch_size,
                                              a.chunk)
            if ids_i != ids_n:
                same_size = [len(x) for x in ids_i] == [len(x) for x in ids_n]
                if a.dtype == "float32" or not same_size:
                    raise SystemExit(f"{method}: inseq and native attributed different continuations: {ids_i} vs {ids_n}")
                print(f"  note: {a.dtype} generation broke ties differently (same token counts)", flush=True)
            n = sum(len(x) for x in ids_n)
            runs.append((n / t_i, n / t_n, t_i, t_n, c_i, c_n, g_n))
            print(f"  {method}: inseq {t_i:7.1f} s, native {t_n:6.1f} s (generation {g_n:.1f} s): {t_i / t_n:.2f}x", flush=True)
        n = sum(len(x) for x in ids_n)
        tps_i, tps_n = median([r[0] for r in runs]), median([r[1] for r in runs])
        cpu_i, cpu_n = median([r[4] for r in runs]), median([r[5] for r in runs])
        row = {"method": method, "tokens": n, "repeats": a.repeats, "device": a.device, "dtype": a.dtype,
               "shape": a.shape, "params": n_params, "prompts": a.prompts, "new_tokens": a.new_tokens,
               "ig_steps": a.ig_steps, "batch_size": a.batch_size,
               "inseq_s": [round(r[2], 2) for r in runs], "native_s": [round(r[3], 2) for r in runs],
               "native_generation_s": [round(r[6], 2) for r in runs],
               "inseq_tok_per_s": round(tps_i, 3), "native_tok_per_s": round(tps_n, 3), "ratio": round(tps_n / tps_i, 2),
               "ratio_per_run": [round(r[1] / r[0], 2) for r in runs],
               "cpu_time_ratio": round(cpu_i / cpu_n, 2), "target_ratio": target.get(method)}
        rows.append(row)
        print(f"{method:22s} inseq {tps_i:8.3f} tok/s   native {tps_n:8.3f} tok/s   ratio of medians {tps_n / tps_i:5.2f}x "
              f"(per run {', '.join(f'{x:.2f}' for x in row['ratio_per_run'])}; target {target.get(method) or '-'}x; "
              f"per CPU-second {row['cpu_time_ratio']:.2f}x; {n} tokens each)", flush=True)
    print("\nratios (native tok/s / inseq tok/s, medians):")
    for r in rows:
        goal = f"  (target >= {r['target_ratio']}x: {'met' if r['ratio'] >= r['target_ratio'] else 'NOT met'})" \
            if r["target_ratio"] else ""
        print(f"  {r['method']:22s} {r['ratio']:7.2f}x   native {r['native_tok_per_s']:9.3f} tok/s   "
              f"inseq {r['inseq_tok_per_s']:9.3f} tok/s{goal}")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
