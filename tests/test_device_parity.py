"""benchmarks/device_parity.py: the comparison functions on hand-made files, and one cpu-vs-cpu dry run."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("device_parity", ROOT / "benchmarks" / "device_parity.py")
dp = importlib.util.module_from_spec(_spec)
sys.modules["device_parity"] = dp
_spec.loader.exec_module(dp)

POLICY = dp.Policy(tol=dp.Tol(1e-4, 1e-5), count_abs=3)


def _write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj, encoding="utf-8")
    return path


def _cmp(tmp_path: Path, a, b, name: str = "x.json", policy=POLICY) -> dp.Stats:
    pa, pb = _write(tmp_path / "a" / name, a), _write(tmp_path / "b" / name, b)
    return dp.compare_files(pa, pb, name, policy)


def test_number_inside_tolerance_passes_outside_fails(tmp_path):
    inside = _cmp(tmp_path, {"kl": [0.25, 1.0]}, {"kl": [0.25, 1.00005]})
    assert inside.ok and inside.numbers == 2 and inside.max_abs == pytest.approx(5e-5)
    assert inside.max_rel == pytest.approx(5e-5 / 1.00005)
    outside = _cmp(tmp_path, {"kl": [0.25, 1.0]}, {"kl": [0.25, 1.001]})
    assert not outside.ok and outside.n_failures == 1 and "x.json.kl[1]" in outside.failures[0]


def test_counts_have_their_own_tolerance_other_integers_are_exact(tmp_path):
    assert _cmp(tmp_path, {"count_positive": 10, "token_id": 4}, {"count_positive": 13, "token_id": 4}).ok
    moved = _cmp(tmp_path, {"count_positive": 10}, {"count_positive": 14})
    assert not moved.ok and moved.max_count == 4
    assert not _cmp(tmp_path, {"count_positive": 10, "token_id": 4}, {"count_positive": 10, "token_id": 5}).ok


def test_keys_and_strings_exact_timings_skipped(tmp_path):
    assert _cmp(tmp_path, {"a": "x", "seconds": 1.0, "timings": {"wall_s": 3}},
                {"a": "x", "seconds": 9.0, "timings": {"wall_s": 7}}).ok
    missing = _cmp(tmp_path, {"a": 1, "b": 2}, {"a": 1})
    assert not missing.ok and "only in the cpu run" in missing.failures[0]
    assert not _cmp(tmp_path, {"a": "cake"}, {"a": "bake"}).ok


def test_printed_numbers_in_strings(tmp_path):
    # one unit of the last printed digit is rounding; an integer (a layer index) must be equal
    assert _cmp(tmp_path, {"line": "KL 0.2035 at layer 1"}, {"line": "KL 0.2036 at layer 1"}).ok
    assert not _cmp(tmp_path, {"line": "KL 0.2035 at layer 1"}, {"line": "KL 0.2045 at layer 1"}).ok
    assert not _cmp(tmp_path, {"line": "KL 0.2035 at layer 1"}, {"line": "KL 0.2035 at layer 2"}).ok
    # a rate printed in a line is a timing
    assert _cmp(tmp_path, {"line": "MAP 0.539; 347.1 samples/s"}, {"line": "MAP 0.539; 274.7 samples/s"}).ok


def _tokens(*pairs):
    return {"tokens": [{"token_id": i, "token_str": f"t{i}", "ordering_value": v} for i, v in pairs]}


def test_reordered_near_tie_is_reported_not_failed(tmp_path):
    a = _tokens((7, 0.9), (3, 0.5000001), (5, 0.5), (9, 0.1))
    b = _tokens((7, 0.9), (5, 0.5000002), (3, 0.5), (9, 0.1))
    st = _cmp(tmp_path, a, b)
    assert st.ok and len(st.notes) == 1 and "reordered on near ties" in st.notes[0] and "2 records moved" in st.notes[0]


def test_reordered_far_apart_fails(tmp_path):
    st = _cmp(tmp_path, _tokens((7, 0.9), (3, 0.5)), _tokens((3, 0.9), (7, 0.5)))
    assert not st.ok and not st.notes


def test_record_entering_at_the_cut_off(tmp_path):
    # top-2 lists: token 3 and token 4 tie at the cut-off; another token displacing a top value fails
    assert _cmp(tmp_path, _tokens((7, 0.9), (3, 0.5)), _tokens((7, 0.9), (4, 0.500001))).ok
    far = _cmp(tmp_path, _tokens((7, 0.9), (3, 0.5)), _tokens((7, 0.9), (4, 0.7)))
    assert not far.ok and "cut-off" in far.failures[0]


def test_positional_rank_field_follows_the_reorder(tmp_path):
    rec = lambda r, i, v: {"rank": r, "id": i, "token": f"t{i}", "mean_logprob_diff": v}  # noqa: E731
    a = {"promoted": [rec(1, 5, 2.0), rec(2, 6, 1.0000001), rec(3, 8, 1.0)]}
    b = {"promoted": [rec(1, 5, 2.0), rec(2, 8, 1.0000001), rec(3, 6, 1.0)]}
    assert _cmp(tmp_path, a, b).ok


def test_string_list_reorder_is_a_note(tmp_path):
    st = _cmp(tmp_path, {"tokens": ["a", "b", "c", "d"]}, {"tokens": ["a", "b", "d", "c"]})
    assert st.ok and st.notes
    assert not _cmp(tmp_path, {"tokens": ["a", "b", "c", "d"]}, {"tokens": ["z", "b", "c", "d"]}).ok


def test_csv_numeric_columns(tmp_path):
    a = "layer,kl,name\n0,0.25,x\n1,0.5,y\n"
    assert _cmp(tmp_path, a, "layer,kl,name\n0,0.250001,x\n1,0.5,y\n", "m.csv").ok
    bad = _cmp(tmp_path, a, "layer,kl,name\n0,0.26,x\n1,0.5,y\n", "m.csv")
    assert not bad.ok and "m.csv[1].kl" in bad.failures[0]
    assert not _cmp(tmp_path, a, "layer,kl,name\n0,0.25,x\n", "m.csv").ok


def test_npz_arrays(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    x = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    np.savez(tmp_path / "a" / "m.npz", kl=x, positions_count=np.array([10, 20]), names=np.array(["p", "q"]))
    np.savez(tmp_path / "b" / "m.npz", kl=x + 1e-6, positions_count=np.array([11, 20]), names=np.array(["p", "q"]))
    st = dp.compare_files(tmp_path / "a" / "m.npz", tmp_path / "b" / "m.npz", "m.npz", POLICY)
    assert st.ok and st.numbers == 12 and st.max_count == 1 and st.max_abs == pytest.approx(1e-6, rel=0.1)
    y = x.copy()
    y[2, 1] += 0.01
    np.savez(tmp_path / "b" / "m.npz", kl=y, positions_count=np.array([10, 20]), names=np.array(["p", "q"]))
    st = dp.compare_files(tmp_path / "a" / "m.npz", tmp_path / "b" / "m.npz", "m.npz", POLICY)
    assert not st.ok and "1 of 12" in st.failures[0] and "(2, 1)" in st.failures[0]


def test_tree_missing_file_fails_and_png_is_skipped(tmp_path):
    for side in ("a", "b"):
        _write(tmp_path / side / "run" / "metrics.json", {"v": 1.0})
        (tmp_path / side / "run" / "plot.png").write_bytes(side.encode())  # differ: skipped
    _write(tmp_path / "a" / "run" / "extra.json", {"v": 2.0})
    res = dp.compare_trees(tmp_path / "a", tmp_path / "b", POLICY)
    assert not res["ok"] and any("extra.json: only in the cpu run" in f for f in res["failure_examples"])
    assert res["skipped"] == {"run/plot.png": "a plot of compared numbers"} and res["files_compared"] == 1
    (tmp_path / "a" / "run" / "extra.json").unlink()
    assert dp.compare_trees(tmp_path / "a", tmp_path / "b", POLICY)["ok"]


def test_policy_rules_and_prepare(tmp_path):
    policy = dp.Policy(tol=dp.Tol(0, 1e-6), rules=(dp.Rule("loose/*", "v", dp.Tol(0, 0.1)),),
                       prepare=(("*.json", lambda o: {k: v for k, v in o.items() if k != "trained"}),))
    # patterns match the path below the run root or its tail under any folder
    assert _cmp(tmp_path, {"v": 1.0, "trained": 1}, {"v": 1.05, "trained": 2}, "cmd/pair/run/loose/x.json", policy).ok
    assert not _cmp(tmp_path, {"v": 1.0}, {"v": 1.05}, "cmd/pair/run/strict/x.json", policy).ok
    assert not _cmp(tmp_path, {"v": 1.0}, {"v": 1.05}, "cmd/pair/run/notloose/x.json", policy).ok


def test_bad_commands_flag_is_one_line_exit_2():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_parity.py"), "--commands", "mine,bogus"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "--commands" in proc.stderr and "bogus" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_dry_run_cpu_vs_cpu_mine_is_identical(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_parity.py"), "--device", "cpu",
                           "--commands", "mine", "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "device_parity.json").read_text())
    (mine,) = report["commands"]
    assert report["ok"] and mine["ok"] and mine["failures"] == 0
    assert mine["files_compared"] >= 5 and mine["numbers"] > 1000 and mine["counts"] > 100
    assert mine["max_abs"] == 0 and mine["max_rel"] == 0 and mine["max_count"] == 0 and not mine["notes"]
    assert [r["rc"] for r in mine["runs"]] == [0, 0]
    row = [ln for ln in proc.stdout.splitlines() if ln.startswith("mine ")]
    assert row and row[0].split()[-1] == "PASS"
