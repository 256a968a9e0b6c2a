"""Deterministic run directories.

A run's directory name is derived from its configuration (same configuration -> same directory, never a
timestamp). Results are written into a hidden partial directory beside it and renamed into place only when
the command succeeds, together with ``run_metadata.json`` (resolved configuration, package version, models,
data fingerprints, a digest of the package's code). An existing complete run with the same configuration is
reused unless ``--overwrite`` (with a warning when other code made it); one with a different configuration is
never silently replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ... import __version__
from ..errors import UserError
from .artifacts import _clean, read_json, write_json

METADATA = "run_metadata.json"


def slug(value) -> str:
    """A filesystem-safe name component: ``0.75`` -> ``0.75``, ``org/model`` -> ``org--model``."""
    text = str(value).replace("/", "--")
    return "".join(c if c.isalnum() or c in "-_.+" else "-" for c in text).strip("-") or "x"


@lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 (16 hex digits) of the package's source and data files (paths and contents): which code made a
    run. A reused run made by other code (an edit, an upgrade) is reported, since its results may differ."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(p for ext in ("*.py", "*.json") for p in root.rglob(ext) if "__pycache__" not in p.parts):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def config_hash(config: dict, length: int = 8) -> str:
    canonical = json.dumps(_clean(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


@dataclass
class Run:
    """A run directory being written (``work``) or reused (``reused`` True, ``work == path``)."""

    path: Path
    work: Path
    config: dict
    reused: bool = False
    other_code: str | None = None  # reused: the code digest that made it, when not this code's
    metadata: dict = field(default_factory=dict)  # extra fields for run_metadata.json

    descriptions: dict = field(default_factory=dict)  # file name or glob pattern -> (kind, description)
    # the directory every rank of a data-parallel run (and a resumed run) keeps its checkpoints in: rank 0's
    # partial directory (a non-zero rank's ``work`` is a private scratch directory that is thrown away)
    shared: Path | None = None
    resumable: bool = False  # --checkpoint-every: a deterministic partial directory, kept when the run fails

    def file(self, *parts: str) -> Path:
        """Path of an output inside the directory being written."""
        return self.work.joinpath(*parts)

    def describe(self, pattern: str, description: str, kind: str | None = None) -> None:
        """Say what an artifact is (``pattern`` is a path relative to the run directory, or a glob of such)."""
        self.descriptions[pattern] = (kind, description)

    def describe_all(self, table: dict) -> None:
        """Describe many artifacts at once: ``{path_or_glob: (kind, description)}``."""
        for pattern, (kind, description) in table.items():
            self.describe(pattern, description, kind)

    def description_of(self, rel: str) -> tuple[str | None, str]:
        from fnmatch import fnmatch

        if rel in self.descriptions:
            return self.descriptions[rel]
        for pattern, value in self.descriptions.items():
            if fnmatch(rel, pattern):
                return value
        return None, ""


def _canonical(config: dict) -> dict:
    return json.loads(json.dumps(_clean(config), sort_keys=True))


def _config_diff(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)]


def prepare_run(out_root: str | Path, parts: list[str], config: dict, overwrite: bool = False,
                resumable: bool = False) -> Run:
    """Decide where a run writes: reuse a complete identical run, refuse a conflicting one, or start a partial.

    ``resumable`` (``--checkpoint-every``): the partial directory is ``.{name}.partial`` (no process id) and an
    existing one is kept, so that a re-run finds the checkpoints an interrupted run left in it."""
    final = Path(out_root).expanduser().joinpath(*parts)
    config = _canonical(config)
    meta_path = final / METADATA
    if final.exists() and not overwrite:
        if not meta_path.exists():
            raise UserError(f"{final} exists but is not a complete modeldiff run; pass --overwrite to replace it")
        meta = read_json(meta_path)
        saved = meta.get("config", {})
        if saved != config:
            changed = ", ".join(_config_diff(saved, config)[:6])
            raise UserError(
                f"{final} holds a run with a different configuration ({changed}); pass --overwrite to replace it "
                "or --out for another root"
            )
        made_by = meta.get("code_digest")
        return Run(path=final, work=final, config=config, reused=True,
                   other_code=made_by if made_by and made_by != code_digest() else None)
    work = final.parent / (f".{final.name}.partial" if resumable else f".{final.name}.partial-{os.getpid()}")
    try:
        if work.exists() and not resumable:
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=resumable)
    except OSError as err:
        raise UserError(f"--out {out_root}: cannot create {work}: {err.strerror or err}") from None
    return Run(path=final, work=work, config=config, shared=work, resumable=resumable)


def finalize_run(run: Run, command: str) -> Path:
    """Write run_metadata.json into the partial directory and move it into place."""
    meta = {
        "command": command,
        "status": "complete",
        "modeldiff_version": __version__,
        "code_digest": code_digest(),
        "config": run.config,
        "python": platform.python_version(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **run.metadata,
    }
    write_json(run.work / METADATA, meta)
    if run.path.exists():
        trash = run.path.parent / f".{run.path.name}.old-{os.getpid()}"
        os.replace(run.path, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(run.work, run.path)
    run.work = run.path
    # checkpoints an interrupted --checkpoint-every run of this configuration left: the run is now complete
    shutil.rmtree(run.path.parent / f".{run.path.name}.partial", ignore_errors=True)
    return run.path


@contextmanager
def run_directory(out_root: str | Path, parts: list[str], config: dict, *, command: str, overwrite: bool = False,
                  resumable: bool = False, prepared: Run | None = None) -> Iterator[Run]:
    """Context manager around :func:`prepare_run` / :func:`finalize_run`; on any failure the partial is removed
    (kept when ``resumable``: its checkpoints let a re-run resume). ``prepared``: a run already prepared.

    A reused run is yielded with ``reused=True``: the body should skip the work (nothing is rewritten).
    """
    run = prepared if prepared is not None else prepare_run(out_root, parts, config, overwrite, resumable)
    if run.reused:
        yield run
        return
    try:
        yield run
        finalize_run(run, command)
    except BaseException:
        if not run.resumable:
            shutil.rmtree(run.work, ignore_errors=True)
        raise
