"""Where a run's time went (core.spine.timing): stages, their coverage of the process's wall time, --profile, and the
plot queue (figures drawn by worker processes are the same bytes as figures drawn inline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modeldiff_cli.core.spine import plot_queue, timing

ROOT = Path(__file__).resolve().parents[1]


def test_stages_nest_merge_and_cover():
    profile = timing.Profile(started=time.time())
    with timing.profiling(profile):
        with timing.stage("load"):
            time.sleep(0.02)
            with timing.stage("inner"):
                time.sleep(0.01)
        for _ in range(3):  # a stage entered again adds to its entry
            with timing.stage("write"):
                time.sleep(0.005)
    d = profile.as_dict()
    by = {s["stage"]: s for s in d["stages"]}
    assert [s["stage"] for s in d["stages"]] == ["load", "load/inner", "write"]  # parent before its children
    assert by["load"]["depth"] == 0 and by["load/inner"]["depth"] == 1
    assert by["write"]["calls"] == 3 and by["write"]["seconds"] >= 0.015
    assert by["load"]["seconds"] >= by["load/inner"]["seconds"] >= 0.01
    # only top-level stages count toward coverage (the inner one is part of its parent's time)
    top = by["load"]["seconds"] + by["write"]["seconds"]
    assert d["covered"] == pytest.approx(min(top / d["wall_s"], 1.0), abs=0.02)
    assert d["peak_rss_mb"] > 0 and d["cuda_max_allocated_mb"] == {}
    lines = timing.table(d)
    assert lines[2].startswith("  inner") and lines[-2].startswith("wall time")


def test_stage_outside_a_run_is_a_no_op():
    assert timing.active() is None
    with timing.stage("nothing"):
        pass
    assert timing.active() is None


def _draw(path: str, n: int) -> None:
    from modeldiff_cli.core.spine.artifacts import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(range(n), [i * i for i in range(n)], label="squares")
    ax.legend()
    save_figure(path, fig)


def test_plot_queue_workers_draw_the_same_bytes(tmp_path):
    inline = tmp_path / "inline.png"
    plot_queue.submit(_draw, str(inline), 5)  # no queue open: drawn at once
    assert inline.is_file()
    with plot_queue.plotting(1):
        plot_queue.submit(_draw, str(tmp_path / "worker.png"), 5)
        plot_queue.submit(_draw, str(tmp_path / "other.png"), 7)
    assert (tmp_path / "worker.png").read_bytes() == inline.read_bytes()
    assert (tmp_path / "other.png").read_bytes() != inline.read_bytes()


def test_plot_queue_reraises_a_worker_failure(tmp_path):
    with pytest.raises(TypeError), plot_queue.plotting(1):
        plot_queue.submit(_draw, str(tmp_path / "bad.png"), "not a number")


def test_plot_workers_env_is_checked(monkeypatch):
    monkeypatch.setenv("MODELDIFF_PLOT_WORKERS", "3")
    assert plot_queue.default_workers() == 3
    monkeypatch.setenv("MODELDIFF_PLOT_WORKERS", "many")
    from modeldiff_cli.core.errors import UserError

    with pytest.raises(UserError, match="MODELDIFF_PLOT_WORKERS"):
        plot_queue.default_workers()


def _modeldiff(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real entry point in a fresh process, so the stage table covers the whole process."""
    code = "import sys; from modeldiff_cli.cli import main; sys.argv = ['modeldiff', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=600)


def _timings(run_dir: Path) -> dict:
    return json.loads((run_dir / "run_metadata.json").read_text())["timings"]


def _files(run_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != "run_metadata.json"}


def test_mine_stage_table_covers_the_process_and_changes_no_output(tmp_path, cli):
    # two plot workers (not the default on 2 cores) so the queue's path runs end to end in a real run
    proc = _modeldiff("mine", "--out", str(tmp_path / "a"), "--top-k", "20", "--nmf-max-iter", "20", "--profile",
                      env={"MODELDIFF_PLOT_WORKERS": "2"})
    assert proc.returncode == 0, proc.stderr
    run = Path(proc.stdout.strip().splitlines()[-1])  # the run directory stays the last line of stdout
    t = _timings(run)
    names = [s["stage"] for s in t["stages"]]
    for wanted in ("start-up (interpreter, imports, options)", "import torch", "resolve and fingerprint inputs",
                   "import transformers", "load models and data", "load models and data/load models",
                   "forward and statistics",
                   "orderings", "orderings/nmf", "write outputs", "wait for plots", "write summary"):
        assert wanted in names, (wanted, names)
    assert t["covered"] >= 0.8, t
    assert t["peak_rss_mb"] > 0
    assert "wall time" in proc.stderr and "forward and statistics" in proc.stderr  # --profile's table
    # the same configuration in-process, without --profile and with figures drawn inline: the same files
    code, out, _ = cli("mine", "--out", tmp_path / "b", "--top-k", "20", "--nmf-max-iter", "20")
    assert code == 0
    other = Path(out.strip().splitlines()[-1])
    assert other.name == run.name and _files(other) == _files(run)
    assert any(name.endswith(".png") for name in _files(run))


def test_routing_sweep_stage_table_covers_the_process(tmp_path):
    proc = _modeldiff("routing", "--out", str(tmp_path), "--sweep", "1,2", "--profile")
    assert proc.returncode == 0, proc.stderr
    t = _timings(Path(proc.stdout.strip().splitlines()[-1]))
    names = [s["stage"] for s in t["stages"]]
    assert "mask sweep" in names and "forward and router statistics" in names
    assert t["covered"] >= 0.8, t


def test_profile_on_a_reused_run_prints_its_stored_table(tmp_path, cli):
    code, out, _ = cli("info", "--out", tmp_path)
    assert code == 0
    code, out2, err = cli("info", "--out", tmp_path, "--profile")
    assert code == 0 and "reusing" in err and "load models and describe them" in err
    assert out2.strip().splitlines()[-1] == out.strip().splitlines()[-1]
