"""Session-wide test settings: offline hub, a shared organism cache, tiny-model fixtures."""

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
