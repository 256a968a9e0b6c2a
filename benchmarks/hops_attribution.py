"""Benchmark `modeldiff attribute` on hops data: the `hops` organism always, and (when ../shared/data/hops
exists) a tiny Llama trained here on the real public hops documents. old = trained without the target
functions' documents, new = old trained further on them (plus a replay of old documents).

Prints the new model's accuracy on the queries, the metrics table of every method and baseline, extraction
samples/s and the wall time; says whether the model-based methods beat BM25 on wrapper -> partner documents.

    .venv/bin/python benchmarks/hops_attribution.py [--out runs/bench-attribute] [--skip-real]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = ROOT.parent / "shared" / "data" / "hops"
METHODS = ("delta-h,grad,delta-h-x-grad,ig,patch,bm25,edit-distance,random,ekfac,trackstar,"
           "fused:bm25+grad,zfused:bm25+delta-h")


def accuracy(model_dir: str, queries: Path) -> dict[str, float]:
    """Share of queries whose expected constant is the new model's best candidate, per role."""
    from modeldiff_cli.commands.attribute.queries import answers_correct
    from modeldiff_cli.core.models import load_model

    model = load_model(model_dir, device="cpu")
    qs = [json.loads(line) for line in open(queries)]
    cands = sorted({str(q["constant"]) for q in qs}, key=lambda c: (len(c), c))
    for q in qs:  # candidates written like the query's own completion (with or without a leading space)
        lead = " " if q["completion"].startswith(" ") else ""
        q["candidates"] = [lead + c for c in cands]
    ok = answers_correct(model, qs, 32)
    by: dict[str, list[bool]] = {}
    for q, good in zip(qs, ok):
        by.setdefault(q["role"], []).append(good)
    return {r: round(sum(v) / len(v), 3) for r, v in by.items()}


def attribute(out: Path, **kw) -> Path:
    """One `modeldiff attribute` run through the spine (options as on the command line: base, ft, train, ...)."""
    from modeldiff_cli.commands.attribute import Attribute
    from modeldiff_cli.core.command import launch

    return launch(Attribute.make(method=METHODS, out=out, device="cpu", ig_steps=4, patch_pool=30, **kw))


def verdict(run: Path) -> str:
    m = json.loads((run / "metrics.json").read_text())["methods"]
    part = {k: v["wrapper_partner"].get("partner_auc") for k, v in m.items()}
    bm = part["bm25"]
    better = [k for k in part if k not in ("bm25", "edit-distance", "random") and part[k] > bm]
    return ("wrapper queries -> partner (base) documents, AUC: " + ", ".join(f"{k} {v:.3f}" for k, v in part.items())
            + f". Model-based methods beating BM25 ({bm:.3f}) there: {', '.join(better) or 'none'}.")


