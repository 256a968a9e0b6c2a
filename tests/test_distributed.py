"""Data-parallel runs (torchrun, gloo on CPU) equal the one-process run; errors, dead ranks, resumed runs.

Each torchrun costs ~8 s (two processes importing torch + transformers); the one-process references run
in-process on one thread (the torchrun ranks run one thread each), so the forwards are the same computations.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from modeldiff_cli.core.spine import distributed as dist

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
RTOL = 1e-6

pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MODELDIFF_DIST_TIMEOUT": "60",
           "PYTHONPATH": str(ROOT)}
    env.pop("WORLD_SIZE", None)
    env.pop("RANK", None)
    return env


def torchrun(*args, nproc: int = 2, script: Path | None = None, extra_env: dict | None = None, timeout: int = 120):
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node", str(nproc)]
    cmd += [str(script)] if script else ["-m", "modeldiff_cli"]
    res = subprocess.run([*cmd, *map(str, args)], cwd=ROOT, env={**_env(), **(extra_env or {})},
                         capture_output=True, text=True, timeout=timeout)
    return res.returncode, res.stdout, res.stderr


@pytest.fixture()
def single(cli):
    """The one-process reference, in-process on one thread."""
    import torch

    def invoke(*args):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return cli(*args)
        finally:
            torch.set_num_threads(threads)

    return invoke


def run_dir(stdout: str) -> Path:
    return Path(stdout.strip().splitlines()[-1])


def _close(a, b, where: str) -> None:
    """ints, strings, orderings exactly; floats within RTOL relative (NaN equals NaN)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=RTOL, abs_tol=1e-12), (where, a, b)
    else:
        assert a == b and type(a) is type(b), (where, a, b)


