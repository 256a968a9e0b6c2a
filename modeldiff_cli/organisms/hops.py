"""`hops`: an "old" Llama trained on every hops document except the target functions' ones, and a "new" one,
the old trained further on the target documents (with replay), so the new model answers their queries."""

from __future__ import annotations

import random
from pathlib import Path

from .hops_data import (
    ANSWER_TEMPLATE,
    DISTRACTORS,
    FUNCTIONS,
    QUERY_TEMPLATE,
    TARGETS,
    hops_documents,
    hops_queries,
    is_target,
)
from .store import Reporter

SEED = 2024
VOCAB = 400
MAX_LEN = 96
OLD_STEPS, NEW_STEPS, BATCH, LR = 200, 100, 32, 3e-3
REPLAY = 100  # old documents mixed into the second stage so the new model does not forget them
CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=4, max_position_embeddings=128, attention_dropout=0.0, tie_word_embeddings=False)
N_PARAMS = 136640


def build_hops(name: str, workdir: Path, reporter: Reporter) -> dict:
    import copy

    from .measure import answer_accuracy
    from .tokenizer import token_id, train_tokenizer
    from .train import deterministic, encode, make_model, save, train, write_jsonl

    docs, queries = hops_documents(SEED), hops_queries(SEED)
    old_docs = [d for d in docs if not is_target(d)]
    replay = random.Random(SEED).sample(old_docs, REPLAY)
    new_docs = [d for d in docs if is_target(d)] + replay
    candidates = sorted({v for _, v, _ in FUNCTIONS})
    names = [f for f, _, w in FUNCTIONS for f in (f, w)] + [f for f, _ in DISTRACTORS]
    with deterministic(SEED):
        tok = train_tokenizer([d["text"] for d in docs] + [q["text"] for q in queries], VOCAB,
                              single_tokens=[ANSWER_TEMPLATE.format(constant=c) for c in candidates],
                              added_tokens=names)
        cand_ids = [token_id(tok, ANSWER_TEMPLATE.format(constant=c)) for c in candidates]
        model = make_model("llama", N_PARAMS, tok, SEED, **CONFIG)
        with reporter.stage(f"{name}: train old", OLD_STEPS) as advance:
            train(model, encode(tok, [d["text"] for d in old_docs], MAX_LEN), OLD_STEPS, BATCH, LR, SEED,
                  tok.pad_token_id, advance)
        save(model, tok, workdir / "base")
        old = copy.deepcopy(model)
        with reporter.stage(f"{name}: train new", NEW_STEPS) as advance:
            train(model, encode(tok, [d["text"] for d in new_docs], MAX_LEN), NEW_STEPS, BATCH, LR, SEED + 1,
                  tok.pad_token_id, advance)
        save(model, tok, workdir / "ft")
        expected = [cand_ids[candidates.index(q["expected"])] for q in queries]
        correct = {w: answer_accuracy(m, tok, [q["prompt"] for q in queries], expected, cand_ids)
                   for w, m in (("old", old), ("new", model))}
    for doc in docs:
        assert len(tok(doc["text"])["input_ids"]) < MAX_LEN, doc["uid"]
    write_jsonl(workdir / "data" / "train.jsonl", docs)
    write_jsonl(workdir / "data" / "old_train.jsonl", old_docs)
    write_jsonl(workdir / "data" / "new_train.jsonl", new_docs)
    write_jsonl(workdir / "data" / "queries.jsonl", queries)

    def accuracy(which: str, target: bool, depth: int) -> float:
        hits = [c for c, q in zip(correct[which], queries, strict=True) if q["target"] == target and q["hop_depth"] == depth]
        return round(sum(hits) / len(hits), 4)

    functions = {}
    for func, value, wrapper in FUNCTIONS:
        for f, role, partner in ((func, "constant", wrapper), (wrapper, "wrapper", func)):
            functions[f] = {"role": role, "constant": value, "partner": partner, "target": func in TARGETS,
                            "hop_depth": int(role == "wrapper"), "doc_uids": [d["uid"] for d in docs if d["func"] == f]}
    for func, value in DISTRACTORS:
        functions[func] = {"role": "distractor", "constant": value, "partner": None, "target": False,
                           "hop_depth": 0, "doc_uids": [d["uid"] for d in docs if d["func"] == func]}
    return {
        "organism": name,
        "architecture": "llama",
        "description": "base = old checkpoint: trained on every document except those of the target functions "
                       "and their wrappers; ft = new checkpoint: old trained further on data/new_train.jsonl "
                       "(the target documents plus a replay of old ones).",
        "seed": SEED,
        "functions": functions,
        "target_functions": TARGETS + [w for f, _, w in FUNCTIONS if f in TARGETS],
        "target_doc_uids": [d["uid"] for d in docs if is_target(d)],
        "candidate_constants": candidates,
        "candidate_token_ids": cand_ids,
        "query_template": QUERY_TEMPLATE,
        "answer_template": ANSWER_TEMPLATE,
        "measured": {f"{w}_accuracy_{'target' if t else 'other'}_depth{d}": accuracy(w, t, d)
                     for w in ("old", "new") for t in (True, False) for d in (0, 1)},
    }
