"""The attribute pipeline: load -> extract (cached pooled vectors) -> score (cosine / patch / baselines)
-> ground truth + metrics -> write."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...core import console
from ...core.arch import resolve_layers
from ...core.cache import TensorCache
from ...core.errors import UserError
from ...core.models import check_pair, load_config, load_model, load_tokenizer, resolve_source
from ...core.rundir import config_hash, run_directory, slug
from . import baselines, extract, methods
from .ground_truth import build_truth
from .inputs import check_same_tokens, encode_queries, encode_train, fingerprint, read_table

ORGANISM = "hops"


@dataclass
class AttributeOptions:
    old: str | None = None
    new: str | None = None
    train: Path | None = None
    queries: Path | None = None
    method: str = "delta-h,grad,delta-h-x-grad,bm25,edit-distance,random"
    layers: str | None = None
    pooling: str = "span"
    loss: str = "ce"
    ig_steps: int = 8
    gate_percentile: float = 10.0
    patch_pool: int = 50
    aggregate: str = "mean"
    zscore: bool = False
    ks: str = "1,5,10,20,50"
    text_field: str = "text"
    id_field: str = "uid"
    prompt_field: str = "prompt"
    answer_field: str = "completion"
    ground_truth: Path | None = None
    cache_dir: Path | None = None
    out: Path = Path("runs")
    device: str = "auto"
    dtype: str = "float32"
    batch_size: int = 16
    max_samples: int | None = None
    max_tokens: int | None = 256
    seed: int = 0
    overwrite: bool = False


def parse_pooling(spec: str) -> tuple[str, str]:
    """``P`` for both sides or ``TRAIN:QUERY`` (e.g. ``mean:span``)."""
    parts = [p.strip() for p in spec.split(":")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or any(p not in extract.POOLINGS for p in parts):
        raise UserError(f"--pooling {spec!r}: expected last, mean or span, or TRAIN:QUERY such as mean:span")
    return parts[0], parts[1]


def parse_ks(spec: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in spec.split(",") if k.strip()})
    except ValueError:
        raise UserError(f"--k {spec!r}: expected a comma list of positive integers") from None
    if not ks or ks[0] < 1:
        raise UserError(f"--k {spec!r}: expected a comma list of positive integers")
    return ks


def validate(o: AttributeOptions) -> dict:
    ms = methods.parse_methods(o.method)
    pools = parse_pooling(o.pooling)
    if o.loss not in extract.LOSSES:
        raise UserError(f"--loss {o.loss!r}: expected ce or margin")
    if o.aggregate not in methods.AGGREGATES:
        raise UserError(f"--aggregate {o.aggregate!r}: expected mean, top3 or all")
    if o.ig_steps < 1:
        raise UserError(f"--ig-steps {o.ig_steps}: must be at least 1")
    if not 0 < o.gate_percentile <= 100:
        raise UserError(f"--gate-percentile {o.gate_percentile}: must lie in (0, 100]")
    if o.patch_pool < 1:
        raise UserError(f"--patch-pool {o.patch_pool}: must be at least 1")
    return {"methods": ms, "pooling": pools, "ks": parse_ks(o.ks)}


def _defaults(o: AttributeOptions):
    """Model specs, data files and ground truth, falling back to the hops organism for what is not given."""
    org = None
    if None in (o.old, o.new, o.train, o.queries) or (o.ground_truth is None and o.train is None):
        from ...organisms import get_organism

        org = get_organism(ORGANISM)
    old = o.old or f"organism:{ORGANISM}:base"
    new = o.new or f"organism:{ORGANISM}:ft"
    train = o.train or org.data("new_train")
    queries = o.queries or org.data("queries")
    truth, candidates = None, None
    if o.ground_truth is not None:
        from ...core.artifacts import read_json

        gt = read_json(o.ground_truth, "--ground-truth")
        if not isinstance(gt, dict) or not isinstance(gt.get("functions", {}), dict):
            raise UserError(f"--ground-truth {o.ground_truth}: expected a JSON object with a 'functions' table")
        truth, candidates = gt.get("functions"), gt.get("candidate_constants")
    elif o.train is None and org is not None:
        truth, candidates = org.ground_truth.get("functions"), org.ground_truth.get("candidate_constants")
    return old, new, Path(train), Path(queries), truth, candidates


def load_models(old_spec: str, new_spec: str, dtype: str, device: str):
    """Both checkpoints; sizes and tokenizers must agree exactly (else one line, exit 2)."""
    src_old = resolve_source(old_spec, role="base", flag="--old")
    src_new = resolve_source(new_spec, role="ft", flag="--new")
    tok_old, tok_new = load_tokenizer(src_old, "--old"), load_tokenizer(src_new, "--new")
    report = check_pair(load_config(src_old, "--old"), load_config(src_new, "--new"), tok_old, tok_new)
    reasons = list(report.reasons)
    if report.compatible and report.tokenizer_relation != "identical":
        reasons.append(f"tokenizers differ in size ({report.tokenizer_relation})")
    if reasons:
        raise UserError(f"--old {src_old.spec} and --new {src_new.spec} are not two checkpoints of one model: " + "; ".join(reasons))
    old = load_model(src_old, dtype=dtype, device=device, flag="--old")
    new = load_model(src_new, dtype=dtype, device=device, flag="--new")
    return old, new


def run(o: AttributeOptions) -> Path:
    v = validate(o)
    torch.manual_seed(o.seed)
    old_spec, new_spec, train_path, query_path, functions, candidates = _defaults(o)
    old, new = load_models(old_spec, new_spec, o.dtype, o.device)
    tok = old.tokenizer
    train_rows = read_table(train_path, o.text_field, o.id_field, "--train", o.max_samples)
    query_rows = read_table(query_path, o.prompt_field, o.id_field, "--queries", required=((o.answer_field, "--answer-field"),))
    check_same_tokens(tok, new.tokenizer, [r["_text"] for r in train_rows + query_rows])
    train_items = encode_train(train_rows, tok, o.max_tokens)
    query_items = encode_queries(query_rows, tok, o.answer_field, [str(c) for c in candidates] if candidates else None)
    truth = build_truth(query_rows, train_rows, [it.uid for it in train_items], functions)
    keep = truth.relevant.any(1)
    targets = {f for f, info in (functions or {}).items() if info.get("target")}
    if targets:  # ground truth names the functions trained between old and new: query those only
        keep &= np.array([r.get("func") in targets for r in query_rows], dtype=bool)
    if not keep.any():
        raise UserError(f"--queries {query_path}: no query has a relevant document in --train {train_path} (check func/role fields or --ground-truth)")
    if not keep.all():
        console.info(f"note: {int((~keep).sum())} of {len(keep)} queries are left out (not on a target function of the ground truth, or no relevant document in --train)")
        query_rows = [r for r, k in zip(query_rows, keep) if k]
        query_items = [it for it, k in zip(query_items, keep) if k]
        truth = build_truth(query_rows, train_rows, [it.uid for it in train_items], functions)
    N = len(train_items)
    ks = v["ks"]
    if ks[-1] > N:
        console.info(f"note: k={ks[-1]} > {N} training documents: recall/precision@k clipped to the top {N} for those k")
    layers = resolve_layers(o.layers, old.adapter.n_layers, "--layers")
    fp = {
        "old": old.source.fingerprint, "new": new.source.fingerprint,
        "train": fingerprint(train_path, o.text_field, o.id_field, o.max_samples, o.max_tokens),
        "queries": fingerprint(query_path, o.prompt_field, o.id_field, o.answer_field, candidates, [it.uid for it in query_items]),
    }
    config = {**fp, "methods": v["methods"], "layers": layers, "pooling": list(v["pooling"]), "loss": o.loss,
              "ig_steps": o.ig_steps, "gate_percentile": o.gate_percentile, "patch_pool": o.patch_pool,
              "aggregate": o.aggregate, "zscore": o.zscore, "ks": ks, "dtype": o.dtype, "seed": o.seed,
              "ground_truth": hashlib.sha256(json.dumps(functions, sort_keys=True, default=str).encode()).hexdigest()[:16]}
    parts = ["attribute", f"{old.source.label}_vs_{new.source.label}",
             slug(f"{train_path.stem}-{query_path.stem}-{config_hash(config)}")]
    with run_directory(o.out, parts, config, command="attribute", overwrite=o.overwrite) as run_dir:
        if run_dir.reused:
            console.info(f"reusing the complete run in {run_dir.path} (pass --overwrite to recompute)")
        else:
            cache = TensorCache(o.cache_dir or Path(o.out) / "attribute-cache")
            vectors, timing = extract_all(old, new, train_items, query_items, layers, v, o, fp, cache)
            scores = score_all(old, new, train_items, query_items, layers, v["methods"], vectors, o)
            from .report import evaluate, write_outputs

            results = evaluate(scores, truth, ks)
            run_dir.metadata.update(models={"old": old.source.spec, "new": new.source.spec},
                                    train=str(train_path), queries=str(query_path), extraction=timing)
            write_outputs(run_dir, scores, results, truth, train_rows, query_rows, layers, timing, o)
    console.done(run_dir.path)
    return run_dir.path


def _cached(cache: TensorCache, name: str, key: dict, compute) -> dict[str, torch.Tensor]:
    full = f"{name}-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]}"
    got = cache.get(full, key)
    if got is None:
        got = compute()
        cache.put(full, key, got)
    return got


def extract_all(old, new, train_items, query_items, layers, v, o: AttributeOptions, fp: dict, cache: TensorCache):
    """Pooled vectors for both sides, from the cache when present; returns them and extraction timing."""
    ms = v["methods"]
    need_vectors = any(m in ("delta-h", "grad", "delta-h-x-grad", "patch") for m in ms)
    vectors: dict[str, dict[str, torch.Tensor]] = {"train": {}, "queries": {}}
    timing = {"samples": 0, "seconds": 0.0, "forwards": 0}
    for side, items, pooling in (("train", train_items, v["pooling"][0]), ("queries", query_items, v["pooling"][1])):
        key = {"old": fp["old"], "new": fp["new"], "data": fp[side], "pooling": pooling, "layers": layers,
               "loss": o.loss, "dtype": o.dtype, "version": 1}

        def timed(fn, kind="vectors"):
            def inner():
                t0, f0 = time.perf_counter(), extract.STATS["forward"]
                res = fn()
                dt = time.perf_counter() - t0
                timing["seconds"] += dt
                timing[f"{kind}_seconds"] = timing.get(f"{kind}_seconds", 0.0) + dt
                timing[f"{kind}_samples"] = timing.get(f"{kind}_samples", 0) + len(items)
                timing["samples"] += len(items)
                timing["forwards"] += extract.STATS["forward"] - f0
                return res
            return inner

        if need_vectors:
            vectors[side].update(_cached(cache, f"{side}-vectors", key, timed(lambda: extract.extract_vectors(
                old, new, items, layers, pooling, o.loss, o.batch_size, f"attribute: {side} (Δh, g)"))))
        if "ig" in ms:
            vectors[side].update(_cached(cache, f"{side}-ig", {**key, "ig_steps": o.ig_steps}, timed(lambda: {
                "ig": extract.extract_ig(old, new, items, layers, pooling, o.loss, o.ig_steps, o.batch_size,
                                         f"attribute: {side} (integrated gradients)")}, "ig")))
    timing["samples_per_s"] = timing["samples"] / timing["seconds"] if timing["seconds"] > 0 else None
    for kind in ("vectors", "ig"):  # vectors: Δh, g, Δh ⊙ g (2 forwards + 1 backward); ig: K steps per layer
        if timing.get(f"{kind}_seconds"):
            timing[f"{kind}_samples_per_s"] = timing[f"{kind}_samples"] / timing[f"{kind}_seconds"]
    return vectors, timing


def score_all(old, new, train_items, query_items, layers, ms, vectors, o: AttributeOptions) -> dict[str, dict]:
    """``{method: {"scores": [Q, N], "per_layer": [L, Q, N] or None}}`` as float64 numpy arrays."""
    out: dict[str, dict] = {}
    tok = old.tokenizer
    for m in ms:
        if m in methods.VECTOR_OF:
            key = methods.VECTOR_OF[m]
            qv, tv = vectors["queries"][key], vectors["train"][key]
            per = methods.cosine_scores(qv, tv)
            agg = methods.aggregate(per, o.aggregate, o.zscore, qv, tv)
            out[m] = {"scores": agg.numpy(), "per_layer": per.numpy()}
        elif m == "patch":
            from .patch import candidate_pool, patch_scores

            prior = methods.aggregate(methods.cosine_scores(vectors["queries"]["dhg"], vectors["train"]["dhg"]), "mean")
            pool = candidate_pool(prior, o.patch_pool)
            if pool.shape[1] < len(train_items):
                console.info(f"note: patch scores each query's top {pool.shape[1]} documents by delta-h-x-grad; the rest score -inf")
            per = patch_scores(old, new, query_items, vectors["train"]["dhg"], pool, layers, o.gate_percentile, o.batch_size)
            finite = torch.isfinite(per)
            agg = torch.where(finite.all(0), per.where(finite, 0).mean(0), torch.tensor(float("-inf"), dtype=per.dtype))
            out[m] = {"scores": agg.numpy(), "per_layer": per.numpy()}
        elif m == "bm25":
            toks = lambda items: [[str(t) for t in it.ids if t not in tok.all_special_ids] for it in items]  # noqa: E731
            q = [[str(t) for t in it.ids[: it.loss_pos[0] + 1] if t not in tok.all_special_ids] for it in query_items]
            out[m] = {"scores": baselines.bm25_scores(q, toks(train_items)), "per_layer": None}
        elif m == "edit-distance":
            q = [it.ids[: it.loss_pos[0] + 1] for it in query_items]
            out[m] = {"scores": baselines.edit_distance_scores(q, [it.ids for it in train_items]), "per_layer": None}
        elif m == "random":
            out[m] = {"scores": baselines.random_scores(len(query_items), len(train_items), o.seed), "per_layer": None}
    return out


def options_dict(o: AttributeOptions) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(o).items()}
