"""`modeldiff nll`: identities (last layer = the model's cross-entropy, JS(A, A) = 0, precomputed hidden states =
a forward), pairs parsing, bad input (one line, exit 2), end-to-end files, recovery on `hops`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modeldiff_cli.commands.nll.score import item_views
from modeldiff_cli.core.data.pairs import PairFields, parse_pair
from modeldiff_cli.core.errors import UserError


def run_dir(tmp_path, out: str):
    return tmp_path / "runs" / out.strip().splitlines()[-1].split("/runs/")[-1]


def assert_one_line_error(err: str, message: str) -> None:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == errors[0]


@pytest.fixture()
def model_dir(tiny_model_dir):
    return tiny_model_dir("llama", 0)


A = [5, 20, 30, 40, 50, 60, 70]
B = [5, 21, 30, 41, 52, 60, 70, 80]


@pytest.fixture()
def pairs_file(tmp_path):
    recs = [
        {"id": "x1", "a_ids": A, "b_ids": B, "a_positions": [2, 4, 6], "b_positions": [2, 5, 7]},
        {"id": "x2", "a_ids": "the cat sat on the mat", "b_ids": "the dog sat on the mat"},
        {"id": "x3", "a_ids": A, "b_ids": A},
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_item_views_all_and_last():
    values = torch.tensor([[1.0, 3.0, 5.0, 7.0], [0.0, 1.0, float("nan"), 2.0]])  # [layers 2, positions 4]
    item = torch.tensor([0, 0, 1, 1])
    last = torch.tensor([False, True, False, True])
    mean_all, last_vals, sums, counts = item_views(values, item, last, 3)
    assert mean_all[:2].tolist() == [[2.0, 0.5], [6.0, 2.0]]  # NaN entries are left out of the mean
    assert last_vals[:2].tolist() == [[3.0, 1.0], [7.0, 2.0]]
    assert torch.isnan(mean_all[2]).all() and counts[:, 1].tolist() == [2, 1, 0]


def test_parse_pair_validation():
    f, tok = PairFields(), None
    item = parse_pair({"id": "q", "a_ids": A, "b_ids": B, "a_positions": [1, 6], "b_positions": [1, 7]}, "f:1", tok, f, 100, "1")
    assert (item.id, item.a_positions, item.b_positions) == ("q", [1, 6], [1, 7])
    cases = [
        ({"a_ids": A, "b_ids": B, "a_positions": [1, 7], "b_positions": [1, 2]}, "position 7 is out of range"),
        ({"a_ids": A, "b_ids": B, "a_positions": [0], "b_positions": [1]}, "position 0 is out of range"),
        ({"a_ids": A, "b_ids": B, "a_positions": [1, 2], "b_positions": [1]}, "positions misaligned"),
        ({"a_ids": A, "b_ids": B, "a_positions": [1]}, "give both"),
        ({"a_ids": A, "b_ids": B}, "differ in length"),
        ({"a_ids": A}, "no field 'b_ids'"),
        ({"a_ids": [1, "x"], "b_ids": B}, "list of token ids"),
        ({"a_ids": [1, 500], "b_ids": B}, "outside the vocabulary"),
        ({"a_ids": A, "b_ids": B, "a_positions": "1", "b_positions": [1]}, "list of integer positions"),
    ]
    for obj, message in cases:
        with pytest.raises(UserError, match=message) as info:
            parse_pair(obj, "f.jsonl:3", tok, f, 100, "3")
        assert str(info.value).startswith("f.jsonl:3: ")


def _ce(model, ids, positions):
    """The model's own cross-entropy of the targets at ``positions`` (F.cross_entropy on its logits)."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    pos = torch.tensor(positions)
    return F.cross_entropy(logits[pos - 1], torch.tensor(ids)[pos], reduction="none")


