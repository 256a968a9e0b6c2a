"""Session-wide test settings: offline hub, a shared organism cache built before the first test, one torch
thread per pytest-xdist worker, slow modules dealt out first, tiny-model fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# Organisms are built once and reused by every test (and across local runs; CI starts from a fresh clone).
os.environ.setdefault("MODELDIFF_ORGANISMS_DIR", str(ROOT / ".pytest_cache" / "modeldiff-organisms"))
# `make test` runs pytest-xdist with one worker per core: each worker (and every process it starts: CLI runs,
# torchrun ranks) computes on one thread, so two workers do not fight over the two cores
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")

# Slow modules first (see pytest_collection_modifyitems).
SLOW_FIRST = ("test_report_browser", "test_full_diff", "test_artifacts", "test_attribute_defaults", "test_attribute_cli", "test_distributed",
              "test_attribute_influence", "test_routing", "test_mine", "test_distributed_attribute",
              "test_distributed_interpret", "test_interpret", "test_interpret_heldout", "test_timing",
              "test_organisms", "test_routers", "test_nll")


def pytest_collection_modifyitems(config, items):
    """Slow modules are handed out first (``make test`` runs ``--dist loadfile``: each module goes whole to one
    worker, so its module and session fixtures are computed once, and modules are dealt out in collection order:
    a slow module started last would leave one worker idle at the end); the rest keep their order."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(Path(item.nodeid.split("::")[0]).stem, len(rank)))


def _build_test_organisms() -> None:
    """Every organism the suite uses, built (or found cached) before the first test runs.

    A build is printed on stderr; built inside a test that checks stderr (a command's one-line error), it would
    break that test, depending on which test happened to run first. Each xdist worker starts with its own share
    of the builds (interleaved), then waits for the others' (the store locks a build per organism, keyed on its
    directory; a finished build is reused only if made by the current organism sources), so both cores build.
    """
    from heldout_pairs import ensure_cached

    from modeldiff_cli.organisms import ORGANISMS, build_organism

    jobs = [lambda name=name: build_organism(name, progress=False) for name in ORGANISMS]
    jobs.append(lambda: ensure_cached("astronomy"))
    worker = int(XDIST_WORKER[2:]) if XDIST_WORKER else 0
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    mine = jobs[worker::count]
    for job in mine + [j for j in jobs if j not in mine]:
        job()


@pytest.fixture(scope="session", autouse=True)
def test_organisms():
    """The organisms, built once per session and cache (see `_build_test_organisms`)."""
    if XDIST_WORKER:
        import torch

        torch.set_num_threads(1)
    _build_test_organisms()

# The real public hops data (README: `make test-slow`): ../shared/data/hops next to the repository, or $MODELDIFF_HOPS_DIR.
SHARED_HOPS = Path(os.environ.get("MODELDIFF_HOPS_DIR") or ROOT.parent / "shared" / "data" / "hops").expanduser()


@pytest.fixture(scope="session")
def hops_data_dir() -> Path:
    """The real hops data directory; tests using it (marked ``slow`` and ``hops_data``) skip only when it is absent."""
    if not SHARED_HOPS.is_dir():
        pytest.skip(f"real hops data not found at {SHARED_HOPS} (set MODELDIFF_HOPS_DIR)")
    return SHARED_HOPS


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Factory: a saved tiny random model of a family (cached per family and seed for the session)."""
    from tiny import save_model

    made: dict[tuple[str, int], Path] = {}

    def make(model_type: str, seed: int = 0) -> Path:
        key = (model_type, seed)
        if key not in made:
            made[key] = save_model(model_type, tmp_path_factory.mktemp(f"{model_type}-{seed}"), seed)
        return made[key]

    return make


@pytest.fixture()
def cli():
    """Invoke the CLI in-process: returns (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from modeldiff_cli.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, [str(a) for a in args])
        return result.exit_code, result.stdout, result.stderr

    return invoke
