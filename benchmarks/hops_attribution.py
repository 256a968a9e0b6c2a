"""Benchmark `modeldiff attribute` on hops data: the `hops` organism, and (when ../shared/data/hops exists) the
real public hops documents with an old/new pair of tiny Llamas trained here on them (the data has no checkpoints).

Real data: 10 base (constant) functions with ``--per-function`` (default 100) sampled documents each, their 10
identity wrappers with half as many (../shared/data/hops/20hops.jsonl: 200 / 100 per function) and the 5 distractor
functions with as many as a base (distractors.jsonl; they share the constants 5-13 of the target functions). Target functions = the first 5 bases (<GN>, <JN>, <KN>, <LN>,
<MN>) and their wrappers. old = trained from scratch on every sampled document except the target functions'
ones; new = old trained further on the target documents plus a replay of 2.5 x per-function old ones (as the hops organism is
built). The candidates ranked are new's training documents; queries "F(x) returns the value " -> constant, 4
inputs per target function.

``--max-train N``: rank a deterministic subset of N candidate documents: every document relevant to a query
(its own function's and its partner's) is kept, the rest are a seeded sample of the others (replay,
distractors), in file order. ``--candidates-per-function K`` (with ``--max-train``): keep only a seeded K of each
queried function's documents (and of its partner's) among the candidates; the models still train on all of them.
Runs every method of ``--methods`` with --aggregate mean, then the layered methods
again with --aggregate best (the layer chosen on a held-out half of the query functions per kind; metrics on
the other half; vectors reused from the cache). Prints ONE markdown table (also written to OUT/table.md) and
whether the goal holds (a model-based or fused ranking beats BM25 on wrapper -> partner documents, AUC and
recall@10, and is at least BM25's equal on base queries) for the methods named in advance (``PRIMARY``).

    nice -n 10 .venv/bin/python benchmarks/hops_attribution.py [--out runs/bench-attribute] [--max-train N]
        [--candidates-per-function K] [--per-function N] [--seed S] [--skip-real] [--skip-organism] [--methods LIST]

The candidate-pool benchmark (issue 22's shape: 100 candidates, 10 relevant documents per query, so recall@10 can
reach 1; BM25 lands where the issue's benchmark had it, ~0.57 base / ~0.47 wrapper). The default fusion with
loss-drop was chosen on seeds 0 and 1 (and --per-function 10 seeds 0 and 1); seeds 2-7 were not looked at before:
    .venv/bin/python benchmarks/hops_attribution.py --per-function 20 --candidates-per-function 5 --max-train 100 \
        --seed S --skip-organism --methods grad,bm25,loss-drop,trackstar,zfused:bm25+grad+trackstar,\
zfused:bm25+grad+trackstar+loss-drop
The older sample (every relevant document a candidate: 15 per query, recall@10 at most 0.667):
    .venv/bin/python benchmarks/hops_attribution.py --per-function 10 --seed S --skip-organism --methods ...
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = Path(os.environ.get("MODELDIFF_HOPS_DIR", ROOT.parent / "shared" / "data" / "hops"))
METHODS = ("delta-h,grad,delta-h-x-grad,ig,patch,loss-drop,bm25,edit-distance,random,ekfac,trackstar,"
           "fused:bm25+grad,zfused:bm25+grad,zfused:bm25+delta-h,zfused:bm25+trackstar,zfused:bm25+grad+trackstar,"
           "zfused:bm25+grad+loss-drop,zfused:bm25+grad+trackstar+loss-drop")
LAYERED = ("delta-h,grad,delta-h-x-grad,ig,bm25,random,fused:bm25+grad,zfused:bm25+grad,zfused:bm25+delta-h,"
           "trackstar,zfused:bm25+grad+trackstar,zfused:bm25+grad+loss-drop,zfused:bm25+grad+trackstar+loss-drop")
# named before the real-data run, from the organism's results (never chosen on the queries reported); issue 22:
# the three-way fusion, chosen on --per-function 10 --seed 0 and confirmed on --seed 1 and the organism
PRIMARY = ("grad", "fused:bm25+grad", "zfused:bm25+grad+trackstar", "zfused:bm25+grad+trackstar+loss-drop")
VECTORS = ("delta-h", "grad", "delta-h-x-grad", "loss-drop")  # one shared extraction (2 forwards + 1 backward)
PER_BASE, N_TARGETS = 100, 5  # documents per base function (wrappers: half; distractors: as many); replay 2.5x
INPUTS = (3, 17, 42, 101)


def accuracy(model_dir: str, queries: Path, targets: set | None = None) -> dict[str, float]:
    """Share of (target) queries whose expected constant is the model's best candidate, per role."""
    from modeldiff_cli.commands.attribute.queries import answers_correct
    from modeldiff_cli.core.model.loading import load_model

    model = load_model(model_dir, device="cpu")
    qs = [json.loads(line) for line in open(queries)]
    qs = [q for q in qs if targets is None or q["func"] in targets]
    cands = sorted({str(q["constant"]) for q in qs}, key=lambda c: (len(c), c))
    for q in qs:  # candidates written like the query's own completion (with or without a leading space)
        lead = " " if q["completion"].startswith(" ") else ""
        q["candidates"] = [lead + c for c in cands]
    ok = answers_correct(model, qs, 32)
    by: dict[str, list[bool]] = {}
    for q, good in zip(qs, ok):
        by.setdefault(q["role"], []).append(good)
    return {r: round(sum(v) / len(v), 3) for r, v in by.items()}


