"""The attribute pipeline's steps: read (records, ground truth; no model) -> load (the pair, checked first)
-> encode -> extract (cached pooled vectors) -> score (cosine / patch / baselines). Metrics and files: report.py."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...core import console
from ...core.cache import TensorCache
from ...core.errors import UserError
from . import baselines, extract, methods
from .ground_truth import Truth, build_truth
from .inputs import Item, check_same_tokens, encode_queries, encode_train, read_table


@dataclass
class Inputs:
    """What the run reads before any model loads: records, the ground truth, the queries kept."""

    train_rows: list[dict]
    query_rows: list[dict]
    truth: Truth
    functions: dict | None
    candidates: list[str] | None


@dataclass
class Encoded:
    train: list[Item]
    queries: list[Item]


def read_inputs(cmd) -> Inputs:
    """Training documents and queries (fields checked, file:line in errors), the ground truth, and the queries
    that have a relevant document (and, when the ground truth names target functions, are on one)."""
    functions, candidates = cmd.truth_table()
    candidates = [str(c) for c in candidates] if candidates else None
    r = cmd.reading
    train_rows = read_table(cmd.train, r.text_field, cmd.id_field, "--train", r.max_samples)
    query_rows = read_table(cmd.queries, cmd.prompt_field, cmd.id_field, "--queries",
                            required=((cmd.answer_field, "--answer-field"),))
    train_ids = [row["_uid"] for row in train_rows]
    truth = build_truth(query_rows, train_rows, train_ids, functions)
    keep = truth.relevant.any(1)
    targets = {f for f, info in (functions or {}).items() if info.get("target")}
    if targets:  # ground truth names the functions trained between base and ft: query those only
        keep &= np.array([row.get("func") in targets for row in query_rows], dtype=bool)
    if not keep.any():
        raise UserError(f"--queries {cmd.queries}: no query has a relevant document in --train {cmd.train} "
                        "(check func/role fields or --ground-truth)")
    if not keep.all():
        console.info(f"note: {int((~keep).sum())} of {len(keep)} queries are left out (not on a target function "
                     "of the ground truth, or no relevant document in --train)")
        query_rows = [row for row, k in zip(query_rows, keep) if k]
        truth = build_truth(query_rows, train_rows, train_ids, functions)
    N, ks = len(train_rows), cmd.k_values
    if ks[-1] > N:
        console.info(f"note: k={ks[-1]} > {N} training documents: recall/precision@k clipped to the top {N} for those k")
    return Inputs(train_rows, query_rows, truth, functions, candidates)


def load_checkpoints(pair):
    """Configs and tokenizers checked first (attribution needs identical token ids), then both weights."""
    report = pair.check()
    if report.tokenizer_relation != "identical":
        b, f = pair.sources
        raise UserError(f"--base {b.spec} and --ft {f.spec} are not two checkpoints of one model: tokenizers "
                        f"differ ({report.tokenizer_relation}); attribution needs identical token ids")
    return pair.load_one("base"), pair.load_one("ft")


def encode(inputs: Inputs, old, new, cmd) -> Encoded:
    tok = old.tokenizer
    check_same_tokens(tok, new.tokenizer, [row["_text"] for row in inputs.train_rows + inputs.query_rows])
    return Encoded(encode_train(inputs.train_rows, tok, cmd.reading.max_tokens),
                   encode_queries(inputs.query_rows, tok, cmd.answer_field, inputs.candidates))


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_keys(cmd, inputs: Inputs, encoded: Encoded) -> dict[str, str]:
    """What each side's vectors were extracted from: its file and reading options, the ids kept, candidates."""
    fp = cmd.fp.values
    return {"train": _digest(fp["train"], cmd.id_field),
            "queries": _digest(fp["queries"], cmd.id_field, cmd.answer_field, inputs.candidates,
                               [it.uid for it in encoded.queries])}


def _cached(cache: TensorCache, name: str, key: dict, compute) -> dict[str, torch.Tensor]:
    full = f"{name}-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]}"
    got = cache.get(full, key)
    if got is None:
        got = compute()
        cache.put(full, key, got)
    return got