def test_pairs_identities_and_hidden_states_roundtrip(model_dir, pairs_file, tmp_path, cli):
    from modeldiff_cli.core.model.loading import load_model

    code, out, err = cli("nll", "--model", model_dir, "--pairs", pairs_file, "--js-mode", "all", "--chunk-size", "2",
                         "--batch-size", "2", "--save-hidden-states", "--out", tmp_path / "runs", "--device", "cpu")
    assert code == 0, err
    run = run_dir(tmp_path, out)
    hs = run / "hidden_states"  # written inside the run directory, before it closed
    m = np.load(run / "nll_matrices.npz")
    assert m["item_ids"].tolist() == ["x1", "x2", "x3"] and m["nll_a_all"].shape == (3, 2)
    loaded = load_model(str(model_dir), device="cpu")
    tok = loaded.tokenizer
    b2 = tok("the dog sat on the mat")["input_ids"]
    # identity: last-layer NLL = the model's cross-entropy on the same targets (per item, both views)
    ce_a1, ce_b1 = _ce(loaded.model, A, [2, 4, 6]), _ce(loaded.model, B, [2, 5, 7])
    assert m["nll_a_all"][0, -1] == pytest.approx(ce_a1.mean().item(), rel=1e-5)
    assert m["nll_b_all"][0, -1] == pytest.approx(ce_b1.mean().item(), rel=1e-5)
    assert m["nll_b_last"][0, -1] == pytest.approx(ce_b1[-1].item(), rel=1e-5)
    ce_b2 = _ce(loaded.model, b2, list(range(1, len(b2))))
    assert m["nll_b_all"][1, -1] == pytest.approx(ce_b2.mean().item(), rel=1e-5)
    assert m["nll_a_all"][1, 0] != pytest.approx(m["nll_a_all"][1, -1], rel=1e-3)  # layer 0 is a real lens
    # identity: a condition against itself has JS 0 and equal NLL at every layer
    assert np.abs(m["js_all"][2]).max() < 1e-6 and np.array_equal(m["nll_a_all"][2], m["nll_b_all"][2])
    assert (m["js_all"][0] > 0).all()
    rows = (run / "nll_layer_metrics.csv").read_text().splitlines()
    assert rows[0].startswith("layer,nll_a_all,nll_b_all,delta_all") and len(rows) == 3
    summary = json.loads((run / "nll_summary.json").read_text())
    a2 = tok("the cat sat on the mat")["input_ids"]
    pooled_a = torch.cat([ce_a1, _ce(loaded.model, a2, list(range(1, len(a2)))), _ce(loaded.model, A, list(range(1, 7)))])
    assert summary["last_layer"]["nll_a_all"] == pytest.approx(pooled_a.mean().item(), rel=1e-5)
    assert summary["last_layer"]["logp_a_all"] == pytest.approx(-summary["last_layer"]["nll_a_all"])
    assert summary["scored_positions"] == 3 + (len(a2) - 1) + 6
    for png in ("nll_curves.png", "nll_delta.png", "logit_lens_curves.png", "js_curves.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG"
    # precomputed hidden states give the same matrices, with only the final norm and lm_head loaded
    assert sorted(p.name for p in hs.iterdir()) == ["x1.npz", "x2.npz", "x3.npz"]
    saved = np.load(hs / "x1.npz")
    assert saved["a"].shape == (2, len(A), 32) and saved["b"].shape == (2, len(B), 32)
    artifacts = {a["path"]: a for a in json.loads((run / "summary.json").read_text())["artifacts"]}
    assert artifacts["hidden_states/x1.npz"]["kind"] == "matrix" and artifacts["hidden_states/x1.npz"]["description"]
    code, out, err = cli("nll", "--model", model_dir, "--pairs", pairs_file, "--hidden-states-dir", hs, "--js-mode", "all",
                         "--out", tmp_path / "runs", "--device", "cpu")
    assert code == 0, err
    run2 = run_dir(tmp_path, out)
    assert run2.name.startswith("pairs-hidden-") and run2.parent == run.parent
    m2 = np.load(run2 / "nll_matrices.npz")
    for key in ("nll_a_all", "nll_b_last", "js_all", "top1_a_all"):
        np.testing.assert_allclose(m2[key], m[key], rtol=1e-5, atol=1e-6)
    h1, h2 = (json.loads((r / "summary.json").read_text())["headline"] for r in (run, run2))
    for key in ("nll_a", "nll_b", "delta", "nll_a_last", "nll_b_last", "delta_last", "js_all", "js_last"):
        assert h2[key] == pytest.approx(h1[key], rel=1e-5, abs=1e-6)


def test_head_only_loading(model_dir):
    from modeldiff_cli.core.model.head import load_head
    from modeldiff_cli.core.model.loading import load_model, resolve_source
    from modeldiff_cli.core.model.readout import readout

    head = load_head(resolve_source(str(model_dir)), device="cpu")
    assert head.adapter.layers[0].self_attn.q_proj.weight.is_meta  # decoder layers never materialised
    full = load_model(str(model_dir), device="cpu")
    h = torch.randn(4, 32)
    torch.testing.assert_close(readout(head.adapter, h), readout(full.adapter, h))


def test_two_models_on_data_last_layer_is_cross_entropy(tiny_model_dir, tmp_path, cli):
    from modeldiff_cli.core.model.loading import load_pair

    base, ft = tiny_model_dir("llama", 0), tiny_model_dir("llama", 1)
    data = tmp_path / "qa.jsonl"
    recs = [{"prompt": "the cat sat on", "completion": " the mat"}, {"prompt": "hello", "completion": " world, this is"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in recs))
    code, out, err = cli("nll", "--base", base, "--ft", ft, "--data", data, "--js-mode", "last", "--out", tmp_path / "runs",
                         "--device", "cpu")
    assert code == 0, err
    run = run_dir(tmp_path, out)
    m = np.load(run / "nll_matrices.npz")
    pair = load_pair(str(base), str(ft), device="cpu")
    tok = pair.tokenizer
    for i, r in enumerate(recs):
        enc = tok(r["prompt"] + r["completion"], return_offsets_mapping=True)
        pos = [p for p, (a, b) in enumerate(enc["offset_mapping"]) if b > len(r["prompt"]) and b > a]
        assert pos and pos[0] >= 1
        assert m["nll_a_all"][i, -1] == pytest.approx(_ce(pair.base.model, enc["input_ids"], pos).mean().item(), rel=1e-5)
        assert m["nll_b_last"][i, -1] == pytest.approx(_ce(pair.ft.model, enc["input_ids"], pos)[-1].item(), rel=1e-5)
    assert np.isfinite(m["js_last"]).all() and "js_all" in m.files
    summary = json.loads((run / "nll_summary.json").read_text())
    assert summary["labels"] == {"a": "base", "b": "ft"} and summary["last_layer"]["js_all"] is None
    assert summary["last_layer"]["delta_all"] == pytest.approx(summary["last_layer"]["nll_b_all"] - summary["last_layer"]["nll_a_all"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "{model}", "--pairs", "{missing}"], "no such file"),
        (["--model", "{model}", "--pairs", "{bad_json}"], "bad.jsonl:2: malformed JSON"),
        (["--model", "{model}", "--pairs", "{bad_pos}"], "pos.jsonl:1: 'a_positions' position 9 is out of range"),
        (["--model", "{model}", "--pairs", "{misaligned}"], "mis.jsonl:1: positions misaligned"),
        (["--model", "{model}", "--pairs", "{good}", "--hidden-states-dir", "{hs_missing_b}"], "missing condition 'b'"),
        (["--model", "{model}", "--pairs", "{good}", "--hidden-states-dir", "{hs_empty}"], "no file x1.safetensors or x1.npz"),
        (["--model", "{model}", "--pairs", "{good}", "--hidden-states-dir", "{missing}"], "no such directory"),
        (["--base", "{model}", "--ft", "{model}", "--hidden-states-dir", "{hs_empty}"], "--hidden-states-dir needs --pairs"),
        (["--model", "{model}", "--pairs", "{good}", "--js-mode", "some"], "--js-mode 'some'"),
        (["--base", "{model}", "--ft", "{model}", "--data", "{missing}"], "no such file"),
        (["--base", "{model}", "--ft", "{model}", "--data", "{bad_json}"], "bad.jsonl:2: malformed JSON"),
    ],
)
def test_nll_bad_input(model_dir, tmp_path, cli, args, message):
    files = {
        "bad_json": ("bad.jsonl", '{"a_ids": [1, 2], "b_ids": [1, 2], "text": "a b"}\n{oops\n'),
        "bad_pos": ("pos.jsonl", json.dumps({"a_ids": A, "b_ids": B, "a_positions": [9], "b_positions": [1]}) + "\n"),
        "misaligned": ("mis.jsonl", json.dumps({"a_ids": A, "b_ids": B, "a_positions": [1, 2], "b_positions": [1]}) + "\n"),
        "good": ("good.jsonl", json.dumps({"id": "x1", "a_ids": A, "b_ids": A}) + "\n"),
    }
    subs = {"model": model_dir, "missing": tmp_path / "nope"}
    for key, (name, text) in files.items():
        (tmp_path / name).write_text(text)
        subs[key] = tmp_path / name
    (tmp_path / "hs_empty").mkdir()
    (tmp_path / "hs_b").mkdir()
    np.savez(tmp_path / "hs_b" / "x1.npz", a=np.zeros((2, 7, 32), dtype=np.float32))
    subs.update(hs_empty=tmp_path / "hs_empty", hs_missing_b=tmp_path / "hs_b")
    args = [a.format(**subs) for a in args]
    code, out, err = cli("nll", *args, "--out", tmp_path / "runs", "--device", "cpu")
    assert code == 2, (out, err)
    assert_one_line_error(err, message)


