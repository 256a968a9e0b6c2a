"""`modeldiff routing`: statistics on hand-computed values, the spine's obligations, and the done-when checks on
the `moe` organism (planted layer 1, expert 5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from modeldiff_cli.commands.routing.stats import benjamini_hochberg, pair_rows, thresholded, two_proportion_p
from modeldiff_cli.core.model.routers import Routing

PLANTED = (1, 5)
FAST = ("--max-samples", "64", "--bootstrap", "50", "--batch-size", "64")


def _routing(indices, n_experts=4):
    idx = torch.tensor(indices)
    probs = torch.full((len(indices), n_experts), 0.0)
    probs.scatter_(1, idx, 1.0 / idx.shape[1])
    return Routing(probs, idx, torch.full(idx.shape, 1.0 / idx.shape[1]))


# ---------------------------------------------------------------- hand-computed values
def test_identical_routing():
    a = _routing([[0, 1], [2, 3]])
    rows = pair_rows(a, a)
    assert torch.allclose(rows["tv_topk"], torch.zeros(2))
    assert torch.allclose(rows["jaccard_topk"], torch.ones(2))
    assert torch.allclose(rows["intersection_topk"], torch.full((2,), 2.0))
    assert torch.allclose(rows["js"], torch.zeros(2), atol=1e-6)


def test_disjoint_routing():
    rows = pair_rows(_routing([[0, 1]]), _routing([[2, 3]]))
    assert rows["tv_topk"].item() == pytest.approx(1.0)
    assert rows["jaccard_topk"].item() == 0.0 and rows["intersection_topk"].item() == 0.0
    assert rows["js"].item() == pytest.approx(np.log(2), abs=1e-6)


def test_partial_overlap_tv():
    # weights a: {0: .75, 1: .25}, b: {1: .5, 2: .5}: TV = (.75 + .25 + .5) / 2 = .75; J = 1/3; I = 1
    a = Routing(torch.tensor([[0.6, 0.2, 0.1, 0.1]]), torch.tensor([[0, 1]]), torch.tensor([[0.75, 0.25]]))
    b = Routing(torch.tensor([[0.1, 0.4, 0.4, 0.1]]), torch.tensor([[1, 2]]), torch.tensor([[0.5, 0.5]]))
    rows = pair_rows(a, b)
    assert rows["tv_topk"].item() == pytest.approx(0.75)
    assert rows["jaccard_topk"].item() == pytest.approx(1 / 3)
    assert rows["intersection_topk"].item() == 1.0


def test_benjamini_hochberg_known_example():
    q = benjamini_hochberg(torch.tensor([0.01, 0.04, 0.03, 0.005]))
    assert q.tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_two_proportion_z():
    # 50/100 vs 50/100: p = 1; 10/100 vs 50/100: z = 0.4 / sqrt(.3 * .7 * .02) = 6.17 -> p ~ 6.7e-10
    p = two_proportion_p(torch.tensor([50.0, 10.0]), torch.tensor([100.0, 100.0]), torch.tensor([50.0, 50.0]),
                         torch.tensor([100.0, 100.0]))
    assert p[0].item() == pytest.approx(1.0)
    assert p[1].item() == pytest.approx(6.7e-10, rel=0.05)


def test_thresholded_map():
    diff = torch.zeros(2, 100)
    diff[0, 0], diff[1, 1], diff[1, 2] = 0.3, -0.2, 0.004
    sign, thr = thresholded(diff)
    assert thr >= 0.005
    assert sign[0, 0] == 1 and sign[1, 1] == -1 and sign[1, 2] == 0


def test_top_cells_rank_by_magnitude_drops_included():
    from modeldiff_cli.commands.routing.order import top_cells

    points = [{"diff": d} for d in (0.3, 0.1, 0.02, -0.05, -0.4)]  # the points files' order: diff descending
    assert [p["diff"] for p in top_cells(points, 3)] == [-0.4, 0.3, 0.1]


def test_significance_map_uses_q_not_size():
    from modeldiff_cli.commands.routing.order import significance_map

    diff = torch.tensor([[0.5, -0.001, 0.002], [-0.3, 0.0001, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.001, 0.01, 0.2], [0.04, 0.9, 0.049]], dtype=torch.float64)
    assert significance_map(diff, q).tolist() == [[1, -1, 0], [-1, 0, 0]]
    assert significance_map(diff, q, alpha=0.005).tolist() == [[1, 0, 0], [0, 0, 0]]


# ---------------------------------------------------------------- the organism (one shared run)
def _run_dir(out: str) -> Path:
    return Path(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def organism_run(tmp_path_factory):
    from typer.testing import CliRunner

    from modeldiff_cli.cli import app

    root = tmp_path_factory.mktemp("routing")
    args = ["routing", "--out", str(root), "--sweep", "1", *FAST]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stdout + result.stderr
    return root, args, result.stdout, _run_dir(result.stdout)


def test_organism_planted_expert_found(organism_run):
    _, _, stdout, run = organism_run
    points = json.loads((run / "points_ft_minus_base.json").read_text())
    assert (points[0]["layer"], points[0]["router"]) == PLANTED and points[0]["q"] < 0.01
    assert set(points[0]) == {"layer", "router", "diff", "a", "b", "q"}
    assert [p["diff"] for p in points] == sorted((p["diff"] for p in points), reverse=True)
    reverse = json.loads((run / "points_base_minus_ft.json").read_text())
    assert (reverse[-1]["layer"], reverse[-1]["router"]) == PLANTED
    mats = np.load(run / "routing_matrices.npz")
    layers = mats["layers"].tolist()
    li = layers.index(PLANTED[0])
    assert mats["thresholded"][0, li, PLANTED[1]] == 1  # view "all"
    assert mats["tv_topk"][0, li] == max(mats["tv_topk"][0])
    assert np.allclose(mats["usage_a_weight"].sum(-1), 1, atol=1e-4)
    assert "layer   1 expert    5" in stdout.splitlines()[1]


def test_top_cells_and_significance_map_of_the_organism(organism_run, tmp_path):
    _, _, stdout, run = organism_run
    summary = json.loads((run / "summary.json").read_text())
    top = summary["headline"]["top_points"]
    mats = np.load(run / "routing_matrices.npz")
    diff, q = mats["diff_weight"][0], mats["q"]
    # the top cells are the largest |difference| of all cells, drops included, signed, largest first
    sizes = [abs(p["diff"]) for p in top]
    assert sizes == sorted(sizes, reverse=True) and len(top) == 10
    assert min(sizes) >= np.sort(np.abs(diff).ravel())[::-1][9] - 1e-12
    assert any(p["diff"] < 0 for p in top) and top[0]["diff"] > 0
    assert json.loads((run / "routing_summary.json").read_text())["top_points"] == top
    lines = [x for x in stdout.splitlines() if x.startswith("  layer")]
    assert [float(x.split()[4]) for x in lines] == pytest.approx([p["diff"] for p in top], abs=1e-4)
    # the significance map: the sign of the difference exactly where q < 0.05
    sig = mats["significant"]
    assert (sig == np.where(q < 0.05, np.sign(diff), 0)).all()
    assert int(np.abs(sig).sum()) == summary["headline"]["significant_cells_q05"] == int((q < 0.05).sum())
    # the report's significance map shows those cells (the X4A size map stays, under its own name)
    from modeldiff_cli.report import build_report

    res = build_report([run], tmp_path / "rep")
    page = next((res.out / "runs").glob("routing__*.html")).read_text()
    assert f"q &lt; 0.05: +1 up in ft, -1 down; {int((q < 0.05).sum())} cells)" in page
    assert "largest differences (all;" in page and "Top cells" in page


def test_organism_sweep_undoes_gain(organism_run):
    import csv

    _, _, _, run = organism_run
    rows = list(csv.DictReader((run / "mask_sweep.csv").open()))
    assert {"n_masked", "mode", "control", "gain_undone", "gap_closed", "nll_base", "nll_ft"} <= set(rows[0])
    assert all(int(r["masked_in_topk"]) == 0 for r in rows)
    top = {r["mode"]: float(r["gain_undone"]) for r in rows if r["control"] == "top"}
    for mode, value in top.items():
        rnd = next(r for r in rows if r["control"] == "random_mean" and r["mode"] == mode)
        assert int(rnd["draw"]) >= 8
        assert value > float(rnd["gain_undone"]) + 2 * float(rnd["gain_undone_std"])
    assert top["keep-topk"] != pytest.approx(top["replace-topk"])
    zero = next(r for r in rows if r["control"] == "none")
    assert float(zero["gain_undone"]) == 0.0


def test_layout_summary_and_reuse(organism_run, cli, monkeypatch):
    root, args, stdout, run = organism_run
    assert run.parent.parent.name == "routing" and run.parent.name == "moe-base_vs_moe-ft"
    assert run.parent.parent.parent == root and run.name.startswith("b-")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["command"] == "routing" and summary["config"] and summary["lines"]
    assert summary["headline"]["top_points"][0]["router"] == PLANTED[1]
    assert summary["artifacts"] and all(a["description"] for a in summary["artifacts"])
    names = {a["path"] for a in summary["artifacts"]}
    assert {"routing_layer_metrics.csv", "routing_matrices.npz", "routing_summary.json", "mask_sweep.csv",
            "heatmap_thresholded_all.png", "curve_tv_topk.png"} <= names

    import modeldiff_cli.core.model.loading as models

    def boom(*a, **k):
        raise AssertionError("a reused run must not load a model")

    monkeypatch.setattr(models, "load_model", boom)
    code, out, err = cli(*args)
    assert code == 0, err
    assert _run_dir(out) == run
    assert [x for x in out.splitlines() if x.startswith("  layer")] == [x for x in stdout.splitlines() if x.startswith("  layer")]


def test_two_data_mode(cli, tmp_path):
    from modeldiff_cli.core.model.sources import organism_data

    a, b = organism_data("moe", "a"), organism_data("moe", "b")
    code, out, err = cli("routing", "--model", "organism:moe:ft", "--data-a", a, "--data-b", b, "--label-a", "everyday",
                         "--label-b", "numeric", "--out", tmp_path, "--max-samples", "32", "--bootstrap", "20")
    assert code == 0, err
    run = _run_dir(out)
    assert run.parent.name == "moe-ft" and run.name.startswith("everyday+numeric-")
    points = json.loads((run / "points_b_minus_a.json").read_text())
    assert (points[0]["layer"], points[0]["router"]) == PLANTED  # ft sends the numeric data to the planted expert
    assert (run / "points_a_minus_b.json").is_file()


def test_pairs_mode(cli, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"id": str(i), "a_ids": "the cat sat on the mat", "b_ids": "total = 12 + 3 * 4",
                                         "a_positions": [1, 2, 3], "b_positions": [1, 2, 3]}) + "\n" for i in range(6)))
    code, out, err = cli("routing", "--model", "organism:moe:ft", "--pairs", pairs, "--out", tmp_path / "runs",
                         "--bootstrap", "20", "--sweep", "1", "--sweep-mode", "deactivate")
    assert code == 0, err
    run = _run_dir(out)
    metrics = (run / "routing_layer_metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("layer,tv_topk,jaccard_topk,intersection_topk")
    assert "specificity" in (run / "mask_sweep.csv").read_text().splitlines()[0]


def test_experts_per_token_sets_k_and_the_old_spelling_is_the_same_run(cli, tmp_path):
    """--experts-per-token (routing's k; mine's --top-k is tokens) changes the statistics' k and the run; the old
    spelling --top-k fills the same option (a note on stderr) and finds the same run."""
    args = ("routing", "--max-samples", "4", "--bootstrap", "10", "--out", tmp_path)
    code, out, err = cli(*args, "--experts-per-token", "1")
    assert code == 0, err
    run = _run_dir(out)
    summary = json.loads((run / "routing_summary.json").read_text())
    assert summary["top_k"] == 1 and summary["model_top_k"] > 1
    code, out, err = cli(*args, "--top-k", "1")
    assert code == 0 and _run_dir(out) == run and "reusing" in err
    assert "note: --top-k is deprecated; use --experts-per-token" in err
    code, out, err = cli(*args)
    assert code == 0 and _run_dir(out) != run  # the model's own k: another run


@pytest.mark.parametrize("args, needle", [
    (("--base", "organism:moe:base", "--ft", "organism:moe:ft"), "--data"),
    (("--model", "organism:moe:ft"), "--data-a"),
    (("--model", "organism:moe:ft", "--data-a", "x.txt"), "--data-b"),
    (("--sweep", "1,x"), "--sweep"),
    (("--sweep", "1", "--sweep-mode", "bogus"), "--sweep-mode"),
])
def test_usage_errors_exit_2(cli, tmp_path, args, needle):
    code, out, err = cli("routing", *args, "--out", tmp_path)
    assert code == 2
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]


def test_dense_model_exit_2(cli, tmp_path, tiny_model_dir):
    d = tiny_model_dir("llama")
    data = tmp_path / "d.txt"
    data.write_text("the cat sat on the mat\n")
    code, out, err = cli("routing", "--base", d, "--ft", d, "--data", data, "--out", tmp_path)
    assert code == 2
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "llama" in lines[0] and "qwen3_moe" in lines[0]


def test_mask_leaving_fewer_than_k_exits_2(cli, tmp_path):
    mask = tmp_path / "mask.json"
    mask.write_text(json.dumps([{"layer": 1, "router": e} for e in range(7)]))
    code, out, err = cli("routing", "--sweep", "7", "--mask", mask, "--out", tmp_path, *FAST)
    assert code == 2 and "fewer than the 2" in err


def test_checkpointed_run_interrupted_twice_then_resumed_equals_uninterrupted(cli, tmp_path, monkeypatch, request):
    """--checkpoint-every 1 with --sweep: interrupted in the statistics (3rd of 4 batches), re-run, interrupted
    again in the mask sweep (2nd batch), re-run: each re-run skips what was checkpointed (the sweep's sums
    have a checkpoint of their own) and the result is byte-identical to a run without the flag."""
    from resume_check import Calls, assert_identical, cheap, partial_dirs, run_dir

    from modeldiff_cli.commands.routing import collect, sweep

    args = ["routing", "--max-samples", "4", "--max-tokens", "16", "--batch-size", "1", "--bootstrap", "20",
            "--sweep", "1", "--sweep-mode", "keep-topk"]
    cheap(monkeypatch, request)
    code, out, err = cli(*args, "--out", tmp_path / "one")
    assert code == 0, err
    one = run_dir(out)
    per_batch = 2 + 1 + 8  # sweep forwards per batch: base, ft, the top mask and 8 random draws
    routes = Calls(monkeypatch, collect, "route", stop_at=5)  # two models per batch
    logits = Calls(monkeypatch, sweep, "_logits")
    resumed = [*args, "--checkpoint-every", "1", "--out", tmp_path / "two"]
    code, _, err = cli(*resumed)
    assert code == 130 and logits.count == 0, err
    (partial,) = partial_dirs(tmp_path / "two")
    assert sorted(p.name for p in (partial / ".checkpoint").iterdir()) == ["rank0-of-1.pt"]
    routes.count, routes.stop_at, logits.stop_at = 0, None, per_batch + 5
    code, _, err = cli(*resumed)
    assert code == 130 and routes.count == 2 * 2 and "resuming" in err, err
    assert sorted(p.name for p in (partial / ".checkpoint").iterdir()) == ["rank0-of-1.pt", "sweep-rank0-of-1.pt"]
    routes.count, logits.count, logits.stop_at = 0, 0, None
    code, out, err = cli(*resumed)
    assert code == 0, err
    assert routes.count == 0 and logits.count == 3 * per_batch  # statistics all restored; sweep batches 2-4
    two = run_dir(out)
    assert two.relative_to(tmp_path / "two") == one.relative_to(tmp_path / "one")
    assert not partial.exists() and not (two / ".checkpoint").exists()
    assert {"mask_sweep.csv", "routing_matrices.npz", "routing_summary.json", "points_ft_minus_base.json",
            "routing_layer_metrics.csv"} <= set(assert_identical(one, two))