def extract_all(old, new, inputs: Inputs, encoded: Encoded, layers: list[int], cmd):
    """Pooled vectors for both sides, from the cache when present; returns them and extraction timing."""
    ms = cmd.method_list
    pooling = cmd.pooling_pair
    batch_size = cmd.reading.batch_size
    need_vectors = any(m in ("delta-h", "grad", "delta-h-x-grad", "patch") for m in ms)
    cache = TensorCache(cmd.cache_dir or Path(cmd.run.out) / "attribute-cache")
    data_keys = cache_keys(cmd, inputs, encoded)
    fp = cmd.fp.values
    vectors: dict[str, dict[str, torch.Tensor]] = {"train": {}, "queries": {}}
    timing = {"samples": 0, "seconds": 0.0, "forwards": 0}
    for side, items, pool in (("train", encoded.train, pooling[0]), ("queries", encoded.queries, pooling[1])):
        key = {"base": fp["base"]["fingerprint"], "ft": fp["ft"]["fingerprint"], "data": data_keys[side],
               "pooling": pool, "layers": layers, "loss": cmd.loss, "dtype": cmd.pair.dtype, "version": 2}

        def timed(fn, kind="vectors", items=items):
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
            vectors[side].update(_cached(cache, f"{side}-vectors", key, timed(lambda items=items, pool=pool: extract.extract_vectors(
                old, new, items, layers, pool, cmd.loss, batch_size, f"attribute: {side} (Δh, g)"))))
        if "ig" in ms:
            vectors[side].update(_cached(cache, f"{side}-ig", {**key, "ig_steps": cmd.ig_steps}, timed(lambda items=items, pool=pool: {
                "ig": extract.extract_ig(old, new, items, layers, pool, cmd.loss, cmd.ig_steps, batch_size,
                                         f"attribute: {side} (integrated gradients)")}, "ig")))
    timing["samples_per_s"] = timing["samples"] / timing["seconds"] if timing["seconds"] > 0 else None
    for kind in ("vectors", "ig"):  # vectors: Δh, g, Δh ⊙ g (2 forwards + 1 backward); ig: K steps per layer
        if timing.get(f"{kind}_seconds"):
            timing[f"{kind}_samples_per_s"] = timing[f"{kind}_samples"] / timing[f"{kind}_seconds"]
    return vectors, timing


def score_all(old, new, encoded: Encoded, layers: list[int], vectors, cmd) -> dict[str, dict]:
    """``{method: {"scores": [Q, N], "per_layer": [L, Q, N] or None}}`` as float64 numpy arrays."""
    out: dict[str, dict] = {}
    tok = old.tokenizer
    train_items, query_items = encoded.train, encoded.queries
    for m in cmd.method_list:
        if m in methods.VECTOR_OF:
            key = methods.VECTOR_OF[m]
            qv, tv = vectors["queries"][key], vectors["train"][key]
            per = methods.cosine_scores(qv, tv)
            agg = methods.aggregate(per, cmd.aggregate, cmd.zscore, qv, tv)
            out[m] = {"scores": agg.numpy(), "per_layer": per.numpy()}
        elif m == "patch":
            from .patch import candidate_pool, patch_scores

            prior = methods.aggregate(methods.cosine_scores(vectors["queries"]["dhg"], vectors["train"]["dhg"]), "mean")
            pool = candidate_pool(prior, cmd.patch_pool)
            if pool.shape[1] < len(train_items):
                console.info(f"note: patch scores each query's top {pool.shape[1]} documents by delta-h-x-grad; the rest score -inf")
            per = patch_scores(old, new, query_items, vectors["train"]["dhg"], pool, layers, cmd.gate_percentile,
                               cmd.reading.batch_size)
            finite = torch.isfinite(per)
            agg = torch.where(finite.all(0), per.where(finite, 0).mean(0), torch.tensor(float("-inf"), dtype=per.dtype))
            out[m] = {"scores": agg.numpy(), "per_layer": per.numpy()}
        elif m == "bm25":
            special = set(tok.all_special_ids)
            docs = [[str(t) for t in it.ids if t not in special] for it in train_items]
            q = [[str(t) for t in it.ids[: it.loss_pos[0] + 1] if t not in special] for it in query_items]
            out[m] = {"scores": baselines.bm25_scores(q, docs), "per_layer": None}
        elif m == "edit-distance":
            q = [it.ids[: it.loss_pos[0] + 1] for it in query_items]
            out[m] = {"scores": baselines.edit_distance_scores(q, [it.ids for it in train_items]), "per_layer": None}
        elif m == "random":
            out[m] = {"scores": baselines.random_scores(len(query_items), len(train_items), cmd.run.seed), "per_layer": None}
    return out