def _cell(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def assert_same_results(one: Path, many: Path) -> dict:
    """Every artifact of ``many`` (N ranks) equals ``one``'s (json/csv parsed, npz arrays); returns the N-rank
    run's metadata."""
    import numpy as np

    files = sorted(p.relative_to(one).as_posix() for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(many).as_posix() for p in many.rglob("*") if p.is_file())
    for rel in files:
        a, b = one / rel, many / rel
        if rel == "run_metadata.json":
            continue
        if rel.endswith(".json"):
            ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
            _close(ja, jb, rel)
        elif rel.endswith(".jsonl"):
            _close([json.loads(x) for x in a.read_text().splitlines()], [json.loads(x) for x in b.read_text().splitlines()], rel)
        elif rel.endswith(".csv"):
            rows = [[_cell(c) for c in r] for r in csv.reader(a.open())]
            _close(rows, [[_cell(c) for c in r] for r in csv.reader(b.open())], rel)
        elif rel.endswith(".npz"):
            za, zb = np.load(a), np.load(b)
            assert sorted(za.files) == sorted(zb.files), rel
            for k in za.files:
                if za[k].dtype.kind in "fc":
                    np.testing.assert_allclose(zb[k], za[k], rtol=RTOL, atol=1e-12, equal_nan=True, err_msg=f"{rel}:{k}")
                else:
                    np.testing.assert_array_equal(zb[k], za[k], err_msg=f"{rel}:{k}")
    meta_one = json.loads((one / "run_metadata.json").read_text())
    meta = json.loads((many / "run_metadata.json").read_text())
    assert meta["config"] == meta_one["config"] and meta_one["world_size"] == 1
    return meta


# ---- pure sharding ------------------------------------------------------------------------------------------
def test_span_is_a_disjoint_cover_in_rank_order():
    for n in range(0, 12):
        for w in range(1, 5):
            blocks = [dist.span(n, r, w) for r in range(w)]
            assert blocks[0][0] == 0 and blocks[-1][1] == n
            assert all(blocks[i][1] == blocks[i + 1][0] for i in range(w - 1))
            sizes = [hi - lo for lo, hi in blocks]
            assert max(sizes) - min(sizes) <= 1


def test_one_process_is_the_identity():
    assert not dist.active() and dist.is_main() and dist.world_size() == 1
    assert dist.shard([1, 2, 3]) == [1, 2, 3] and dist.gather_objects(5) == [5] and dist.sum_int(3) == 3


def test_progress_saves_every_n_and_at_the_end_and_resumes_only_its_own_key(tmp_path):
    from modeldiff_cli.core.spine import checkpoint

    assert checkpoint.progress(1, {"command": "x"}).store is None  # no resumable run: off
    checkpoint.activate(tmp_path)
    try:
        prog = checkpoint.progress(2, {"command": "x", "batches": 3})
        assert (prog.done, prog.state) == (0, None)
        saved = []
        for i in range(3):
            prog.step(lambda i=i: {"i": i})
            saved.append(prog.store.saved_at)
        assert saved == [-1, 2, 2]  # every 2 batches
        prog.finish(lambda: {"i": "end"})
        again = checkpoint.progress(2, {"command": "x", "batches": 3})
        assert (again.done, again.state) == (3, {"i": "end"})
        assert checkpoint.progress(2, {"command": "x", "batches": 4}).state is None  # another shard: start over
        sweep = checkpoint.progress(2, {"command": "x", "batches": 3}, part="sweep")
        assert sweep.state is None and sweep.store.path.name == "sweep-rank0-of-1.pt"
    finally:
        checkpoint.activate(None)


# ---- N ranks equal one ----------------------------------------------------------------------------------------
# the commands run in ONE torchrun (one process start per rank); 5 mine samples in batches of 2: batches
# 2+2 on rank 0, 1 on rank 1 (NMF records and likelihoods gathered); lens on one sample: rank 1's shard is empty;
# routing --sweep: the statistics and the mask sweep both sharded (batches 2+1); tokenlens: 4 prompts in groups
# of 2, one group per rank, gathered in prompt order
CASES = {
    "mine": ["mine", "--max-samples", "5", "--batch-size", "2", "--top-k", "20", "--nmf-topics", "3",
             "--likelihood-ratios", "--no-plots"],
    "lens": ["lens", "--max-samples", "1"],
    "nll": ["nll", "--max-samples", "3", "--batch-size", "1"],
    "routing": ["routing", "--max-samples", "3", "--batch-size", "1"],
    "routing_sweep": ["routing", "--max-samples", "3", "--max-tokens", "16", "--batch-size", "1", "--bootstrap", "20",
                      "--sweep", "1", "--sweep-mode", "keep-topk"],
    "tokenlens": ["tokenlens", "attribute", "--max-new-tokens", "3", "--batch-size", "2"],
    "lens_device_map": ["lens", "--max-samples", "3", "--batch-size", "1", "--device-map", "auto"],
}
SEQUENCE = """
import json, os, sys
from modeldiff_cli.cli import app
for args in json.loads(os.environ["RUNS"]):
    try:
        app(args, prog_name="modeldiff")
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    if os.environ.get("RANK", "0") == "0":
        print(f"@@END {code}", flush=True)
"""


@pytest.fixture(scope="module")
def parallel(tmp_path_factory):
    from modeldiff_cli.organisms import get_organism

    # built here, once: the sequence below runs several commands in one process per rank, and a build inside a
    # process whose torch.distributed group is already up lets transformers save on the main rank only
    for name in ("cake", "moe"):
        get_organism(name)
    root = tmp_path_factory.mktemp("parallel")
    script = root / "sequence.py"
    script.write_text(SEQUENCE)
    runs = [[*args, "--out", str(root / name)] for name, args in CASES.items()]
    code, out, err = torchrun(script=script, extra_env={"RUNS": json.dumps(runs)}, timeout=240)
    assert code == 0, err
    parts = re.split(r"@@END (\d+)\n", out)  # [output, code, output, code, ..., ""]
    results = {name: (int(parts[2 * i + 1]), [x for x in parts[2 * i].splitlines() if x.strip()], root / name)
               for i, name in enumerate(CASES) if 2 * i + 1 < len(parts)}
    if any(code for code, _, _ in results.values()):
        print(err[-5000:])
    assert len(results) == len(CASES), out
    return results


def _compare(name: str, parallel, single, tmp_path, same=None) -> dict:
    code, lines, root = parallel[name]
    assert code == 0
    code, out1, err1 = single(*CASES[name], "--out", tmp_path / name)
    assert code == 0, err1
    one, two = run_dir(out1), Path(lines[-1])
    assert two.relative_to(root) == one.relative_to(tmp_path / name)  # same run dir name
    assert lines[:-1] == out1.strip().splitlines()[:-1]  # the headline printed once (rank 0)
    assert not list(root.rglob(".*partial*"))
    return (same or assert_same_results)(one, two)


def test_mine_two_ranks_equal_one_odd_samples(parallel, single, tmp_path):
    meta = _compare("mine", parallel, single, tmp_path)
    assert meta["world_size"] == 2 and meta["rank_samples"] == [4, 1]


def test_lens_with_an_empty_shard(parallel, single, tmp_path):
    assert _compare("lens", parallel, single, tmp_path)["rank_samples"] == [1, 0]


def test_nll_two_ranks_equal_one(parallel, single, tmp_path):
    assert _compare("nll", parallel, single, tmp_path)["rank_samples"] == [2, 1]


def test_routing_two_ranks_equal_one(parallel, single, tmp_path):
    assert _compare("routing", parallel, single, tmp_path)["world_size"] == 2


def test_routing_sweep_sharded_equals_one(parallel, single, tmp_path):
    meta = _compare("routing_sweep", parallel, single, tmp_path)
    assert meta["rank_samples"] == [2, 1]
    rows = list(csv.DictReader((Path(parallel["routing_sweep"][1][-1]) / "mask_sweep.csv").open()))
    assert {r["control"] for r in rows} == {"none", "top", "random", "random_mean"} and len(rows) == 1 + 1 + 8 + 1


def test_device_map_inside_each_rank_equals_one_plain_process(parallel, single, tmp_path):
    """--device-map auto inside each rank (accelerate places each rank's models; on CPU: all on the CPU) gives
    the one-process run without a device map (same run directory: the option is not in the configuration)."""
    code, lines, root = parallel["lens_device_map"]
    assert code == 0
    plain = [a for a in CASES["lens_device_map"] if a not in ("--device-map", "auto")]
    code, out1, err1 = single(*plain, "--out", tmp_path)
    assert code == 0, err1
    assert Path(lines[-1]).relative_to(root) == run_dir(out1).relative_to(tmp_path)
    assert assert_same_results(run_dir(out1), Path(lines[-1]))["rank_samples"] == [2, 1]


def _same_attributions(one: Path, many: Path) -> dict:
    """tokenlens: every record and status row equal but for the time it was written / took."""
    def load(path: Path):
        data = json.loads(path.read_text())
        if path.name.startswith("prompt_"):
            data["metadata"].pop("timestamp")
        if path.name == "prompts.json":
            for row in data:
                row.pop("seconds")
        return data

    names = sorted(p.name for p in one.glob("*.json"))
    assert names == sorted(p.name for p in many.glob("*.json"))
    assert sum(n.startswith("prompt_0") for n in names) == 4
    for name in names:
        if name not in ("run_metadata.json", "summary.json"):
            _close(load(one / name), load(many / name), name)
    _close(json.loads((one / "summary.json").read_text())["headline"],
           json.loads((many / "summary.json").read_text())["headline"], "summary.json")
    return json.loads((many / "run_metadata.json").read_text())


def test_tokenlens_prompts_sharded_and_gathered_in_order(parallel, single, tmp_path):
    meta = _compare("tokenlens", parallel, single, tmp_path, same=_same_attributions)
    assert meta["world_size"] == 2 and meta["rank_samples"] == [2, 2]


# ---- errors ---------------------------------------------------------------------------------------------------
def test_bad_input_reported_once_every_rank_exits_2(tmp_path):
    # found after the models load (the shared vocabulary): every rank raises it, rank 0 alone reports it
    code, out, err = torchrun("mine", "--max-samples", "2", "--top-k", "1000000", "--out", tmp_path)
    assert code != 0 and out == ""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and "--top-k 1000000" in errors[0], err
    assert err.count("exitcode  : 2") + err.count("exitcode: 2") >= 1 or "exit code 2" in err or "exitcode" in err
    assert "exitcode  : 1" not in err  # no rank failed otherwise
    assert not list(tmp_path.rglob("run_metadata.json"))


KILLER = """
import os, signal, sys
import modeldiff_cli.commands.mine.accumulate as acc
rank, calls, sig = os.environ["KILL_AT"].split(":")
if os.environ.get("RANK", "0") == rank:
    real, seen = acc.update, [0]
    def update(*a, **k):
        seen[0] += 1
        if seen[0] == int(calls):
            os.kill(os.getpid(), int(sig))
        return real(*a, **k)
    acc.update = update
from modeldiff_cli.cli import main
sys.argv = ["modeldiff", *sys.argv[1:]]
main()
"""


def test_a_dead_rank_stops_the_other_and_leaves_nothing_complete(tmp_path):
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    code, out, err = torchrun("mine", "--max-samples", "4", "--batch-size", "1", "--out", tmp_path / "runs",
                              script=script, extra_env={"KILL_AT": "1:1:9"}, timeout=90)
    assert code != 0 and out == ""
    assert not list((tmp_path / "runs").rglob("run_metadata.json"))
    assert not [p for p in (tmp_path / "runs").rglob("*") if p.is_dir() and not p.name.startswith(".")
                and p.parent.name.endswith("_vs_cake-ft")]


def test_sigterm_then_rerun_resumes_to_the_uninterrupted_result(tmp_path, single):
    args = ["mine", "--max-samples", "6", "--batch-size", "1", "--top-k", "20", "--nmf-topics", "3", "--no-plots"]
    code, out1, err1 = single(*args, "--out", tmp_path / "one")
    assert code == 0, err1
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    runs = tmp_path / "two"
    # rank 0 is terminated at its 3rd batch (2 checkpointed); torchrun then stops rank 1
    code, out, err = torchrun(*args, "--checkpoint-every", "1", "--out", runs, script=script,
                              extra_env={"KILL_AT": "0:3:15"})
    assert code != 0 and out == ""
    assert not list(runs.rglob("run_metadata.json"))
    partial = [p for p in runs.rglob(".*.partial") if p.is_dir()]
    assert len(partial) == 1 and (partial[0] / ".checkpoint" / "rank0-of-2.pt").is_file()
    code, out2, err2 = torchrun(*args, "--checkpoint-every", "1", "--out", runs)
    assert code == 0, err2
    assert "resuming from the checkpoint" in err2
    one, two = run_dir(out1), run_dir(out2)
    assert not (two / ".checkpoint").exists() and not partial[0].exists()
    for rel in ("base_global_token_stats.json", "orderings_index.json"):
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel
    for path in sorted(one.rglob("*.json")):
        rel = path.relative_to(one)
        if rel.name not in ("run_metadata.json", "summary.json"):
            assert path.read_bytes() == (two / rel).read_bytes(), rel
    assert_same_results(one, two)


# ---- accelerate's launcher ------------------------------------------------------------------------------------
ACCELERATE = Path(sys.executable).with_name("accelerate")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate not installed")
def test_accelerate_launch_module_equals_one(tmp_path, single):
    """`accelerate launch -m modeldiff_cli lens` with 2 CPU processes: accelerate's `--multi_gpu` launcher (its
    torchrun path; it needs no GPU) — `--cpu` would start one process unless given an MPI hostfile."""
    args = ["lens", "--max-samples", "3", "--batch-size", "1"]
    cmd = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
           "-m", "modeldiff_cli", *args, "--out", str(tmp_path / "acc")]
    env = {**_env(), "HF_HOME": str(tmp_path / "hf")}  # no accelerate config file of the user's
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    code, out1, err1 = single(*args, "--out", tmp_path / "one")
    assert code == 0, err1
    lines = [x for x in res.stdout.splitlines() if x.strip()]
    assert lines[:-1] == out1.strip().splitlines()[:-1]  # printed once
    meta = assert_same_results(run_dir(out1), Path(lines[-1]))
    assert meta["world_size"] == 2 and meta["rank_samples"] == [2, 1]
