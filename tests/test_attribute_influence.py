"""The classical influence baselines of `modeldiff attribute` (the optional extra modeldiff[influence]):
Bergson's gradient similarity against explicit per-example gradients, Kronfluence's EK-FAC through the CLI,
the missing-extra error, and --help without their imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modeldiff_cli.commands.attribute.inputs import Item
from modeldiff_cli.core.errors import UserError


def _items():
    return [Item("a", [3, 9, 12, 7, 5], [0, 1, 2, 3], [9, 12, 7, 5]),
            Item("b", [4, 8, 8, 20], [2], [20]),
            Item("c", [11, 6, 14, 9, 30, 2], [1, 2, 3, 4], [14, 9, 30, 2])]


def test_trackstar_matches_explicit_per_example_gradients(tmp_path):
    pytest.importorskip("bergson")
    from tiny import build_model

    from modeldiff_cli.commands.attribute.influence import bergson_gradients

    model, _ = build_model("llama", 0)  # 2 decoder layers
    model = model.float().eval()
    items = _items()
    got, _ = bergson_gradients(model, items, 0, 0, tmp_path / "bergson")
    direct = []
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]  # lm_head included
    for it in items:
        ids = torch.tensor([it.ids])
        logits = model(input_ids=ids).logits[0]
        loss = torch.nn.functional.cross_entropy(logits[it.loss_pos], torch.tensor(it.targets))
        grads = torch.autograd.grad(loss, [m.weight for m in linears])
        direct.append(torch.cat([g.flatten() for g in grads]))
    direct = torch.stack(direct)
    assert got.shape == direct.shape
    cos = lambda x: (x / x.norm(dim=1, keepdim=True)) @ (x / x.norm(dim=1, keepdim=True)).T  # noqa: E731
    assert torch.allclose(cos(got.double()), cos(direct.double()), atol=1e-4)
    assert torch.allclose(got.norm(dim=1).double(), direct.norm(dim=1).double(), rtol=1e-3)


def test_batched_bergson_gradients_equal_one_item_batches(tmp_path):
    """Items of different lengths in one Bergson batch (right-padded): one forward, and the same per-item gradients
    and autocorrelations as Bergson's default of one item per batch."""
    pytest.importorskip("bergson")
    from tiny import build_model

    from modeldiff_cli.commands.attribute.influence import bergson_gradients

    model, _ = build_model("llama", 0)
    model = model.float().eval()
    shapes = []
    hook = model.register_forward_pre_hook(lambda m, a, kw: shapes.append(tuple(kw.get("input_ids", a[0] if a else None).shape)), with_kwargs=True)
    one, _, p1 = bergson_gradients(model, _items(), 4, 0, tmp_path / "one", True, batch_size=1)
    n_one = len(shapes)
    many, _, p3 = bergson_gradients(model, _items(), 4, 0, tmp_path / "many", True, batch_size=3)
    hook.remove()
    assert n_one == 3 and shapes[n_one:] == [(3, 6)]
    assert torch.allclose(one, many, atol=1e-5, rtol=1e-4)
    for name in p1.hessians:
        assert torch.allclose(p1.hessians[name], p3.hessians[name], atol=1e-5, rtol=1e-4)


def test_trackstar_both_checkpoints_is_the_mean_of_each(tmp_path):
    """--trackstar-checkpoint both = the mean of the old and the new checkpoint's TrackStar scores (projection
    seeds seed and seed + 1, as Bergson's TRAK ensembles checkpoints); the record names both and their λ."""
    pytest.importorskip("bergson")
    from types import SimpleNamespace

    from tiny import build_model

    from modeldiff_cli.commands.attribute.influence import trackstar_scores

    old = SimpleNamespace(model=build_model("llama", 0)[0].float().eval())
    new = SimpleNamespace(model=build_model("llama", 1)[0].float().eval())
    items = _items()
    both, rec = trackstar_scores([("old", old), ("new", new)], items, items[:2], 4, 7, tmp_path, batch_size=2)
    s_old, r_old = trackstar_scores([("old", old)], items, items[:2], 4, 7, tmp_path, batch_size=2)
    s_new, _ = trackstar_scores([("new", new)], items, items[:2], 4, 8, tmp_path, batch_size=2)
    assert both.shape == (2, 3) and not np.allclose(s_old, s_new)
    assert np.allclose(both, (s_old + s_new) / 2, atol=1e-6)
    assert rec["checkpoint"] == "old+new" and rec["projection_seed"] == {"old": 7, "new": 8}
    assert rec["lambda"]["old"] == pytest.approx(r_old["lambda"]["old"]) and rec["damping"] == 10.0


