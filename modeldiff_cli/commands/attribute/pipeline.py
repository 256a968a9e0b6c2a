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

from ...core.errors import UserError
from ...core.spine import console
from ...core.spine import distributed as dist
from . import baselines, choices, extract, fusion, methods
from .cache import TensorCache
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
    from .ground_truth import infer_functions, normalise_functions

    tok = old.tokenizer
    check_same_tokens(tok, new.tokenizer, [row["_text"] for row in inputs.train_rows + inputs.query_rows])
    funcs = normalise_functions(inputs.functions) if inputs.functions else infer_functions(inputs.train_rows)
    answer_aware = cmd.pooling_pair[0] == "span"  # documents: the positions that predict the fact they teach
    return Encoded(encode_train(inputs.train_rows, tok, cmd.reading.max_tokens, answer_aware, funcs, cmd.target_field),
                   encode_queries(inputs.query_rows, tok, cmd.answer_field, inputs.candidates))


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def items_digest(items: list[Item]) -> str:
    """The sequences as extracted: ids, loss / pooling positions, targets and candidates of every item (so a
    change in how documents are encoded, e.g. which positions answer-aware pooling picks, never reuses vectors)."""
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps([it.uid, it.ids, it.loss_pos, it.targets, it.cands]).encode())
    return h.hexdigest()[:16]


def cache_keys(cmd, inputs: Inputs, encoded: Encoded) -> dict[str, str]:
    """What each side's vectors were extracted from: its file and reading options, the ids kept, candidates, and
    the encoded sequences themselves (``items_digest``)."""
    fp = cmd.fp.values
    return {"train": _digest(fp["train"], cmd.id_field, cmd.target_field, fp.get("ground_truth"),
                             items_digest(encoded.train)),
            "queries": _digest(fp["queries"], cmd.id_field, cmd.answer_field, inputs.candidates,
                               [it.uid for it in encoded.queries], items_digest(encoded.queries))}


def _cached(cache: TensorCache, name: str, key: dict, compute) -> dict[str, torch.Tensor]:
    """The cached tensors, or ``compute()``'s (then stored). Under torchrun rank 0 alone reads and writes the
    cache and tells every rank whether it holds the entry (a stale entry is one error, on every rank); on a hit
    the other ranks get ``{}`` (they stop before scoring)."""
    full = f"{name}-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]}"
    box: list = []
    if dist.agree(lambda: box.append(cache.get(full, key)) or box[0] is not None):
        return box[0] if box else {}
    got = compute()
    if dist.is_main():
        cache.put(full, key, got)
    return got


def sharded(extract_fn, items: list[Item], batch_size: int, count: bool = True) -> dict[str, torch.Tensor]:
    """``extract_fn(items)`` (``{name: [layers, samples, hidden]}``) over this rank's contiguous block of the
    one-process run's batches, gathered over ranks in rank order = document order (``core.spine.distributed``): every
    forward is one of the one-process run's, so the vectors equal its vectors. One process: ``extract_fn(items)``.
    ``count``: tally this rank's samples (run_metadata.json ``rank_samples``; once per side)."""
    if not dist.active():
        if count:
            dist.count_samples(len(items))
        return extract_fn(items)
    starts = list(range(0, len(items), batch_size))
    lo, hi = dist.span(len(starts))
    mine = items[lo * batch_size : min(hi * batch_size, len(items))]
    if count:
        dist.count_samples(len(mine))
    got = extract_fn(mine) if mine else None
    names = dist.gather_objects(sorted(got) if got is not None else None)
    names = next(n for n in names if n is not None)  # an empty shard knows the names from the others
    out = {}
    for name in names:
        rows = got[name].transpose(0, 1).contiguous() if got is not None else torch.zeros(0)
        out[name] = dist.gather_rows(rows).transpose(0, 1).contiguous()
    return out