def _organism(name):
    """A broken or missing organism fails the test (ImportError, KeyError), it never skips it."""
    from modeldiff_cli.organisms import get_organism

    return get_organism(name)


def test_nll_hops_new_checkpoint_predicts_target_answers(tmp_path, cli):
    """On `hops`, the new checkpoint (ft) gives the target functions' answers a lower last-layer NLL."""
    org = _organism("hops")
    code, out, err = cli("nll", "--base", org.base, "--ft", org.ft, "--data", org.data("queries"), "--id-field", "uid",
                         "--label-a", "old", "--label-b", "new", "--out", tmp_path / "runs", "--device", "cpu")
    assert code == 0, err
    m = np.load(run_dir(tmp_path, out) / "nll_matrices.npz")
    queries = [json.loads(x) for x in org.data("queries").read_text().splitlines() if x.strip()]
    assert m["item_ids"].tolist() == [q["uid"] for q in queries]
    assert m["n_positions"].tolist() == [1] * len(queries)  # one answer token per query (" 7" is one token)
    # answers of the target functions themselves (hop depth 0; their wrappers need a second hop)
    functions = org.ground_truth["functions"]
    target = np.array([q["func"] in org.ground_truth["target_functions"] and functions[q["func"]]["role"] == "constant"
                       for q in queries])
    assert target.any() and (~target).any()
    old, new = m["nll_a_last"][:, -1], m["nll_b_last"][:, -1]
    assert new[target].mean() < old[target].mean() - 0.5, (new[target].mean(), old[target].mean())
    assert (new[target] < old[target]).mean() >= 0.8