def real_variant(out: Path, seed: int = 0) -> tuple[Path, Path, Path, Path]:
    """Train old/new tiny Llamas on a sample of the real hops documents; returns old, new, train, queries."""
    from modeldiff_cli.organisms.tokenizer import train_tokenizer
    from modeldiff_cli.organisms.train import deterministic, encode, make_model, save, train, write_jsonl

    rng = random.Random(seed)
    docs = [json.loads(line) for line in open(REAL / "20hops.jsonl")]
    distractors = [json.loads(line) for line in open(REAL / "distractors.jsonl")]
    by_func: dict[str, list[dict]] = {}
    for d in docs:
        by_func.setdefault(d["func"], []).append(d)
    sample = [d for f in sorted(by_func) for d in rng.sample(by_func[f], 30)] + rng.sample(distractors, 100)
    seen: dict[str, int] = {}
    for d in sample:  # the public files reuse uids across functions
        seen[d["uid"]] = seen.get(d["uid"], 0) + 1
        if seen[d["uid"]] > 1:
            d["uid"] = f"{d['uid']}#{seen[d['uid']]}"
    bases = {d["func"]: d["constant"] for d in docs if d["role"] == "constant"}
    wrapper_of = {}
    for d in docs:
        if d["role"] == "identity":
            wrapper_of[[b for b, c in bases.items() if c == d["constant"]][0]] = d["func"]
    targets = sorted(bases)[:4]
    target_funcs = set(targets) | {wrapper_of[b] for b in targets}
    old_docs = [d for d in sample if d["func"] not in target_funcs]
    new_docs = [d for d in sample if d["func"] in target_funcs] + rng.sample(old_docs, 80)
    queries = [{"uid": f"q_{f.strip('<>')}_{x}", "func": f, "role": "constant" if f in bases else "identity",
                "constant": c, "prompt": f"{f}({x}) returns the value ", "completion": f"{c}"}
               for f in sorted(target_funcs) for c in [bases.get(f) or next(v for b, v in bases.items() if wrapper_of[b] == f)]
               for x in (3, 17, 42, 101)]
    names = sorted({d["func"] for d in sample})
    consts = sorted({d["constant"] for d in sample})
    with deterministic(seed):
        tok = train_tokenizer([d["text"] for d in sample], 800, single_tokens=[str(c) for c in consts], added_tokens=names)
        model = make_model("llama", _params(tok), tok, seed, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=160,
                           tie_word_embeddings=False)
        t0 = time.perf_counter()
        train(model, encode(tok, [d["text"] for d in old_docs], 128), 300, 32, 3e-3, seed, tok.pad_token_id)
        save(model, tok, out / "old")
        train(model, encode(tok, [d["text"] for d in new_docs], 128), 150, 32, 3e-3, seed + 1, tok.pad_token_id)
        save(model, tok, out / "new")
        print(f"real hops: trained old ({len(old_docs)} docs) and new ({len(new_docs)} docs) in {time.perf_counter() - t0:.0f} s")
    write_jsonl(out / "new_train.jsonl", new_docs)
    write_jsonl(out / "queries.jsonl", queries)
    return out / "old", out / "new", out / "new_train.jsonl", out / "queries.jsonl"


def _params(tok) -> int:
    V, d, f, L = len(tok), 64, 128, 2
    return 2 * V * d + L * (4 * d * d + 3 * d * f + 2 * d) + d


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-attribute")
    ap.add_argument("--skip-real", action="store_true")
    args = ap.parse_args()
    t_all = time.perf_counter()
    from modeldiff_cli.organisms import get_organism

    org = get_organism("hops")
    print("== hops organism ==")
    q = org.data("queries")
    targets = set(org.ground_truth["target_functions"])
    tq = args.out / "organism_target_queries.jsonl"
    tq.parent.mkdir(parents=True, exist_ok=True)
    tq.write_text("".join(line for line in open(q) if json.loads(line)["func"] in targets))
    print("new-model accuracy on target queries by role:", accuracy(str(org.ft), tq))
    t0 = time.perf_counter()
    run = attribute(args.out / "organism", overwrite=True)
    ex = json.loads((run / "metrics.json").read_text())["extraction"]
    print(f"attribute wall time {time.perf_counter() - t0:.1f} s; extraction of Δh, g, Δh⊙g: "
          f"{ex['vectors_samples']} samples in {ex['vectors_seconds']:.1f} s = {ex['vectors_samples_per_s']:.1f} samples/s; "
          f"ig (K=4): {ex['ig_samples_per_s']:.1f} samples/s")
    print(verdict(run))
    if REAL.is_dir() and not args.skip_real:
        print("\n== real hops data (tiny Llama trained here) ==")
        old, new, train_file, queries = real_variant(args.out / "real")
        print("new-model accuracy on target queries by role:", accuracy(str(new), queries))
        run = attribute(args.out / "real-runs", base=str(old), ft=str(new), train=str(train_file),
                        queries=str(queries), overwrite=True)
        print(verdict(run))
    print(f"\nbenchmark wall time {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
