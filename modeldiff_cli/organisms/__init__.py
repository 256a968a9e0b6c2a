"""Organisms: tiny, really trained model pairs with a planted, known difference (built once, then cached).

    from modeldiff_cli.organisms import get_organism
    org = get_organism("cake")          # builds on first use (~20 s on 2 CPU cores), then cached
    org.base, org.ft, org.data("base"), org.ground_truth["planted_tokens"]

Importing this package imports neither torch nor transformers; the builders load them when they run.
"""

from __future__ import annotations

from pathlib import Path

from .registry import BUILDER_VERSION, ORGANISMS, Organism, OrganismSpec
from .store import build_into, cache_dir, is_complete, organism_root

__all__ = [
    "BUILDER_VERSION", "ORGANISMS", "Organism", "OrganismSpec",
    "build_organism", "get_organism", "organism_root", "cached_path",
]


def _spec(name: str) -> OrganismSpec:
    if name not in ORGANISMS:
        from ..core.errors import UserError

        raise UserError(f"unknown organism {name!r}; known organisms: {', '.join(ORGANISMS)}")
    return ORGANISMS[name]


def cached_path(name: str) -> Path | None:
    """The cache directory of `name` if it is completely built by the current code, else None."""
    path = cache_dir(_spec(name).name)
    return path if is_complete(path) else None


def build_organism(name: str, out: Path | None = None, force: bool = False, progress: bool = True) -> Organism:
    """Build `name` into `out` (default: the cache); an existing complete build is reused unless `force`."""
    spec = _spec(name)
    target = Path(out) if out is not None else cache_dir(spec.name)
    return build_into(spec.name, target, force=force, progress=progress)


def get_organism(name: str) -> Organism:
    """The cached organism, built on first use (progress bar on stderr)."""
    return build_organism(name)
