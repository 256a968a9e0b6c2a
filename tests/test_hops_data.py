"""On the real public hops data (../shared/data/hops, or $MODELDIFF_HOPS_DIR): `make test-slow` runs these."""

from __future__ import annotations

import json

import pytest

from modeldiff_cli.commands.attribute.baselines import bm25_scores
from modeldiff_cli.commands.attribute.ground_truth import build_truth, infer_functions
from modeldiff_cli.commands.attribute.inputs import read_table

pytestmark = [pytest.mark.slow, pytest.mark.hops_data]


def _records(path):
    rows = [json.loads(line) for line in open(path)]
    seen: dict[str, int] = {}
    for r in rows:  # the public files reuse uids across functions (the attribute command does the same)
        seen[r["uid"]] = seen.get(r["uid"], 0) + 1
        if seen[r["uid"]] > 1:
            r["uid"] = f"{r['uid']}#{seen[r['uid']]}"
    return rows


def test_real_hops_files_are_read_and_every_wrapper_finds_its_base(hops_data_dir):
    path = hops_data_dir / "20hops.jsonl"
    rows = read_table(path, "text", "uid", "--train")
    assert len(rows) == sum(1 for _ in open(path)) > 1000
    funcs = infer_functions(_records(path))
    bases = {f for f, info in funcs.items() if info["role"] == "base"}
    wrappers = {f for f, info in funcs.items() if info["role"] == "wrapper"}
    assert len(bases) == len(wrappers) == 10, funcs
    for f in wrappers:
        partner = funcs[f]["partner"]
        assert partner in bases and funcs[partner]["partner"] == f
        assert funcs[partner]["constant"] == funcs[f]["constant"]


def test_ground_truth_and_bm25_on_a_real_sample(hops_data_dir):
    train = _records(hops_data_dir / "20hops.jsonl")[:400]
    funcs = sorted({r["func"] for r in train})
    queries = [{"uid": f"q{i}", "func": f, "role": next(r["role"] for r in train if r["func"] == f)}
               for i, f in enumerate(funcs)]
    truth = build_truth(queries, train, [r["uid"] for r in train], None)
    assert truth.relevant.shape == (len(queries), len(train)) and truth.relevant.any(axis=1).all()
    scores = bm25_scores([q["func"].lower().split() for q in queries], [r["text"].lower().split() for r in train])
    assert scores.shape == truth.relevant.shape
    # a function's own name finds its documents: relevant documents score higher on average than the others
    own = (scores * truth.relevant).sum() / truth.relevant.sum()
    other = (scores * ~truth.relevant).sum() / (~truth.relevant).sum()
    assert own > other


def test_default_fusion_on_a_held_out_candidate_pool(hops_data_dir, tmp_path):
    """The issue-22 shaped benchmark on a held-out seed (tiny Llamas trained here, ~40 s): the default fusion with
    loss-drop beats the three-way fusion without it on wrapper recall@10 and BM25 on base recall@10."""
    import subprocess
    import sys
    from pathlib import Path

    from modeldiff_cli.commands.attribute.choices import BEST_FUSED

    root = Path(__file__).resolve().parents[1]
    methods = f"grad,bm25,trackstar,zfused:bm25+grad+trackstar,{BEST_FUSED}"
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "hops_attribution.py"), "--per-function", "20",
                           "--candidates-per-function", "5", "--max-train", "100", "--seed", "4", "--skip-organism",
                           "--out", str(tmp_path), "--methods", methods], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = next(p.parent for p in (tmp_path / "real-runs").rglob("metrics.json")
               if json.loads((p.parent / "run_metadata.json").read_text())["config"]["settings"]["aggregate"] == "mean")
    m = json.loads((run / "metrics.json").read_text())["methods"]

    def r10(method, kind):
        return m[method]["aggregate"][kind]["recall@10"]

    assert r10(BEST_FUSED, "wrapper") > r10("zfused:bm25+grad+trackstar", "wrapper")
    assert r10(BEST_FUSED, "base") >= r10("bm25", "base")