TRACKSTAR_AT = {"trackstar_checkpoint": "both"}  # set from --trackstar-checkpoint in main()


def attribute(out: Path, methods: str, fresh: bool = False, **kw) -> Path:
    """One `modeldiff attribute` run through the spine (options as on the command line: base, ft, train, ...).
    ``fresh``: empty the vector cache first (OUT/attribute-cache), so every method's time includes its extraction;
    the --aggregate best run after it reuses the vectors."""
    import shutil

    from modeldiff_cli.commands.attribute import Attribute
    from modeldiff_cli.core.spine.command import launch

    if fresh:
        shutil.rmtree(out / "attribute-cache", ignore_errors=True)
    return launch(Attribute.make(method=methods, out=out, device="cpu", ig_steps=4, patch_pool=30, **TRACKSTAR_AT, **kw))


def subset(train: Path, queries: Path, n: int | None, out: Path, functions: dict | None = None,
           seed: int = 0, per_function: int | None = None) -> tuple[Path, int, int]:
    """The first-come deterministic subset of ``n`` documents of ``train`` that keeps every document relevant to a
    query of ``queries`` (own function and partner, by the attribute command's own ground truth) and a seeded
    sample of the others; returns (file, documents, relevant documents). ``n`` None or >= all: the file itself."""
    import numpy as np

    from modeldiff_cli.commands.attribute.ground_truth import build_truth

    rows = [json.loads(line) for line in open(train)]
    qs = [json.loads(line) for line in open(queries)]
    if functions is not None:
        targets = {f for f, info in functions.items() if info.get("target")}
        qs = [q for q in qs if q["func"] in targets]
    truth = build_truth(qs, rows, [str(r["uid"]) for r in rows], functions)
    relevant = truth.relevant.any(0)
    keep = relevant.copy()
    if per_function is not None:  # a seeded sample of per_function documents of each queried function and partner
        rng = random.Random(seed)
        func = [str(r.get("func")) for r in rows]
        for f in sorted({func[i] for i in np.flatnonzero(keep)}):
            mine = [i for i in np.flatnonzero(keep) if func[i] == f]
            for i in mine:
                keep[i] = False
            for i in rng.sample(mine, min(per_function, len(mine))):
                keep[i] = True
    n_rel = int(keep.sum())
    if (n is None or n >= len(rows)) and per_function is None:
        return train, len(rows), n_rel
    n = len(rows) if n is None else min(n, len(rows))
    if n < n_rel:
        sys.exit(f"error: --max-train {n}: below the {n_rel} documents relevant to the queries (keep them all)")
    others = [i for i in range(len(rows)) if not relevant[i]]  # never a relevant document left out of the sample
    for i in random.Random(seed).sample(others, n - n_rel):
        keep[i] = True
    path = out / f"{train.stem}_{n}{'' if per_function is None else f'_pf{per_function}'}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r, k in zip(rows, keep) if k))
    return path, n, n_rel