def extract_all(old, new, inputs: Inputs, encoded: Encoded, layers: list[int], cmd):
    """Pooled vectors for both sides, from the cache when present; returns them and extraction timing."""
    ms = choices.base_methods(cmd.method_list)
    pooling = cmd.pooling_pair
    batch_size = cmd.reading.batch_size
    need_vectors = any(m in ("delta-h", "grad", "delta-h-x-grad", "patch", "loss-drop") for m in ms)
    cache = TensorCache(cmd.cache_dir or Path(cmd.run.out) / "attribute-cache")
    data_keys = cache_keys(cmd, inputs, encoded)
    fp = cmd.fp.values
    vectors: dict[str, dict[str, torch.Tensor]] = {"train": {}, "queries": {}}
    timing = {"samples": 0, "seconds": 0.0, "forwards": 0}
    tallied: set[str] = set()

    def counts(side: str) -> bool:  # a side's samples count once in rank_samples (Δh/g and ig read the same)
        first = side not in tallied
        tallied.add(side)
        return first
    train_pool = "last-loss" if pooling[0] == "last" else pooling[0]  # a document's last token predicts nothing
    for side, items, pool in (("train", encoded.train, train_pool), ("queries", encoded.queries, pooling[1])):
        key = {"base": fp["base"]["fingerprint"], "ft": fp["ft"]["fingerprint"], "data": data_keys[side],
               "pooling": pool, "layers": layers, "loss": cmd.loss, "dtype": cmd.compared.dtype, "version": 5}

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
            vectors[side].update(_cached(cache, f"{side}-vectors", key, timed(lambda items=items, pool=pool, side=side: sharded(
                lambda part: extract.extract_vectors(old, new, part, layers, pool, cmd.loss, batch_size,
                                                     f"attribute: {side} (Δh, g{', losses' if side == 'train' else ''})",
                                                     losses=side == "train"), items, batch_size, counts(side)))))
        if "ig" in ms:
            vectors[side].update(_cached(cache, f"{side}-ig", {**key, "ig_steps": cmd.ig_steps}, timed(lambda items=items, pool=pool, side=side: sharded(
                lambda part: {"ig": extract.extract_ig(old, new, part, layers, pool, cmd.loss, cmd.ig_steps, batch_size,
                                                       f"attribute: {side} (integrated gradients)")}, items, batch_size, counts(side)), "ig")))
    timing["samples_per_s"] = timing["samples"] / timing["seconds"] if timing["seconds"] > 0 else None
    for kind in ("vectors", "ig"):  # vectors: Δh, g, Δh ⊙ g (2 forwards + 1 backward); ig: K steps per layer
        if timing.get(f"{kind}_seconds"):
            timing[f"{kind}_samples_per_s"] = timing[f"{kind}_samples"] / timing[f"{kind}_seconds"]
    return vectors, timing


def lexical_ids(ids: list[int], tok) -> list[str]:
    """A sequence's tokens for BM25: every id but padding / bos / eos (a fine-tune's own special tokens, such as
    the hops function names or chat markers, are the words that tell queries apart: they stay)."""
    drop = {t for t in (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) if t is not None}
    return [str(t) for t in ids if t not in drop]


def warn_zero_vectors(vectors, layers: list[int]) -> None:
    """A clear note when gradient vectors are all zero for most samples (every cosine then ties)."""
    for side, vs in vectors.items():
        g = vs.get("g")
        if g is not None and g.numel():
            zero = (g.abs().amax(-1) == 0).float().mean().item()
            if zero > 0.5:
                console.info(f"warning: {zero:.0%} of the {side} gradient vectors are zero at the chosen positions "
                             "(--pooling); grad / delta-h-x-grad scores tie there — use --pooling span or mean")


def score_all(old, new, encoded: Encoded, layers: list[int], vectors, cmd) -> dict[str, dict]:
    """``{method: {"scores": [Q, N], "per_layer": [L, Q, N] or None}}`` as float64 numpy arrays, for every
    non-fused method (the listed ones and the fusions' components)."""
    out: dict[str, dict] = {}
    tok = old.tokenizer
    train_items, query_items = encoded.train, encoded.queries
    how = "mean" if cmd.aggregate == "best" else cmd.aggregate  # best: chosen later, on held-out queries
    cache_dir = Path(cmd.cache_dir or Path(cmd.run.out) / "attribute-cache")
    warn_zero_vectors(vectors, layers)
    for m in choices.base_methods(cmd.method_list):
        t0 = time.perf_counter()
        if m in methods.VECTOR_OF:
            key = methods.VECTOR_OF[m]
            qv, tv = vectors["queries"][key], vectors["train"][key]
            per = methods.cosine_scores(qv, tv)
            agg = methods.aggregate(per, how, cmd.zscore, qv, tv)
            out[m] = {"scores": agg.numpy(), "per_layer": per.numpy()}
        elif m == "loss-drop":  # the same for every query: how much the fine-tuning lowered each document's loss
            ce = vectors["train"]["ce"][:, :, 0].double()
            drop = (ce[0] - ce[1]).numpy()
            out[m] = {"scores": np.repeat(drop[None], len(query_items), 0), "per_layer": None}
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
            docs = [lexical_ids(it.ids, tok) for it in train_items]
            q = [lexical_ids(it.ids[: it.loss_pos[0] + 1], tok) for it in query_items]
            out[m] = {"scores": baselines.bm25_scores(q, docs), "per_layer": None}
        elif m == "edit-distance":
            q = [it.ids[: it.loss_pos[0] + 1] for it in query_items]
            out[m] = {"scores": baselines.edit_distance_scores(q, [it.ids for it in train_items]), "per_layer": None}
        elif m == "random":
            out[m] = {"scores": baselines.random_scores(len(query_items), len(train_items), cmd.run.seed), "per_layer": None}
        elif m in ("ekfac", "kfac"):
            from .influence import alone, kronfluence_scores

            key = _digest(cmd.fp.values["ft"]["fingerprint"], cache_keys_train(cmd), cmd.pooling_pair[0],
                          items_digest(train_items))  # the factors: the documents' losses at their positions
            with alone():  # rank 0 only under torchrun (factors over every document)
                sc = kronfluence_scores(new, train_items, query_items, m, cmd.loss, cmd.damping,
                                        cmd.reading.batch_size, cache_dir, key)
            out[m] = {"scores": sc, "per_layer": None}
        elif m == "trackstar":
            from .influence import alone, trackstar_scores

            with alone():  # rank 0 only under torchrun
                at = {"new": [("new", new)], "old": [("old", old)], "both": [("old", old), ("new", new)]}
                sc, info = trackstar_scores(at[cmd.trackstar_checkpoint], train_items, query_items, cmd.projection_dim,
                                            cmd.run.seed, cache_dir, cmd.trackstar_damping,
                                            batch_size=cmd.reading.batch_size)
            out[m] = {"scores": sc, "per_layer": None, "trackstar": info}
        out[m]["seconds"] = time.perf_counter() - t0
    return out


