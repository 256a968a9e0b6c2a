"""benchmarks/hops_attribution.py's candidate pool (--candidates-per-function) on hand-made records."""

from __future__ import annotations

import json

import pytest


def _bench():
    import importlib.util
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("hops_attribution", root / "benchmarks" / "hops_attribution.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("hops_attribution", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("seed", [0, 3])
def test_candidate_pool_keeps_k_documents_per_queried_function(tmp_path, seed):
    """The benchmark's --candidates-per-function: K documents of each queried function and of its partner, the
    rest filled with documents relevant to no query; never another document of a queried function."""
    from modeldiff_cli.commands.attribute.ground_truth import build_truth

    rows, queries = [], []
    for b, w, c in (("<GN>", "<FN>", 5), ("<JN>", "<IN>", 7)):
        rows += [{"uid": f"{b}{i}", "func": b, "role": "constant", "constant": c, "text": f"{b} {c}"} for i in range(8)]
        rows += [{"uid": f"{w}{i}", "func": w, "role": "identity", "constant": c, "text": f"{w} {b}"} for i in range(6)]
        queries += [{"uid": f"q{f}", "func": f, "role": r, "prompt": f"{f}(1) ", "completion": str(c)}
                    for f, r in ((b, "constant"), (w, "identity"))]
    rows += [{"uid": f"d{i}", "func": "<AN>", "role": "distractor", "constant": 5, "text": "<AN> 5"} for i in range(30)]
    train, qfile = tmp_path / "train.jsonl", tmp_path / "q.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    qfile.write_text("".join(json.dumps(q) + "\n" for q in queries))
    path, n, n_rel = _bench().subset(train, qfile, 30, tmp_path / "out", seed=seed, per_function=4)
    kept = [json.loads(line) for line in open(path)]
    assert n == len(kept) == 30 and n_rel == 16
    by = {}
    for r in kept:
        by[r["func"]] = by.get(r["func"], 0) + 1
    assert by == {"<GN>": 4, "<FN>": 4, "<JN>": 4, "<IN>": 4, "<AN>": 14}
    truth = build_truth(queries, kept, [r["uid"] for r in kept], None)
    assert (truth.relevant.sum(1) == 8).all()  # 4 own + 4 partner: recall@10 can reach 1