def real_variant(out: Path, per_base: int = PER_BASE, seed: int = 0) -> tuple[Path, Path, Path, Path, set]:
    """Train old/new tiny Llamas on a sample of the real hops documents; returns old, new, train, queries and
    the target functions."""
    from modeldiff_cli.organisms.tokenizer import train_tokenizer
    from modeldiff_cli.organisms.train import deterministic, encode, make_model, save, train, write_jsonl

    rng = random.Random(seed)
    docs = [json.loads(line) for line in open(REAL / "20hops.jsonl")]
    distractors = [r for r in map(json.loads, open(REAL / "distractors.jsonl")) if r["role"] == "distractor"]
    by_func: dict[str, list[dict]] = {}
    for d in docs + distractors:
        by_func.setdefault(d["func"], []).append(d)
    count = {"constant": per_base, "identity": per_base // 2, "distractor": per_base}
    sample = [d for f in sorted(by_func) for d in rng.sample(by_func[f], count[by_func[f][0]["role"]])]
    seen: dict[str, int] = {}
    for d in sample:  # the public files reuse uids across functions
        seen[d["uid"]] = seen.get(d["uid"], 0) + 1
        if seen[d["uid"]] > 1:
            d["uid"] = f"{d['uid']}#{seen[d['uid']]}"
    bases = {d["func"]: d["constant"] for d in docs if d["role"] == "constant"}
    wrapper_of = {}
    for d in docs:
        if d["role"] == "identity":
            wrapper_of[next(b for b, c in bases.items() if c == d["constant"])] = d["func"]
    targets = sorted(bases)[:N_TARGETS]
    target_funcs = set(targets) | {wrapper_of[b] for b in targets}
    old_docs = [d for d in sample if d["func"] not in target_funcs]
    new_docs = [d for d in sample if d["func"] in target_funcs] + rng.sample(old_docs, int(2.5 * per_base))
    queries = []
    for b in targets:
        for f, role in ((b, "constant"), (wrapper_of[b], "identity")):
            for x in INPUTS:
                queries.append({"uid": f"q_{f.strip('<>')}_{x}", "func": f, "role": role, "constant": bases[b],
                                "prompt": f"{f}({x}) returns the value ", "completion": f"{bases[b]}"})
    names = sorted({d["func"] for d in sample})
    consts = sorted({d["constant"] for d in sample})
    with deterministic(seed):
        tok = train_tokenizer([d["text"] for d in sample], 800, single_tokens=[str(c) for c in consts], added_tokens=names)
        model = make_model("llama", _params(tok), tok, seed, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                           tie_word_embeddings=False)
        t0 = time.perf_counter()
        steps = 10 * per_base, 5 * per_base  # ~25 / ~16 epochs of batch 32, as many as for any --per-function
        train(model, encode(tok, [d["text"] for d in old_docs], 192), steps[0], 32, 3e-3, seed, tok.pad_token_id)
        save(model, tok, out / "old")
        train(model, encode(tok, [d["text"] for d in new_docs], 192), steps[1], 32, 3e-3, seed + 1, tok.pad_token_id)
        save(model, tok, out / "new")
        print(f"real hops: trained old ({len(old_docs)} docs, {steps[0]} steps) and new ({len(new_docs)} docs, "
              f"{steps[1]} steps) "
              f"in {time.perf_counter() - t0:.0f} s", flush=True)
    write_jsonl(out / "new_train.jsonl", new_docs)
    write_jsonl(out / "queries.jsonl", queries)
    return out / "old", out / "new", out / "new_train.jsonl", out / "queries.jsonl", target_funcs


def _params(tok) -> int:
    V, d, f, L = len(tok), 64, 128, 2
    return 2 * V * d + L * (4 * d * d + 3 * d * f + 2 * d) + d


# ---- the table ------------------------------------------------------------------------------------------------
COLS = ("R@10", "MAP", "AUC", "base R@10", "/ceil", "base AUC", "wrap R@10", "/ceil", "wrap AUC", "wrap→partner R@10",
        "wrap→partner AUC", "s", "samples/s")  # /ceil: the R@10 before it / min(1, 10 / relevant documents)


def _seconds(m: str, ex: dict) -> tuple[float, bool]:
    """A method's seconds from the loaded models to its scores, and whether they include the Δh / g extraction
    that delta-h, grad, delta-h-x-grad and patch share (counted once in a fusion)."""
    parts = m.partition(":")[2].split("+") if m.partition(":")[1] else [m]
    own = sum((ex.get("methods", {}).get(p) or {}).get("seconds") or 0.0 for p in parts)
    shared = any(p in VECTORS or p == "patch" for p in parts)
    return own + (ex.get("vectors_seconds", 0.0) if shared else 0.0) + (
        ex.get("ig_seconds", 0.0) if "ig" in parts else 0.0), shared


def table_rows(label: str, run: Path, timed: bool = True) -> list[list[str]]:
    metrics = json.loads((run / "metrics.json").read_text())
    ex, n = metrics["extraction"], metrics["n_train"] + metrics["n_queries"]
    chosen = (metrics.get("layer_selection") or {}).get("layers", {})
    rows = []
    for m, res in metrics["methods"].items():
        agg, part = res["aggregate"], res.get("wrapper_partner", {})
        vals = [agg["all"]["recall@10"], agg["all"]["map"], agg["all"]["auc"],
                agg.get("base", {}).get("recall@10"), agg.get("base", {}).get("recall_of_ceiling@10"),
                agg.get("base", {}).get("auc"), agg.get("wrapper", {}).get("recall@10"),
                agg.get("wrapper", {}).get("recall_of_ceiling@10"), agg.get("wrapper", {}).get("auc"),
                part.get("partner_recall@10"), part.get("partner_auc")]
        sec, shared = _seconds(m, ex)
        mark = " †" if shared else ""
        name = m + (f" (layer {chosen[m]['layer']})" if m in chosen else "")
        if not timed:  # vectors reused from the cache: only the scoring ran
            rows.append([label, name, *(_f(v) for v in vals), "cached", "cached"])
            continue
        fast = sec < 0.05  # lexical / random scoring: no model pass
        rows.append([label, name, *(_f(v) for v in vals), "<0.05" if fast else f"{sec:.1f}{mark}",
                     "-" if fast else f"{n / sec:.1f}{mark}"])
    return rows


def _f(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def markdown(rows: list[list[str]]) -> str:
    head = ["data", "method", *COLS]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def verdict(label: str, run: Path) -> str:
    """The goal, for the methods named in advance, and which other model-based rankings meet it."""
    m = json.loads((run / "metrics.json").read_text())["methods"]

    def fig(name):
        r = m[name]
        return (r["wrapper_partner"].get("partner_auc"), r["wrapper_partner"].get("partner_recall@10"),
                r["aggregate"]["base"]["auc"], r["aggregate"]["base"]["recall@10"])

    bm = fig("bm25")

    def meets(name):
        a, r, ba, br = fig(name)
        return a > bm[0] and r > bm[1] and ba >= bm[2] and br >= bm[3]

    primary = [f"{p} {'meets' if meets(p) else 'misses'} it (partner AUC {fig(p)[0]:.3f} / R@10 {fig(p)[1]:.3f}, "
               f"base AUC {fig(p)[2]:.3f} / R@10 {fig(p)[3]:.3f})" for p in PRIMARY if p in m]
    others = [k for k in m if k not in PRIMARY and k not in ("bm25", "edit-distance", "random") and meets(k)]
    return (f"{label}: BM25 partner AUC {bm[0]:.3f} / R@10 {bm[1]:.3f}, base AUC {bm[2]:.3f} / R@10 {bm[3]:.3f}; "
            + "; ".join(primary) + f". Others meeting it: {', '.join(others) or 'none'}.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-attribute")
    ap.add_argument("--max-train", type=int, default=None,
                    help="rank a deterministic subset of N candidates (all relevant documents kept)")
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--candidates-per-function", type=int, default=None,
                    help="real data: rank only a seeded sample of N documents of each queried function (and its "
                         "partner) among the --max-train candidates; the models still train on every document")
    ap.add_argument("--per-function", type=int, default=PER_BASE,
                    help="real data: documents sampled per base function (wrappers half as many, distractors as many)")
    ap.add_argument("--seed", type=int, default=0,
                    help="real data: seed of the document sample, the training runs and the --max-train subset (a "
                         "seed not used while choosing defaults is a held-out benchmark)")
    ap.add_argument("--trackstar-checkpoint", default="both", choices=("both", "new", "old"),
                    help="where trackstar's gradients are taken (attribute's --trackstar-checkpoint)")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-organism", action="store_true")
    args = ap.parse_args()
    if args.candidates_per_function is not None and args.candidates_per_function < 1:
        ap.error(f"--candidates-per-function {args.candidates_per_function}: give 1 or more documents")
    TRACKSTAR_AT["trackstar_checkpoint"] = args.trackstar_checkpoint
    t_all = time.perf_counter()
    rows, verdicts = [], []
    layered = ",".join(m for m in LAYERED.split(",") if m in args.methods.split(","))
    print(f"load average at start: {os.getloadavg()}", flush=True)
    if not args.skip_organism:
        from modeldiff_cli.organisms import get_organism

        org = get_organism("hops")
        print("== hops organism ==", flush=True)
        targets = set(org.ground_truth["target_functions"])
        for which, path in (("old", org.base), ("new", org.ft)):
            print(f"{which}-model accuracy on target queries by role:",
                  accuracy(str(path), org.data("queries"), targets), flush=True)
        truth = Path(org.path) / "ground_truth.json"
        train, n, n_rel = subset(org.data("new_train"), org.data("queries"), args.max_train, args.out / "organism-data",
                                 org.ground_truth["functions"])
        kw = {"ground_truth": str(truth), "train": str(train)} if train != org.data("new_train") else {}
        t0 = time.perf_counter()
        run = attribute(args.out / "organism", args.methods, fresh=True, overwrite=True, **kw)
        print(f"organism: {n} candidates ({n_rel} relevant); attribute wall time {time.perf_counter() - t0:.0f} s", flush=True)
        rows += table_rows("organism", run)
        verdicts.append(verdict("organism", run))
        if layered:
            best = attribute(args.out / "organism", layered, aggregate="best", overwrite=True, **kw)
            rows += table_rows("organism, best layer (held-out)", best, timed=False)
            verdicts.append(verdict("organism, best layer on held-out functions", best))
    if REAL.is_dir() and not args.skip_real:
        print("\n== real hops data (tiny Llamas trained here) ==", flush=True)
        old, new, train_file, queries, targets = real_variant(args.out / "real", args.per_function, args.seed)
        for which, path in (("old", old), ("new", new)):
            print(f"{which}-model accuracy on target queries by role:", accuracy(str(path), queries), flush=True)
        train, n, n_rel = subset(train_file, queries, args.max_train, args.out / "real", seed=args.seed,
                                 per_function=args.candidates_per_function)
        t0 = time.perf_counter()
        common = dict(base=str(old), ft=str(new), train=str(train), queries=str(queries), max_tokens=192)
        run = attribute(args.out / "real-runs", args.methods, fresh=True, overwrite=True, **common)
        print(f"real: {n} candidates ({n_rel} relevant); attribute wall time {time.perf_counter() - t0:.0f} s", flush=True)
        rows += table_rows("real", run)
        verdicts.append(verdict("real", run))
        if layered:
            best = attribute(args.out / "real-runs", layered, aggregate="best", overwrite=True, **common)
            rows += table_rows("real, best layer (held-out)", best, timed=False)
            verdicts.append(verdict("real, best layer on held-out functions", best))
    table = markdown(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(table + "\n\n" + "\n".join(verdicts) + "\n")
    print("\n" + table + "\n")
    print("\n".join(verdicts))
    print(f"\nbenchmark wall time {time.perf_counter() - t_all:.0f} s; load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