def test_bfloat16_model_accumulates_in_float32(model_dir, pairs_file, tmp_path, cli):
    """A bfloat16 model gives float32 matrices close to the float32 run (statistics never in half precision)."""
    runs = {}
    for dtype in ("float32", "bfloat16"):
        code, out, err = cli("nll", "--model", model_dir, "--pairs", pairs_file, "--dtype", dtype, "--js-mode", "all",
                             "--out", tmp_path / "runs", "--device", "cpu")
        assert code == 0, err
        runs[dtype] = np.load(run_dir(tmp_path, out) / "nll_matrices.npz")
    assert runs["bfloat16"]["nll_a_all"].dtype == np.float32
    np.testing.assert_allclose(runs["bfloat16"]["nll_a_all"], runs["float32"]["nll_a_all"], atol=0.05)
    assert not np.array_equal(runs["bfloat16"]["nll_a_all"], runs["float32"]["nll_a_all"])  # really ran in bf16


# ---------------------------------------------------------------- the command spine


def _label(path) -> str:
    from modeldiff_cli.core.model.sources import resolve_source

    return resolve_source(str(path)).label


def _no_model_load(monkeypatch):
    from modeldiff_cli.core.model import loading as models

    def refuse(*args, **kwargs):
        raise AssertionError("a reused run must not load a model")

    monkeypatch.setattr(models, "load_model", refuse)
    monkeypatch.setattr(models, "load_pair", refuse)


def test_run_layout_summary_and_reuse_both_modes(tiny_model_dir, pairs_file, tmp_path, cli, monkeypatch):
    base, ft = tiny_model_dir("llama", 0), tiny_model_dir("llama", 1)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["the cat sat on the mat", "hello world"]))
    runs = tmp_path / "runs"
    two = ["nll", "--base", base, "--ft", ft, "--data", data, "--js-mode", "all", "--out", runs, "--device", "cpu"]
    one = ["nll", "--model", base, "--pairs", pairs_file, "--js-mode", "last", "--out", runs, "--device", "cpu"]
    first = {}
    for name, args in (("models", two), ("pairs", one)):
        code, out, err = cli(*args)
        assert code == 0, err
        run = run_dir(tmp_path, out)
        first[name] = out
        labels = f"{_label(base)}_vs_{_label(ft)}" if name == "models" else _label(base)
        leaf = "d-models-" if name == "models" else "pairs-pairs-"
        assert run.parent == runs / "nll" / labels and run.name.startswith(leaf) and len(run.name) == len(leaf) + 8
        summary = json.loads((run / "summary.json").read_text())
        assert summary["command"] == "nll" and summary["config"]["settings"]["js_mode"] == ("all" if name == "models" else "last")
        assert {"settings", "fingerprints"} <= set(summary["config"])
        head = summary["headline"]
        assert head["mode"] == name and head["layer"] == 1
        assert head["delta"] == pytest.approx(head["nll_b"] - head["nll_a"])
        last = json.loads((run / "nll_summary.json").read_text())["last_layer"]
        assert (head["nll_a"], head["nll_b"], head["nll_a_last"]) == (last["nll_a_all"], last["nll_b_all"], last["nll_a_last"])
        assert ("js_all" in head) == (name == "models") and "js_last" in head
        assert summary["lines"] and summary["lines"][0] in out and out.strip().splitlines()[-1] == str(run)
        paths = {a["path"] for a in summary["artifacts"]}
        assert {"nll_layer_metrics.csv", "nll_matrices.npz", "nll_summary.json", "nll_curves.png", "js_curves.png"} <= paths
        assert all(a["description"] and a["kind"] for a in summary["artifacts"])
    # the same commands again: reused (same lines, same directory), no model loaded
    _no_model_load(monkeypatch)
    for name, args in (("models", two), ("pairs", one)):
        code, out, err = cli(*args)
        assert code == 0, err
        assert out == first[name] and "reusing" in err


