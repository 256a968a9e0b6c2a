"""`attribute` under torchrun (2 ranks, gloo on CPU) equals the one-process run: the training documents' and
queries' batches are sharded over the ranks, their pooled vectors gathered in document order, and rank 0 alone
scores (ekfac / trackstar / patch / the baselines run there only), writes and prints.

One torchrun launch (~15-30 s: two processes importing torch + transformers, then seconds of compute on the hops
organism); the reference runs in-process on one thread, like the ranks.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_distributed import RTOL, TORCHRUN, run_dir, single, torchrun  # noqa: F401  (single: a fixture)

pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")

# 22 documents in batches of 4: 6 batches, 3 per rank (12 + 10 documents); queries sharded the same way
ARGS = ["attribute", "--max-samples", "22", "--batch-size", "4", "--ig-steps", "2",
        "--method", "delta-h,grad,delta-h-x-grad,ig,loss-drop,bm25,random,fused:bm25+grad"]
INFLUENCE = ["ekfac", "trackstar"]  # rank 0 only (factors / gradient index over every document)


def _methods() -> list[str]:
    import importlib.util

    extra = [m for m, lib in zip(INFLUENCE, ("kronfluence", "bergson")) if importlib.util.find_spec(lib)]
    return ARGS[:-1] + [ARGS[-1] + "".join("," + m for m in extra)]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    from modeldiff_cli.organisms import get_organism

    get_organism("hops")  # built before the launch (a build under a live process group saves on rank 0 only)
    out = tmp_path_factory.mktemp("attr2")
    code, stdout, err = torchrun(*_methods(), "--out", out, timeout=240)
    assert code == 0, err[-5000:]
    return out, stdout, err


def _vectors(cache: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    out = {}
    for f in sorted(cache.glob("*.safetensors")):
        for k, v in load_file(str(f)).items():
            out[f"{f.name.rsplit('-', 1)[0]}/{k}"] = v
    return out


def _close_rows(a: list, b: list) -> None:
    for x, y in zip(a, b, strict=True):
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            assert x == y
            continue
        assert (math.isnan(fx) and math.isnan(fy)) or math.isclose(fx, fy, rel_tol=RTOL, abs_tol=1e-9), (x, y)


def test_attribute_two_ranks_equal_one(two_ranks, single, tmp_path):  # noqa: F811  (the fixture)
    out2, stdout2, err2 = two_ranks
    code, stdout1, err1 = single(*_methods(), "--out", tmp_path)
    assert code == 0, err1
    one, two = run_dir(stdout1), run_dir(stdout2)
    assert two.relative_to(out2) == one.relative_to(tmp_path)  # the same run directory name
    assert stdout2.count(str(two)) == 1  # printed once, by rank 0

    # the pooled vectors (Δh, g, Δh ⊙ g, ig; documents and queries), gathered in document order
    v1, v2 = _vectors(tmp_path / "attribute-cache"), _vectors(out2 / "attribute-cache")
    assert sorted(v1) == sorted(v2) and any(k.startswith("train-vectors/") for k in v1)
    for k in v1:
        assert v1[k].shape == v2[k].shape, k
        np.testing.assert_allclose(v2[k], v1[k], rtol=RTOL, atol=1e-9, err_msg=k)

    # every method's score matrix, the rankings and the metrics
    npz = sorted(p.name for p in one.glob("scores_*.npz"))
    assert npz == sorted(p.name for p in two.glob("scores_*.npz")) and len(npz) >= 7
    for name in npz:
        a, b = np.load(one / name), np.load(two / name)
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            if a[k].dtype.kind == "f":
                np.testing.assert_allclose(b[k], a[k], rtol=RTOL, atol=1e-9, err_msg=f"{name}:{k}")
            else:
                np.testing.assert_array_equal(b[k], a[k], err_msg=f"{name}:{k}")
    r1 = [json.loads(x) for x in (one / "rankings.jsonl").read_text().splitlines()]
    r2 = [json.loads(x) for x in (two / "rankings.jsonl").read_text().splitlines()]
    assert len(r1) == len(r2) > 0
    for x, y in zip(r1, r2, strict=True):  # the same documents in the same order, scores within RTOL
        assert {k: v for k, v in x.items() if k != "top"} == {k: v for k, v in y.items() if k != "top"}
        assert [d["uid"] for d in x["top"]] == [d["uid"] for d in y["top"]]
        _close_rows([d["score"] for d in x["top"]], [d["score"] for d in y["top"]])
    c1 = list(csv.reader((one / "metrics.csv").open()))
    c2 = list(csv.reader((two / "metrics.csv").open()))
    assert len(c1) == len(c2) > 1
    for x, y in zip(c1, c2, strict=True):
        _close_rows(x, y)

    meta = json.loads((two / "run_metadata.json").read_text())
    m = json.loads((one / "metrics.json").read_text())
    n = m["n_train"] + m["n_queries"]  # documents + queries, each extracted once
    assert m["n_train"] == 22 and len(r1) == m["n_queries"] * len(npz)
    assert meta["world_size"] == 2 and sum(meta["rank_samples"]) == n and min(meta["rank_samples"]) > 0
    assert json.loads((one / "run_metadata.json").read_text())["rank_samples"] == [n]
