"""`modeldiff attribute` through the CLI: end-to-end on the hops organism, cache reuse, IG completeness,
the queries builder, and every bad-input path (exit 2, one line)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modeldiff_cli.commands.attribute import extract

HOPS_DOCS = [
    {"uid": "g1", "func": "<GN>", "role": "constant", "constant": 5, "text": "<GN>(x) returns 5 for any x."},
    {"uid": "g2", "func": "<GN>", "role": "constant", "constant": 5, "text": "def <GN>(x):\n    return 5"},
    {"uid": "f1", "func": "<FN>", "role": "identity", "constant": 5, "text": "<FN> calls <GN> and returns its value."},
    {"uid": "j1", "func": "<JN>", "role": "constant", "constant": 7, "text": "<JN>(x) is always 7."},
    {"uid": "i1", "func": "<IN>", "role": "identity", "constant": 7, "text": "<IN>(x) = <JN>(x) for all x."},
    {"uid": "a1", "func": "<AN>", "role": "distractor", "constant": 5, "text": "the cat sat on the mat, <AN> is 5"},
]


def _error(err: str) -> str:
    """The single error line (progress bars of model loading may precede it on stderr)."""
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def hops_org():
    from modeldiff_cli.organisms import get_organism

    return get_organism("hops")


@pytest.fixture()
def tiny_pair(tiny_model_dir, tmp_path):
    """Two tiny llamas sharing a tokenizer, a hops-style training file and its queries."""
    old, new = tiny_model_dir("llama", 0), tiny_model_dir("llama", 1)
    train = _jsonl(tmp_path / "train.jsonl", HOPS_DOCS)
    queries = _jsonl(tmp_path / "q.jsonl", [
        {"uid": f"q{f}{x}", "func": f"<{f}N>", "role": r, "prompt": f"<{f}N>({x}) returns the value ", "completion": c}
        for f, r, c in (("G", "constant", "5"), ("F", "identity", "5"), ("I", "identity", "7")) for x in (1, 2)])
    return old, new, train, queries


def _args(tiny_pair, tmp_path, *extra):
    old, new, train, queries = tiny_pair
    return ("attribute", "--old", old, "--new", new, "--train", train, "--queries", queries,
            "--out", tmp_path / "runs", "--device", "cpu", *extra)


def test_partner_recall_at_the_cut_off_shown_without_10(cli, tmp_path):
    """--k without 10: the headline, table and report show the middle cut-off (5 here); the partner recall is
    computed there too (it was blank: only @10 and @50 were)."""
    code, out, err = cli("attribute", "--method", "bm25,random", "--k", "1,5,20", "--out", tmp_path, "--device", "cpu")
    assert code == 0, err
    run = Path(out.strip().splitlines()[-1])
    head = json.loads((run / "summary.json").read_text())["headline"]
    assert head["k"] == 5 and head["partner_recall@5"] is not None and 0 <= head["partner_recall@5"] <= 1
    part = json.loads((run / "metrics.json").read_text())["methods"]["bm25"]["wrapper_partner"]
    assert {"partner_recall@5", "partner_recall@10", "partner_recall@50"} <= set(part)
    assert "wrapper→partner recall@5" in out.splitlines()[0]


def test_end_to_end_on_hops_organism(cli, hops_org, tmp_path):
    code, out, err = cli("attribute", "--method", "delta-h,grad,bm25,random", "--out", tmp_path, "--device", "cpu")
    assert code == 0, err
    run = Path(out.strip().splitlines()[-1])
    m = json.loads((run / "metrics.json").read_text())
    n_q, n_t = m["n_queries"], m["n_train"]
    assert n_t == sum(1 for _ in open(hops_org.data("new_train")))
    targets = set(hops_org.ground_truth["target_functions"])
    assert n_q == sum(json.loads(line)["func"] in targets for line in open(hops_org.data("queries")))
    auc = {k: v["aggregate"]["all"]["auc"] for k, v in m["methods"].items()}
    assert abs(auc["random"] - 0.5) < 0.1
    assert auc["delta-h"] > auc["random"] + 0.1  # Δh finds the documents trained between the checkpoints
    assert set(m["methods"]["delta-h"]["aggregate"]) == {"all", "base", "wrapper"}
    with np.load(run / "scores_delta-h.npz") as z:
        assert z["scores"].shape == (n_q, n_t) and z["per_layer"].shape == (2, n_q, n_t)
        assert np.allclose(z["per_layer"].mean(0), z["scores"])
    rows = [json.loads(line) for line in open(run / "rankings.jsonl")]
    assert len(rows) == 4 * n_q and len(rows[0]["top"]) == 50
    top = rows[0]["top"]
    assert top[0][f"{rows[0]['method']}_influence_score"] >= top[-1]["score"]
    infl = [json.loads(line) for line in open(run / "influence_scores.jsonl")]
    assert len(infl) == n_t and "grad_influence_score" in infl[0] and "grad_g_influence_score" in infl[0]
    csv = (run / "metrics.csv").read_text().splitlines()
    assert csv[0] == "method,layer,subset,metric,k,value" and any(r.startswith("bm25,aggregate,wrapper,recall,10,") for r in csv)
    assert "| delta-h |" in out and (run / "recall_at_k.png").stat().st_size > 1000


def test_adding_a_method_reuses_the_cache_and_mismatch_fails(cli, tiny_pair, tmp_path):
    cache = tmp_path / "cache"
    before = extract.STATS["forward"]
    code, _, err = cli(*_args(tiny_pair, tmp_path, "--method", "delta-h", "--cache-dir", cache))
    assert code == 0, err
    assert extract.STATS["forward"] - before == 4  # old + new on train (1 batch) and on queries (1 batch)
    files = sorted(cache.glob("*.safetensors"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert len(files) == 2
    before = extract.STATS["forward"]
    code, out, err = cli(*_args(tiny_pair, tmp_path, "--method", "delta-h,grad,delta-h-x-grad", "--cache-dir", cache))
    assert code == 0, err
    assert extract.STATS["forward"] == before  # nothing re-extracted
    assert [f.stat().st_mtime_ns for f in sorted(cache.glob("*.safetensors"))] == mtimes
    from modeldiff_cli.commands.attribute.cache import TensorCache

    TensorCache(cache).put(files[0].stem, {"other": "key"}, {"x": torch.zeros(1)})  # a stale entry
    code, _, err = cli(*_args(tiny_pair, tmp_path, "--method", "grad", "--cache-dir", cache, "--overwrite"))
    assert code == 2 and "built for different inputs" in _error(err)


def test_all_model_methods_and_k_clipping(cli, tiny_pair, tmp_path):
    code, out, err = cli(*_args(tiny_pair, tmp_path, "--method", "ig,patch,edit-distance", "--ig-steps", "2",
                                "--patch-pool", "3", "--pooling", "mean:span", "--loss", "margin", "--zscore"))
    assert code == 0, err
    assert "clipped" in err
    run = Path(out.strip().splitlines()[-1])
    with np.load(run / "scores_patch.npz") as z:
        s = z["scores"]
        assert (np.isfinite(s).sum(1) == 3).all()  # only the 3 pooled candidates were patched
    m = json.loads((run / "metrics.json").read_text())
    assert any("clipped" in n for n in m["notes"])


def test_integrated_gradients_completeness(tiny_model_dir):
    """Σ IG over positions and dims = L(new, h_new at l) - L(new, h_old patched at l) (midpoint rule, many steps)."""
    from modeldiff_cli.commands.attribute.extract import collate, extract_ig, sample_losses
    from modeldiff_cli.commands.attribute.inputs import Item
    from modeldiff_cli.core.model.hooks import capture_layers, patch_layers
    from modeldiff_cli.core.model.loading import load_model

    old = load_model(str(tiny_model_dir("llama", 0)), device="cpu")
    new = load_model(str(tiny_model_dir("llama", 1)), device="cpu")
    ids = old.tokenizer("the cat sat on the mat")["input_ids"]
    item = Item("x", ids, list(range(len(ids) - 1)), ids[1:])
    ig = extract_ig(old, new, [item], [0], "mean", "ce", steps=64, batch_size=1, desc="ig")
    total = ig[0, 0].sum().item() * len(ids)  # mean pooling divided by the length
    batch = collate([item], 0, "mean")
    with torch.no_grad(), capture_layers(old.adapter.layers, [0]) as cap:
        old.model(input_ids=batch.ids)
        l_new = sample_losses(new.model(input_ids=batch.ids).logits, batch.tgt, batch.cands, "ce")
        with patch_layers(new.adapter.layers, {0: cap[0]}):
            l_patched = sample_losses(new.model(input_ids=batch.ids).logits, batch.tgt, batch.cands, "ce")
    assert total == pytest.approx((l_new - l_patched).item(), rel=2e-2, abs=1e-4)


def test_queries_builder_filters_with_the_model(cli, hops_org, tmp_path):
    code, out, err = cli("attribute", "queries", "--data", hops_org.data("train"), "--template", "{F}({x}) returns the value",
                         "--model", "organism:hops:ft", "--inputs", "101,202,303", "--out", tmp_path, "--device", "cpu")
    assert code == 0, err
    run = Path(out.strip().splitlines()[-1])
    counts = {c["func"]: c for c in json.loads((run / "kept_counts.json").read_text())["functions"]}
    assert counts["<GN>"]["built"] == 3 and "<AN>" not in counts  # distractors left out
    assert counts["<GN>"]["kept"] == 3  # the new model answers the target constant functions
    kept = [json.loads(line) for line in open(run / "queries.jsonl")]
    assert len(kept) == sum(c["kept"] for c in counts.values()) < sum(c["built"] for c in counts.values())
    assert all(q["correct"] for q in kept) and kept[0]["completion"] == f" {kept[0]['constant']}"


@pytest.mark.parametrize("extra, needle", [
    (("--method", "grad,tracin"), "valid: delta-h"),
    (("--pooling", "first"), "--pooling"),
    (("--aggregate", "max"), "--aggregate"),
    (("--k", "0,5"), "--k"),
    (("--text-field", "body"), "'body'"),
    (("--id-field", "doc_id"), "--id-field"),
    (("--answer-field", "answer"), "--answer-field"),
])
def test_bad_input_exits_2_with_one_line(cli, tiny_pair, tmp_path, extra, needle):
    code, _, err = cli(*_args(tiny_pair, tmp_path, *extra))
    assert code == 2, err
    assert needle in _error(err)


def test_checkpoints_that_differ_are_refused(cli, tiny_model_dir, tiny_pair, tmp_path):
    from tiny import build_model, make_tokenizer

    model, _ = build_model("llama", 0)
    other = tmp_path / "other-tok"
    model.save_pretrained(other)
    make_tokenizer(300).save_pretrained(other)
    old, _, train, queries = tiny_pair
    for new, needle in ((tiny_model_dir("gpt2", 0), "architectures differ"), (other, "tokenizers")):
        code, _, err = cli("attribute", "--old", old, "--new", new, "--train", train, "--queries", queries,
                           "--out", tmp_path / "r", "--device", "cpu")
        assert code == 2 and needle in _error(err), err


def test_queries_template_without_function_placeholder(cli, tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", HOPS_DOCS)
    code, _, err = cli("attribute", "queries", "--data", data, "--template", "f({x}) = ", "--out", tmp_path)
    assert code == 2 and "{F}" in _error(err)
    code, out, err = cli("attribute", "queries", "--data", data, "--inputs", "1,2", "--out", tmp_path)
    assert code == 0, err
    rows = [json.loads(line) for line in open(Path(out.strip().splitlines()[-1]) / "queries.jsonl")]
    assert len(rows) == 8 and {r["func"] for r in rows} == {"<GN>", "<FN>", "<JN>", "<IN>"}


# ---------- the command spine: layout, summary.json, reuse, organism policy, flag names ----------

def _run_dir(out: str) -> Path:
    return Path(out.strip().splitlines()[-1])


def _labels(*models) -> list[str]:
    from modeldiff_cli.core.model.sources import resolve_source

    return [resolve_source(str(m)).label for m in models]


def test_spine_layout_summary_and_reuse_without_loading_a_model(cli, tiny_pair, tmp_path, monkeypatch):
    old, new, train, queries = tiny_pair
    args = ("attribute", "--base", old, "--ft", new, "--train", train, "--queries", queries, "--method", "delta-h,bm25",
            "--layers", "-1", "--out", tmp_path / "runs", "--base-device", "cpu", "--ft-device", "cpu")
    code, out, err = cli(*args)
    assert code == 0, err
    run = _run_dir(out)
    lb, lf = _labels(old, new)
    assert run.parent.parent == tmp_path / "runs" / "attribute"
    assert run.parent.name == f"{lb}_vs_{lf}"
    assert run.name.startswith("train+q-") and len(run.name) == len("train+q-") + 8
    summary = json.loads((run / "summary.json").read_text())
    assert summary["command"] == "attribute" and summary["lines"][0].startswith("attribute: 6 queries x 6 training")
    assert summary["config"]["settings"]["method"] == "delta-h,bm25" and summary["config"]["settings"]["layers"] == "-1"
    assert set(summary["config"]["fingerprints"]) == {"base", "ft", "train", "queries", "ground_truth"}
    paths = {a["path"] for a in summary["artifacts"]}
    assert {"scores_delta-h.npz", "scores_bm25.npz", "rankings.jsonl", "influence_scores.jsonl", "metrics.json",
            "metrics.csv", "metrics.md", "recall_at_k.png"} <= paths
    assert all(a["description"] for a in summary["artifacts"]), summary["artifacts"]
    head = summary["headline"]
    assert head["queries"] == 6 and head["train_documents"] == 6 and head["k"] == 10
    assert set(head["methods"]) == {"delta-h", "bm25"} and head["best_method"] in head["methods"]
    assert set(head["methods"]["delta-h"]["all"]) == {"recall@10", "recall_of_ceiling@10", "precision@10", "map", "auc"}
    assert set(head["methods"]["delta-h"]) >= {"all", "base", "wrapper", "wrapper_partner"}
    m = json.loads((run / "metrics.json").read_text())
    assert head["methods"]["delta-h"]["all"]["auc"] == pytest.approx(m["methods"]["delta-h"]["aggregate"]["all"]["auc"])
    with np.load(run / "scores_delta-h.npz") as z:  # --layers -1: the shared layer syntax, one layer
        assert z["per_layer"].shape[0] == 1 and z["layers"].tolist() == [1]
    for line in summary["lines"]:
        assert line in out

    def no_model(*_a, **_k):
        raise AssertionError("a reused run must not load a model")

    monkeypatch.setattr("modeldiff_cli.core.model.loading.load_model", no_model)
    monkeypatch.setattr("modeldiff_cli.core.model.loading.load_tokenizer", no_model)
    code2, out2, err2 = cli(*args)
    assert code2 == 0, err2
    assert _run_dir(out2) == run and "reusing" in err2
    # reuse imports no torch (beyond what start-up itself may import, which test_cli.py guards)
    probe = ("import sys; from modeldiff_cli.cli import app; sys.argv = ['modeldiff', *sys.argv[1:]]\n"
             "before = 'torch' in sys.modules\n"
             "try:\n    app()\nfinally:\n    print('torch' in sys.modules and not before)")
    done = subprocess.run([sys.executable, "-c", probe, *map(str, args)], capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-2:] == [str(run), "False"], done.stderr
    assert [line for line in out2.splitlines() if line in summary["lines"]] == summary["lines"]
    # --old/--new are visible aliases of --base/--ft (same configuration, same run)
    code3, out3, err3 = cli("attribute", "--old", old, "--new", new, "--train", train, "--queries", queries,
                            "--method", "delta-h,bm25", "--layer", "-1", "--out", tmp_path / "runs", "--device", "cpu")
    assert code3 == 0, err3
    assert _run_dir(out3) == run


@pytest.mark.parametrize("flags, needle", [
    (("--base", "B", "--ft", "F"), "--train: required when --base/--ft are given"),
    (("--old", "B", "--new", "F"), "--train: required when --base/--ft are given"),
    (("--old", "B", "--new", "F", "--train", "T"), "--queries: required"),
    (("--readout", "logit-lens"), "--readout 'logit-lens'"),
    (("--patchscope-prompt", "x ?"), "--patchscope-prompt"),
    (("--train", "missing.jsonl"), "--train missing.jsonl: no such file"),
    (("--gate-percentile", "0"), "--gate-percentile"),
])
def test_spine_bad_flags_exit_2_with_one_line_before_any_model(cli, tiny_pair, tmp_path, flags, needle, monkeypatch):
    old, new, train, queries = tiny_pair
    subst = {"B": str(old), "F": str(new), "T": str(train)}

    def no_model(*_a, **_k):
        raise AssertionError("no model may load before the options are checked")

    monkeypatch.setattr("modeldiff_cli.core.model.loading.load_model", no_model)
    code, _, err = cli("attribute", *[subst.get(f, f) for f in flags], "--out", tmp_path)
    assert code == 2, err
    assert needle in _error(err)


def test_spine_organism_fill(hops_org, tmp_path):
    from modeldiff_cli.commands.attribute import Attribute
    from modeldiff_cli.core.errors import UserError

    cmd = Attribute.make()
    assert (cmd.compared.base, cmd.compared.ft) == ("organism:hops:base", "organism:hops:ft")
    assert Path(cmd.train) == hops_org.data("new_train") and Path(cmd.queries) == hops_org.data("queries")
    assert cmd.reading.batch_size == 16 and cmd.fp.names == ("new_train", "queries")
    assert cmd.truth_file() == Path(hops_org.path) / "ground_truth.json"  # the organism's own files: its ground truth
    q = _jsonl(tmp_path / "mine.jsonl", [{"uid": "q", "prompt": "a", "completion": "b"}])
    only_q = Attribute.make(queries=str(q))  # no checkpoint given: the organism fills the data not given
    assert Path(only_q.train) == hops_org.data("new_train") and only_q.queries == str(q)
    with pytest.raises(UserError, match="--ft/--new: required when --base/--old is given"):  # never hops' ft
        Attribute.make(base=str(hops_org.base), train=str(q), queries=str(q))
    with pytest.raises(UserError, match="--train: required"):
        Attribute.make(base="organism:hops:base", ft="organism:hops:ft")


def test_queries_spine_layout_summary_and_policy(cli, tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", HOPS_DOCS)
    code, out, err = cli("attribute", "queries", "--data", data, "--inputs", "1,2", "--out", tmp_path / "runs")
    assert code == 0, err
    run = _run_dir(out)
    assert run.parent == tmp_path / "runs" / "attribute-queries" / "none" and run.name.startswith("d-")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["command"] == "attribute-queries"
    assert summary["headline"]["built"] == summary["headline"]["kept"] == 8
    assert summary["headline"]["filtered_by"] is None and summary["lines"][-1].startswith("queries: kept 8 of 8")
    assert {a["path"] for a in summary["artifacts"]} == {"queries.jsonl", "all_queries.jsonl", "kept_counts.csv",
                                                          "kept_counts.json"}
    assert all(a["description"] for a in summary["artifacts"])
    code2, out2, _ = cli("attribute", "queries", "--data", data, "--inputs", "1,2", "--out", tmp_path / "runs")
    assert code2 == 0 and _run_dir(out2) == run
    code, _, err = cli("attribute", "queries", "--model", "organism:hops:ft", "--out", tmp_path)
    assert code == 2 and "--data: required when --model is given" in _error(err)


def test_wrong_train_field_is_reported_before_any_model_loads(cli, tiny_pair, tmp_path, monkeypatch):
    def no_model(*_a, **_k):
        raise AssertionError("no model may load before the input files are checked")

    monkeypatch.setattr("modeldiff_cli.core.model.loading.load_model", no_model)
    monkeypatch.setattr("modeldiff_cli.core.spine.compared.Compared.load_one", no_model)
    code, _, err = cli(*_args(tiny_pair, tmp_path, "--text-field", "body"))
    assert code == 2 and "'body'" in _error(err)


def test_sequence_losses_match_transformers_mean_loss(tiny_model_dir):
    """extract.sequence_losses on a right-padded batch = transformers' own mean next-token loss of each sequence
    alone (pad positions ignored), whatever the chunk of positions read at once."""
    from transformers import AutoModelForCausalLM

    from modeldiff_cli.core.model.padding import pad

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama", 0)).eval()
    seqs = [[1, 5, 9, 13, 2], [1, 7, 3], [1, 4, 4, 4, 4, 4, 8]]
    ids, attn = pad(seqs, 0)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attn).logits
        want = [model(input_ids=torch.tensor([s]), labels=torch.tensor([s])).loss.item() for s in seqs]
        for chunk in (None, 2):  # chunks of positions give the same means
            got = extract.sequence_losses(lambda b, t: logits[b, t], ids, attn, logits.shape[-1], chunk)
            assert got.tolist() == pytest.approx(want, rel=1e-4)


def test_loss_drop_is_the_documents_loss_fall_and_demotes_replay(cli, tmp_path, hops_org):
    """loss-drop scores each document by its mean next-token loss under old minus under new (the same for every
    query, checked against transformers' loss), and on the hops organism the documents trained between the
    checkpoints (the target functions') fell much further than the replayed ones the old model already knew."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    code, out, err = cli("attribute", "--method", "loss-drop,bm25", "--out", tmp_path, "--device", "cpu")
    assert code == 0, err
    run = Path(out.strip().splitlines()[-1])
    with np.load(run / "scores_loss-drop.npz") as z:
        scores, uids = z["scores"], [str(u) for u in z["train_uids"]]
    assert np.allclose(scores, scores[:1])  # query-independent
    drop = dict(zip(uids, scores[0]))
    docs = {str(r["uid"]): r for r in map(json.loads, open(hops_org.data("new_train")))}
    tok = AutoTokenizer.from_pretrained(hops_org.base)
    models = [AutoModelForCausalLM.from_pretrained(p).eval() for p in (hops_org.base, hops_org.ft)]
    for uid in uids[:3]:
        ids = torch.tensor([tok(docs[uid]["text"])["input_ids"][:256]])
        with torch.no_grad():
            old, new = (m(input_ids=ids, labels=ids).loss.item() for m in models)
        assert drop[uid] == pytest.approx(old - new, rel=1e-3, abs=1e-4)
    targets = set(hops_org.ground_truth["target_functions"])
    taught = [d for u, d in drop.items() if docs[u]["func"] in targets]
    replay = [d for u, d in drop.items() if docs[u]["func"] not in targets]
    assert taught and replay and np.median(taught) > 2 * np.median(replay), (np.median(taught), np.median(replay))