def test_missing_extra_names_it(monkeypatch):
    import importlib.util

    from modeldiff_cli.commands.attribute import influence

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"modeldiff\[influence\]") as err:
        influence.require("ekfac")
    assert "kronfluence" in str(err.value) and "\n" not in str(err.value)
    influence.require("grad")  # not a library method: nothing to check


def test_help_imports_no_influence_library():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom modeldiff_cli.cli import app\n"
            "r = CliRunner().invoke(app, ['attribute', '--help'])\nassert r.exit_code == 0, r.output\n"
            "print(sorted(m for m in ('kronfluence', 'bergson', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_ekfac_trackstar_fused_and_best_layer_through_the_cli(cli, tiny_model_dir, tmp_path):
    pytest.importorskip("kronfluence")
    pytest.importorskip("bergson")
    from test_attribute_cli import HOPS_DOCS, _jsonl

    train = _jsonl(tmp_path / "train.jsonl", HOPS_DOCS)
    queries = _jsonl(tmp_path / "q.jsonl", [
        {"uid": f"q{f}{x}", "func": f"<{f}N>", "role": r, "prompt": f"<{f}N>({x}) returns the value ", "completion": c}
        for f, r, c in (("G", "constant", "5"), ("F", "identity", "5"), ("I", "identity", "7"), ("J", "constant", "7"))
        for x in (1, 2)])
    code, out, err = cli("attribute", "--old", tiny_model_dir("llama", 0), "--new", tiny_model_dir("llama", 1),
                         "--train", train, "--queries", queries, "--out", tmp_path / "runs", "--device", "cpu",
                         "--method", "grad,bm25,ekfac,trackstar,fused:bm25+grad,zfused:bm25+ekfac",
                         "--aggregate", "best", "--damping", "0.01")
    assert code == 0, err
    run = Path(out.strip().splitlines()[-1])
    m = json.loads((run / "metrics.json").read_text())
    assert set(m["methods"]) == {"grad", "bm25", "ekfac", "trackstar", "fused:bm25+grad", "zfused:bm25+ekfac"}
    sel = m["layer_selection"]
    assert not set(sel["selection_queries"]) & set(sel["test_queries"]) and m["n_queries"] == len(sel["test_queries"])
    assert sel["layers"]["grad"]["layer"] in (0, 1)
    with np.load(run / "scores_ekfac.npz") as z:
        assert z["scores"].shape == (m["n_queries"], len(HOPS_DOCS)) and np.isfinite(z["scores"]).all()
    with np.load(run / "scores_trackstar.npz") as z:
        assert (np.abs(z["scores"]) <= 1 + 1e-9).all()
    csv = (run / "metrics.csv").read_text()
    assert "grad,0,all,map" in csv and "grad,1,all,map" in csv  # per-layer rows name the model layer
    assert m["extraction"]["methods"]["ekfac"]["seconds"] > 0


def test_kronfluence_with_huge_damping_is_the_gradient_dot_product(tmp_path):
    """(G + λI)⁻¹ → I/λ as λ grows: λ · score(q, z) → ∇θ f(q) · ∇θ L(z) over every nn.Linear (lm_head included),
    f = the query's mean answer CE (``--loss ce``), L = the document's summed CE at its loss positions. (EK-FAC;
    ``kfac`` is the same call with Kronfluence's other strategy and has the same limit.)"""
    strategy = "ekfac"
    pytest.importorskip("kronfluence")
    from types import SimpleNamespace

    from tiny import build_model, make_tokenizer

    from modeldiff_cli.commands.attribute.influence import kronfluence_scores

    model, _ = build_model("llama", 0)
    model = model.float().eval()
    new = SimpleNamespace(model=model, tokenizer=make_tokenizer(), device=torch.device("cpu"))
    train, queries = _items(), [Item("q", [5, 9, 12, 3, 7], [3], [7])]
    queries.append(Item("r", [2, 14, 9, 30], [1, 2], [9, 30]))
    lam = 1e7
    got = kronfluence_scores(new, train, queries, strategy, "ce", lam, 2, tmp_path, f"t-{strategy}") * lam
    linears = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]

    def grad(it, reduce):
        logits = model(input_ids=torch.tensor([it.ids])).logits[0]
        ce = torch.nn.functional.cross_entropy(logits[it.loss_pos], torch.tensor(it.targets), reduction=reduce)
        return torch.cat([g.flatten() for g in torch.autograd.grad(ce, linears)]).double()

    with torch.enable_grad():
        gq = torch.stack([grad(q, "mean") for q in queries])
        gz = torch.stack([grad(z, "sum") for z in train])
    direct = (gq @ gz.T).numpy()
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, direct, rtol=2e-3, atol=1e-6 * np.abs(direct).max())
