"""`modeldiff interpret`: streaming means, dec_norm_diff, naming, bad input, cake and the planted-direction organism."""

from __future__ import annotations

import json

import pytest
import torch

FAST = ["--features", "3", "--causal-samples", "12", "--steps", "150", "--latents", "256", "--max-vectors", "4000",
        "--crosscoder-batch", "256", "--coder", "topk", "--random-directions", "32"]


def test_running_mean_matches_direct():
    from modeldiff_cli.commands.interpret.activations import RunningMean

    gen = torch.Generator().manual_seed(0)
    rows = [torch.randn(n, 5, generator=gen) * 3 + 1 for n in (7, 1, 13, 4)]
    m = RunningMean((2, 5))
    for r in rows:
        m.add((1,), r)
    assert torch.allclose(m.mean[1], torch.cat(rows).mean(0), atol=1e-5)
    assert int(m.count[1]) == 25 and torch.all(m.mean[0] == 0)


def test_dec_norm_share_on_hand_made_decoders():
    from modeldiff_cli.commands.interpret.crosscoder import dec_norm_share, side

    base = torch.tensor([0.0, 1.0, 1.0, 0.02])
    ft = torch.tensor([1.0, 0.0, 1.0, 1.0])
    share = dec_norm_share(base, ft)
    assert share[0] < 0.1 and share[3] < 0.1 and share[1] > 0.9 and abs(float(share[2]) - 0.5) < 0.1
    assert [side(float(s)) for s in share] == ["ft-only", "base-only", "shared", "ft-only"]


def test_naming_of_a_direction_aligned_with_an_unembedding_row():
    from modeldiff_cli.commands.interpret.directions import logit_lens
    from modeldiff_cli.commands.interpret.naming import feature_name, name_tokens
    from modeldiff_cli.core.models import load_pair

    pair = load_pair("organism:cake:base", "organism:cake:ft", device="cpu")
    tok = pair.tokenizer
    target = tok(" oven", add_special_tokens=False)["input_ids"][0]
    direction = pair.ft.model.lm_head.weight[target].detach().clone() * 20
    keep = torch.ones(pair.shared_vocab, dtype=torch.bool)
    lens = logit_lens(pair, direction, keep, 5)
    assert lens["promoted"][0] == target
    name = feature_name(tok, name_tokens(lens["promoted"], None, 1), "baking", "ft-only", 1)
    assert name == "oven - baking - ft-only - layer 1"


