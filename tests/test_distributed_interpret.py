"""`interpret` under torchrun (2 ranks, gloo on CPU) equals the one-process run: the prompt batches are sharded
over the ranks, the difference sums all-reduced (float64 / int64), the paired activation sample gathered in
batch order (each batch's draw seeded by its global index), and rank 0 alone reads, trains the crosscoder,
checks causally, writes and prints.

One torchrun launch (two processes importing torch + transformers, then seconds of compute on the cake
organism); the reference runs in-process on one thread, like the ranks.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from test_distributed import RTOL, TORCHRUN, _cell, _close, run_dir, single, torchrun  # noqa: F401  (single: a fixture)

pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")

# 5 + 2 prompts in batches of 2: batches [2, 2, 1] + [2] -> rank 0 takes two baking batches (4 prompts), rank 1
# the last baking one and the everyday one (3 prompts)
SIZES = {"baking": 5, "everyday": 2}
ARGS = ["interpret", "--batch-size", "2", "--max-tokens", "32", "--first-n", "4", "--features", "1",
        "--causal-samples", "2", "--random-directions", "32", "--latents", "32", "--active-latents", "4", "--steps", "20",
        "--crosscoder-batch", "64", "--max-vectors", "300"]


def _prompts(path: Path) -> Path:
    from modeldiff_cli.commands.interpret.categories import BUILTIN, read_categories

    cats = read_categories(BUILTIN)
    path.write_text(json.dumps({c: cats[c][:n] for c, n in SIZES.items()}))
    return path


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    from modeldiff_cli.organisms import get_organism

    get_organism("cake")  # built before the launch (a build under a live process group saves on rank 0 only)
    root = tmp_path_factory.mktemp("interpret2")
    prompts = _prompts(root / "cats.json")
    code, stdout, err = torchrun(*ARGS, "--prompts", prompts, "--out", root / "runs", timeout=240)
    assert code == 0, err[-5000:]
    return root, prompts, stdout


def _csv(path: Path) -> list:
    return [[_cell(c) for c in row] for row in csv.reader(path.open())]


def test_interpret_two_ranks_equal_one(two_ranks, single, tmp_path):  # noqa: F811  (the fixture)
    root, prompts, stdout2 = two_ranks
    code, stdout1, err1 = single(*ARGS, "--prompts", prompts, "--out", tmp_path)
    assert code == 0, err1
    one, two = run_dir(stdout1), run_dir(stdout2)
    assert two.relative_to(root / "runs") == one.relative_to(tmp_path)  # the same run directory name
    assert stdout2.count(str(two)) == 1  # printed once, by rank 0
    assert stdout2.strip().splitlines()[:-1] == stdout1.strip().splitlines()[:-1]

    # the difference means: reduced sums equal the one-process sums
    _close(_csv(one / "layer_category_diff.csv"), _csv(two / "layer_category_diff.csv"), "layer_category_diff.csv")
    a, b = np.load(one / "activation_stats.npz"), np.load(two / "activation_stats.npz")
    for key in ("mean_diff", "mean_diff_positions", "norms", "relative_norm", "category_cosines"):
        np.testing.assert_allclose(b[key], a[key], rtol=RTOL, atol=1e-7, err_msg=key)
    np.testing.assert_array_equal(b["positions_count"], a["positions_count"])
    assert int(a["positions_count"].sum()) > 0

    # the gathered activation sample: the same rows (same count, same RMS), so the same crosscoder and features
    (cc1,), (cc2,) = sorted(one.glob("crosscoder_layer*.json")), sorted(two.glob("crosscoder_layer*.json"))
    j1, j2 = json.loads(cc1.read_text()), json.loads(cc2.read_text())
    assert j1["vectors"] == j2["vectors"] > 0
    _close(j1["rms"], j2["rms"], "rms")
    _close(j1["explained_variance"], j2["explained_variance"], "explained_variance")
    f1, f2 = (json.loads((d / "features.json").read_text())["features"] for d in (one, two))
    _close(f1, f2, "features.json")

    meta = json.loads((two / "run_metadata.json").read_text())
    assert meta["world_size"] == 2 and meta["rank_samples"] == [4, 3]
    assert json.loads((one / "run_metadata.json").read_text())["world_size"] == 1
