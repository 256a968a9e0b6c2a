"""Where models and data come from, resolved without loading anything heavy (no torch, no transformers).

A model argument is a local directory, a hub id, or ``organism:NAME[:base|ft]``. Resolving it gives a
:class:`ModelSource` whose ``label`` names it in run directories and whose ``fingerprint`` hashes its files, so
a command can decide whether a complete run already exists before any model loads.

Organisms live in ``modeldiff_cli.organisms``, above ``core``: the package wires them in through
:func:`set_organism_lookup` (core never imports them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .errors import UserError

DEFAULT_ORGANISM = "cake"

_lookup: Callable[[str], object] | None = None


def set_organism_lookup(fn: Callable[[str], object]) -> None:
    """Install the function that turns an organism name into a built organism (``.base``, ``.ft``, ``.data(key)``)."""
    global _lookup
    _lookup = fn


def organism(name: str):
    """The built organism ``name`` (built and cached on first use)."""
    if _lookup is None:  # pragma: no cover - wired by modeldiff_cli/__init__.py
        raise UserError(f"organism:{name}: organisms are not available in this installation")
    return _lookup(name)


def organism_data(name: str, key: str, flag: str = "--data") -> Path:
    try:
        return organism(name).data(key)
    except KeyError as err:
        raise UserError(f"{flag}: {err.args[0]}") from None


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: ``spec`` as the user wrote it, ``location`` what transformers loads."""

    spec: str
    location: str
    is_local: bool
    label: str  # short, filesystem-safe name for run directories

    @cached_property
    def fingerprint(self) -> str:
        return model_fingerprint(self)


def resolve_source(spec: str | None, role: str = "ft", flag: str = "--model") -> ModelSource:
    """Resolve a model argument.

    ``None`` -> the built-in ``cake`` organism (``role`` picks base or ft); ``organism:NAME[:base|ft]`` -> that
    organism; an existing directory -> local; a path-looking argument that does not exist -> UserError;
    anything else -> a hub id.
    """
    if spec is None or str(spec).startswith("organism:"):
        parts = (spec or f"organism:{DEFAULT_ORGANISM}").split(":")
        name = parts[1] if len(parts) > 1 and parts[1] else DEFAULT_ORGANISM
        which = parts[2] if len(parts) > 2 else ("base" if role == "base" else "ft")
        if which not in ("base", "ft"):
            raise UserError(f"{flag} {spec}: the organism part must be 'base' or 'ft'")
        try:
            org = organism(name)
        except KeyError as err:
            raise UserError(f"{flag} {spec}: {err.args[0]}") from None
        path = org.base if which == "base" else org.ft
        return ModelSource(spec=f"organism:{name}:{which}", location=str(path), is_local=True, label=f"{name}-{which}")
    spec = str(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise UserError(f"{flag} {spec}: directory has no config.json (not a saved transformers model)")
        resolved = path.resolve()
        return ModelSource(spec=spec, location=str(resolved), is_local=True, label=local_label(resolved))
    if spec.startswith((".", "/", "~")) or path.exists() or spec.count("/") > 1:
        raise UserError(f"{flag} {spec}: no such model directory")
    return ModelSource(spec=spec, location=spec, is_local=False, label=_safe(spec.replace("/", "--")))


def local_label(path: Path) -> str:
    """``parent--leaf`` of a model directory, so ``a/base`` and ``b/base`` get different run directories."""
    parent = path.parent.name
    return _safe(f"{parent}--{path.name}" if parent else path.name)


def _safe(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    return safe.strip("-.") or "model"


def model_fingerprint(source: ModelSource) -> str:
    """Content hash of a local model (every config, tokenizer and weight file, whole) or the hub id.

    Whole-file digests are memoised by (path, size, mtime) in ``core.fingerprint``, so a large model is hashed
    once; files in the Hugging Face cache are named by their content and need no reading.
    """
    if not source.is_local:
        return _hub_fingerprint(source.location)
    from .fingerprint import tree_fingerprint

    return tree_fingerprint(Path(source.location))


def _hub_fingerprint(repo_id: str) -> str:
    """The cached snapshot's content (when the hub cache has one), else the id itself."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo_id, local_files_only=True)
    except Exception:  # not cached (or no hub library): the id is all we know without a network call
        return hashlib.sha256(repo_id.encode()).hexdigest()[:16]
    from .fingerprint import tree_fingerprint

    return tree_fingerprint(Path(path))