def _write(tmp_path, obj, name="cats.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


@pytest.mark.parametrize("content, needle", [
    ("[1, 2]", "JSON object"),
    ({"a": ["x"], "b": []}, "'b' is empty"),
    ({"a": ["x"], "b": [3]}, "non-string"),
    ("{not json", "malformed JSON"),
])
def test_bad_categories_file_exit_2(cli, tmp_path, content, needle):
    path = _write(tmp_path, content)
    code, _, err = cli("interpret", "--prompts", path, "--out", tmp_path / "runs")
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(path) in err and needle in err, err


def test_layer_out_of_range_exit_2(cli, tmp_path):
    code, _, err = cli("interpret", "--layers", "7", "--out", tmp_path / "runs", "--no-crosscoder")
    assert code == 2 and "--layers" in err and len(err.strip().splitlines()) == 1, err


def test_models_without_data_exit_2(cli, tmp_path):
    code, _, err = cli("interpret", "--base", "organism:cake:base", "--ft", "organism:cake:ft", "--out", tmp_path)
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err


@pytest.fixture(scope="module")
def cake_run(tmp_path_factory):
    from typer.testing import CliRunner

    from modeldiff_cli.cli import app

    out = tmp_path_factory.mktemp("interpret")
    res = CliRunner().invoke(app, ["interpret", "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    return out, res.stdout


def test_cake_layout_summary_and_planted_words(cake_run):
    from modeldiff_cli.organisms import get_organism

    out, stdout = cake_run
    run = next((out / "interpret").glob("*/*"))
    assert run.parent.name == "cake-base_vs_cake-ft" and run.name.startswith("categories_cake-")
    assert stdout.strip().splitlines()[-1] == str(run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["command"] == "interpret" and summary["headline"]["top_features"]
    assert all(a["description"] for a in summary["artifacts"])
    names = {a["path"] for a in summary["artifacts"]}
    assert {"features.json", "layer_category_diff.csv", "activation_stats.npz", "report.md", "report.html"} <= names
    html = (run / "report.html").read_text()
    assert "data:image/png;base64," in html and "http" not in html.replace("http-equiv", "")
    truth = get_organism("cake").ground_truth
    planted = {"Ġ" + w for w in truth["planted_words"]}
    planted_text = {" " + w for w in truth["planted_words"]}
    feats = json.loads((run / "features.json").read_text())["features"]
    top = feats[0]
    hits = len(set(top["tokens"][:10]) & planted_text)
    assert hits >= 4, (top["name"], top["tokens"][:10])
    assert max(top["categories"], key=top["categories"].get) == "baking"
    rel = json.loads((run / "token_relevance.json").read_text())["categories"]["baking"]
    assert {r["token"] for r in rel[:4]} <= planted_text, rel[:6]
    assert planted  # (ground truth holds byte-level spellings)


def test_reuse_prints_same_and_loads_no_model(cake_run, monkeypatch, cli):
    out, stdout = cake_run

    def boom(*a, **k):
        raise AssertionError("model loaded on a reused run")

    monkeypatch.setattr("modeldiff_cli.core.models.load_model", boom)
    code, again, _ = cli("interpret", "--out", out, *FAST)
    assert code == 0 and again.strip().splitlines() == stdout.strip().splitlines()


def test_direction_organism(tmp_path, cli):
    import numpy as np

    from modeldiff_cli.organisms import get_organism

    org = get_organism("direction")
    truth = org.ground_truth
    layer, v = truth["layer"], torch.tensor(truth["v"])
    code, stdout, err = cli("interpret", "--base", "organism:direction:base", "--ft", "organism:direction:ft",
                            "--data", org.data("baking"), "--data", org.data("everyday"), "--out", tmp_path,
                            "--crosscoder-layers", str(layer), "--features", "3", "--causal-samples", "12",
                            "--coder", "topk", "--random-directions", "32", "--crosscoder-batch", "256",
                            "--max-vectors", "6000", "--latents", "32", "--k", "16", "--steps", "300", "--lr", "3e-3")
    assert code == 0, err
    run = next((tmp_path / "interpret").glob("*/*"))
    stats = np.load(run / "activation_stats.npz")
    cats = list(stats["categories"])
    li = list(stats["layers"]).index(layer)
    trig = cats.index(truth["trigger_category"])
    diff = torch.tensor(stats["mean_diff"][li, trig])
    assert torch.nn.functional.cosine_similarity(diff, v, dim=0) > 0.9
    norms = stats["relative_norm"][li]
    assert int(norms.argmax()) == trig
    feats = json.loads((run / "features.json").read_text())["features"]
    cc = np.load(run / f"crosscoder_layer{layer}.npz")
    W = torch.tensor(cc["W_dec"])
    d = v.shape[0]
    rms = cc["rms"]
    dirs = W[:, d:] * float(rms[1]) - W[:, :d] * float(rms[0])
    cos = torch.nn.functional.cosine_similarity(dirs, v.unsqueeze(0), dim=1)
    ft_only = torch.tensor(cc["share"]) < 0.1
    assert bool((ft_only & (cos > 0.9)).any()), (float(cos.max()), cc["share"][int(cos.argmax())])
    planted = set(torch.nonzero(ft_only & (cos > 0.9)).flatten().tolist())
    latent = [f for f in feats if f["kind"] == "latent" and f["latent"] in planted]
    assert latent and latent[0]["side"] == "ft-only", [(f["name"], f.get("latent")) for f in feats]
    assert latent[0]["causal"]["z"] > 3 and latent[0]["causal"]["restored"] > 0.5, latent[0]["causal"]
    on_v = [f for f in feats if f["layer"] == layer and f["kind"] == "direction" and f["source_category"] == "baking"]
    assert on_v and on_v[0]["causal"]["z"] > 3 and on_v[0]["causal"]["restored"] > 0.5, on_v