def cache_keys_train(cmd) -> str:
    return _digest(cmd.fp.values["train"], cmd.id_field, cmd.target_field)


def split_queries(groups: list[str], fraction: float, seed: int,
                  kinds: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(selection rows, test rows): a seeded share of the query functions (groups) chooses, the rest is scored.
    Drawn within each query kind (base / wrapper / other), so a kind with two or more functions has queries on
    both sides; a kind with one function is scored only."""
    rng = np.random.default_rng(seed)
    kinds = kinds if kinds is not None else ["all"] * len(groups)
    kind_of = {}
    for g, k in zip(groups, kinds):
        kind_of.setdefault(g, k)
    chosen: set[str] = set()
    for kind in sorted(set(kind_of.values())):
        names = sorted(g for g, k in kind_of.items() if k == kind)
        rng.shuffle(names)
        n_sel = min(max(1, round(fraction * len(names))), len(names) - 1) if len(names) > 1 else 0
        chosen |= set(names[:n_sel])
    sel = np.array([i for i, g in enumerate(groups) if g in chosen], dtype=int)
    test = np.array([i for i, g in enumerate(groups) if g not in chosen], dtype=int)
    return sel, test


def select_layers(scores: dict, truth: Truth, layers: list[int], cmd) -> dict | None:
    """``--aggregate best``: per layered method, the layer with the best MAP on the selection split (never on
    the test queries); its scores become the method's ranking. Returns the split and the choices (None
    otherwise)."""
    if cmd.aggregate != "best":
        return None
    from .metrics import summarize

    sel, test = split_queries(truth.groups, cmd.select_fraction, cmd.run.seed, truth.kinds)
    if not len(sel):
        raise UserError("--aggregate best: needs queries on two or more functions (one half chooses the layer)")
    sub = truth.take(sel)
    chosen = {}
    for m, s in scores.items():
        if s["per_layer"] is None:
            continue
        maps = [summarize(p[sel], sub.relevant, sub.category, sub.groups, sub.kinds, (10,))["all"]["map"]
                for p in s["per_layer"]]
        best = int(np.nanargmax(np.nan_to_num(maps, nan=-1.0)))
        chosen[m] = {"layer": layers[best], "selection_map": maps[best]}
        s["scores"] = s["per_layer"][best].copy()
    return {"selection_queries": sel.tolist(), "test_queries": test.tolist(), "layers": chosen,
            "fraction": cmd.select_fraction, "seed": cmd.run.seed}


def add_fusions(scores: dict, cmd) -> dict:
    """The listed methods in order, fused ones computed from their components' rankings (fusion.py)."""
    out = {}
    for m in cmd.method_list:
        parts = choices.fusion_parts(m)
        if parts is None:
            out[m] = scores[m]
        else:
            kind = choices.FUSIONS[m.partition(":")[0]]
            out[m] = {"scores": fusion.fuse(kind, [scores[p]["scores"] for p in parts]), "per_layer": None,
                      "seconds": sum(scores[p].get("seconds", 0.0) for p in parts)}
    return out


def restrict(scores: dict, inputs: Inputs, split: dict | None) -> tuple[dict, Inputs]:
    """The test queries only (``--aggregate best``: the selection queries chose the layers)."""
    if split is None:
        return scores, inputs
    rows = np.array(split["test_queries"], dtype=int)
    sub = {m: {**s, "scores": s["scores"][rows], "per_layer": None if s["per_layer"] is None else s["per_layer"][:, rows]}
           for m, s in scores.items()}
    return sub, Inputs(inputs.train_rows, [inputs.query_rows[i] for i in rows], inputs.truth.take(rows),
                       inputs.functions, inputs.candidates)
