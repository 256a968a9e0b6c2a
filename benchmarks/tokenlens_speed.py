"""tokenlens speed: native batched gradient engine vs inseq 0.7 (batch_size=1), side by side in one run.

Model: a SmolLM-135M-shaped random Llama (hidden 576, 30 layers, 9 heads, 3 KV heads, intermediate 1536) with the
test suite's byte-level BPE tokenizer as vocabulary. Each pipeline starts from prompt text and ends with the
attribution matrices of every generated token:
  inseq  : ``model.attribute(prompt, generation_args={max_new_tokens, greedy})`` per prompt (inseq generates);
  native : one batched greedy generation, then ``engine.attribute`` (one forward + one batched backward per batch).
tokens/s = attributed generated tokens / wall time. Integrated gradients run at the same number of steps in both.

Same work on both sides: inseq decodes the generated ids to text and tokenizes that text again, so a random model's
byte tokens that are not valid UTF-8 on their own (or that merge with their neighbours) would make inseq attribute
a different, longer continuation (48 steps instead of 16 for some prompts). Generation is therefore limited, for
both engines through the model's ``generation_config.suppress_tokens``, to single-character tokens that take part
in no merge, and the benchmark checks that both attribute the same token ids.

The machine's speed drifts by +-20% over minutes (shared host), so each pair is run ``--repeats`` times,
alternating inseq and native, and the medians are compared.

    .venv/bin/python benchmarks/tokenlens_speed.py            # 8 prompts x 16 new tokens, 3 repeats
    .venv/bin/python benchmarks/tokenlens_speed.py --quick    # 2 prompts x 8 new tokens, 1 repeat (sanity check)
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


def build_model():
    from tiny import make_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
        intermediate_size=1536, max_position_embeddings=2048, tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=None,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    model.requires_grad_(False)
    n_params = sum(p.numel() for p in model.parameters())
    assert 100e6 < n_params < 110e6, n_params  # 30 x 576-wide layers; guards against misspelt config keys
    model.generation_config.suppress_tokens = sorted(set(range(len(tok))) - set(round_trip_safe(tok)))
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


def run_inseq(model, tok, prompts, method, new_tokens, ig_steps):
    import inseq

    wrapped = inseq.load_model(model, method, tokenizer=tok)
    args = {"n_steps": ig_steps} if method == "integrated_gradients" else {}
    t0, c0 = time.perf_counter(), time.process_time()
    ids = []
    for p in prompts:
        out = wrapped.attribute(p, generation_args={"max_new_tokens": new_tokens, "do_sample": False},
                                attribution_args=args, show_progress=False, batch_size=1)
        sa = out.sequence_attributions[0]
        ids.append(tok.convert_tokens_to_ids([t.token for t in sa.target[-sa.target_attributions.shape[1]:]]))
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    wrapped.attribution_method.unhook()
    return ids, dt, cpu


def run_native(model, tok, prompts, method, new_tokens, ig_steps, batch_size):
    from modeldiff_cli.commands.tokenlens import engine
    from modeldiff_cli.commands.tokenlens.generate import greedy

    t0, c0 = time.perf_counter(), time.process_time()
    seqs = greedy(model, tok, [tok(p)["input_ids"] for p in prompts], new_tokens, batch_size)
    t_gen = time.perf_counter() - t0
    mats = engine.attribute(model, tok, seqs, method, n_steps=ig_steps, batch_size=batch_size)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert [m.shape[1] for m in mats] == [s.n_targets for s in seqs]
    return [s.ids[s.prompt_len:] for s in seqs], dt, cpu, t_gen


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 prompts x 8 new tokens, 1 repeat")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--ig-steps", type=int, default=8, help="integrated-gradients steps (same for both engines)")
    ap.add_argument("--methods", default="saliency,input_x_gradient,integrated_gradients")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3, help="alternating inseq/native runs per method (medians)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = ap.parse_args()
    if a.quick:
        a.prompts, a.new_tokens, a.repeats = 2, 8, 1
    model, tok, n_params = build_model()
    prompts = (PROMPTS * 4)[: a.prompts]
    print(f"model: random Llama, {n_params / 1e6:.1f}M params, vocab {len(tok)}, hidden 576, 30 layers; "
          f"{a.prompts} prompts x {a.new_tokens} new tokens; torch threads {torch.get_num_threads()}; "
          f"IG steps {a.ig_steps}; {a.repeats} repeats", flush=True)
    target = {"saliency": 5.0, "input_x_gradient": 5.0, "integrated_gradients": 3.0}
    rows = []
    run_native(model, tok, prompts[:1], "saliency", 2, a.ig_steps, 1)  # warm-up (allocator, kernels)
    for method in a.methods.split(","):
        runs = []
        for _ in range(a.repeats):
            ids_i, t_i, c_i = run_inseq(model, tok, prompts, method, a.new_tokens, a.ig_steps)
            ids_n, t_n, c_n, g_n = run_native(model, tok, prompts, method, a.new_tokens, a.ig_steps, a.batch_size)
            if ids_i != ids_n:
                raise SystemExit(f"{method}: inseq and native attributed different continuations: {ids_i} vs {ids_n}")
            n = sum(len(x) for x in ids_n)
            runs.append((n / t_i, n / t_n, t_i, t_n, c_i, c_n, g_n))
            print(f"  {method}: inseq {t_i:7.1f} s, native {t_n:6.1f} s (generation {g_n:.1f} s): {t_i / t_n:.2f}x", flush=True)
        n = sum(len(x) for x in ids_n)
        tps_i, tps_n = median([r[0] for r in runs]), median([r[1] for r in runs])
        cpu_i, cpu_n = median([r[4] for r in runs]), median([r[5] for r in runs])
        row = {"method": method, "tokens": n, "repeats": a.repeats,
               "inseq_s": [round(r[2], 2) for r in runs], "native_s": [round(r[3], 2) for r in runs],
               "native_generation_s": [round(r[6], 2) for r in runs],
               "inseq_tok_per_s": round(tps_i, 3), "native_tok_per_s": round(tps_n, 3), "ratio": round(tps_n / tps_i, 2),
               "ratio_per_run": [round(r[1] / r[0], 2) for r in runs],
               "cpu_time_ratio": round(cpu_i / cpu_n, 2), "target_ratio": target.get(method)}
        rows.append(row)
        print(f"{method:22s} inseq {tps_i:8.3f} tok/s   native {tps_n:8.3f} tok/s   ratio of medians {tps_n / tps_i:5.2f}x "
              f"(per run {', '.join(f'{x:.2f}' for x in row['ratio_per_run'])}; target >= {target.get(method)}x; "
              f"per CPU-second {row['cpu_time_ratio']:.2f}x; {n} tokens each)", flush=True)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
