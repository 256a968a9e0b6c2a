"""Helpers of the resumable-run tests (lens, nll, routing): interrupt a run at a chosen call, compare two runs.

An interruption is a ``KeyboardInterrupt`` raised from inside the run (what Ctrl-C does): the CLI exits 130 and
the checkpointed partial directory stays behind, as after a SIGTERM (tests/test_distributed.py kills a real
2-rank run with SIGTERM).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class Calls:
    """Wraps ``module.name``: counts its calls and raises ``KeyboardInterrupt`` at call number ``stop_at``."""

    def __init__(self, monkeypatch, module, name: str, stop_at: int | None = None):
        self.real, self.count, self.stop_at = getattr(module, name), 0, stop_at
        monkeypatch.setattr(module, name, self)

    def __call__(self, *args, **kwargs):
        self.count += 1
        if self.stop_at is not None and self.count == self.stop_at:
            raise KeyboardInterrupt
        return self.real(*args, **kwargs)


def cheap(monkeypatch, request) -> None:
    """One torch thread for the test (these tiny models run several times faster so on a loaded machine) and
    figures left unrendered; both restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    skip_png_rendering(monkeypatch)


def skip_png_rendering(monkeypatch) -> None:
    """Figures closed unrendered and written as empty files (the slow part of these small runs; the PNGs are
    not what the resume tests compare)."""
    from modeldiff_cli.core.spine import artifacts

    def save_figure(path, fig, dpi: int = 120) -> Path:
        import matplotlib.pyplot as plt

        plt.close(fig)
        Path(path).write_bytes(b"")
        return Path(path)

    monkeypatch.setattr(artifacts, "save_figure", save_figure)


def run_dir(stdout: str) -> Path:
    return Path(stdout.strip().splitlines()[-1])


def partial_dirs(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*.partial") if p.is_dir()]


def assert_identical(one: Path, two: Path) -> list[str]:
    """Every json / csv file of two runs byte for byte (but run_metadata.json: its time), every npz array
    exactly (the zip members carry their write time); the same file list. Returns the files compared."""
    files = sorted(p.relative_to(one).as_posix() for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two).as_posix() for p in two.rglob("*") if p.is_file())
    compared = []
    for rel in files:
        a, b = one / rel, two / rel
        if rel.endswith((".json", ".csv", ".jsonl")) and rel != "run_metadata.json":
            assert a.read_bytes() == b.read_bytes(), rel
            compared.append(rel)
        elif rel.endswith(".npz"):
            za, zb = np.load(a), np.load(b)
            assert sorted(za.files) == sorted(zb.files), rel
            for k in za.files:
                assert za[k].dtype == zb[k].dtype and np.array_equal(za[k], zb[k], equal_nan=za[k].dtype.kind == "f"), (rel, k)
            compared.append(rel)
    meta_a, meta_b = (json.loads((d / "run_metadata.json").read_text()) for d in (one, two))
    assert meta_a["config"] == meta_b["config"]
    return compared


def interrupted_then_resumed(cli, tmp_path: Path, args: list, every: int, calls: Calls, stop_at: int,
                             resumed_calls: int) -> tuple[Path, Path, set[str]]:
    """The flow every resume test shares: a run without the flag; the same run with ``--checkpoint-every`` stopped
    by ``calls`` at its call ``stop_at`` (exit 130, a checkpoint left in the partial directory); the re-run, which resumes and makes only
    ``resumed_calls`` calls; then the same run directory name as without the flag, no partial or checkpoint left,
    and identical artifacts. Returns (one, two, the identical artifact names)."""
    code, out, err = cli(*args, "--out", tmp_path / "one")
    assert code == 0, err
    one = run_dir(out)
    calls.count, calls.stop_at = 0, stop_at
    flag = ["--checkpoint-every", str(every), "--out", tmp_path / "two"]
    code, _, err = cli(*args, *flag)
    assert code == 130, err
    (partial,) = partial_dirs(tmp_path / "two")
    # Ctrl-C says what was kept and how to go on, in one line
    assert err.strip().splitlines()[-1] == (f"interrupted: the partial run directory {partial} is kept with its "
                                            "checkpoint (rank0-of-1.pt); re-run the same command to resume"), err
    assert (partial / ".checkpoint" / "rank0-of-1.pt").is_file()
    calls.count, calls.stop_at = 0, None
    code, out, err = cli(*args, *flag)
    assert code == 0, err
    assert "resuming from the checkpoint" in err and calls.count == resumed_calls, (stop_at, calls.count)
    two = run_dir(out)
    assert two.relative_to(tmp_path / "two") == one.relative_to(tmp_path / "one")  # the option is not in the config
    assert not partial.exists() and not (two / ".checkpoint").exists()
    return one, two, set(assert_identical(one, two))