def test_default_organism_and_mode_rules(cli, tmp_path, pairs_file):
    from modeldiff_cli.commands.nll.command import Nll
    from modeldiff_cli.organisms import get_organism

    cmd = Nll.make()  # no model: the cake organism's base and ft, on its base data
    assert (cmd.compared.base, cmd.compared.ft) == ("organism:cake:base", "organism:cake:ft")
    assert cmd.data.data == (str(get_organism("cake").data("base")),) and cmd.mode == "models"
    assert cmd.data.max_tokens == 256  # the shared default
    cmd = Nll.make(pairs=pairs_file)  # --pairs alone: one model, the organism's ft
    assert cmd.compared.model == "organism:cake:ft" and cmd.compared.base is None and cmd.mode == "pairs"
    assert cmd.fp.labels == ("cake-ft",)
    code, out, err = cli("nll", "--max-samples", "2", "--out", tmp_path / "runs", "--device", "cpu")
    assert code == 0, err
    run = run_dir(tmp_path, out)
    assert run.parts[-3:-1] == ("nll", "cake-base_vs_cake-ft") and run.name.startswith("base-models-")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--base", "{model}", "--ft", "{model}"], "--data: required when --base/--ft are given"),
        (["--base", "{model}"], "--ft: required when --base is given"),
        (["--model", "{model}"], "--pairs: required when --model is given"),
        (["--model", "{model}", "--data", "{pairs}"], "--pairs: required when --model is given"),
        (["--pairs", "{pairs}", "--data", "{pairs}"], "--data goes with --base/--ft; with --model the conditions are --pairs"),
        (["--base", "{model}", "--ft", "{model}", "--pairs", "{pairs}"], "--base/--ft go with --data"),
        (["--base", "{model}", "--ft", "{model}", "--data", "{pairs}", "--save-hidden-states"], "--save-hidden-states works with --model and --pairs"),
        (["--model", "{model}", "--pairs", "{pairs}", "--hidden-states-dir", "{pairs_dir}", "--save-hidden-states"], "--save-hidden-states writes"),
    ],
)
def test_nll_mode_errors_are_one_line(model_dir, pairs_file, tmp_path, cli, args, message):
    subs = {"model": model_dir, "pairs": pairs_file, "pairs_dir": pairs_file.parent}
    code, out, err = cli("nll", *[a.format(**subs) for a in args], "--out", tmp_path / "runs", "--device", "cpu")
    assert code == 2, (out, err)
    assert_one_line_error(err, message)
    assert not (tmp_path / "runs").exists()  # refused before any run directory


def test_checkpointed_run_interrupted_then_resumed_equals_uninterrupted(tmp_path, cli, monkeypatch, request):
    """--checkpoint-every 2 on 5 batches: interrupted in the 4th, resumed after the 2nd checkpointed one (the
    float64 pooled sums and the per-item matrices restored), byte-identical to a run without the flag."""
    from resume_check import Calls, cheap, interrupted_then_resumed

    from modeldiff_cli.commands.nll import pipeline

    args = ["nll", "--max-samples", "5", "--batch-size", "1", "--js-mode", "all", "--device", "cpu"]
    cheap(monkeypatch, request)
    calls = Calls(monkeypatch, pipeline, "forward_layers")  # two forwards (A, B) per batch
    # stopped in the 4th batch, resumed after the 2nd: batches 3, 4, 5 run again
    _, _, same = interrupted_then_resumed(cli, tmp_path, args, 2, calls, stop_at=7, resumed_calls=2 * 3)
    assert {"nll_layer_metrics.csv", "nll_matrices.npz", "nll_summary.json"} <= same
