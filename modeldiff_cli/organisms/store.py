"""Where organisms live on disk, and building one atomically (temporary sibling directory, then rename)."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from .registry import BUILDER_VERSION, ORGANISMS, Organism

MARKER = "COMPLETE"


def organism_root() -> Path:
    """``$MODELDIFF_ORGANISMS_DIR`` if set, else ``~/.cache/modeldiff/organisms``."""
    env = os.environ.get("MODELDIFF_ORGANISMS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "modeldiff" / "organisms"


def cache_dir(name: str) -> Path:
    return organism_root() / f"{name}-v{BUILDER_VERSION}"


def _fingerprint() -> str:
    h = hashlib.sha256()
    for file in sorted(Path(__file__).parent.glob("*.py")):
        h.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return h.hexdigest()[:16]


_SOURCE = _fingerprint()  # taken at import: the code this process runs


def source_fingerprint() -> str:
    """sha256 of this package's sources: a cached organism built by other code is rebuilt, never reused."""
    return _SOURCE


def is_complete(path: Path) -> bool:
    """Built to the end by the current builder code (the marker is written last)."""
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("builder_version") == BUILDER_VERSION and marker.get("source") == source_fingerprint()


class Reporter:
    """Progress of a build: a rich bar per stage on stderr (nothing when disabled)."""

    def __init__(self, bar=None):
        self.bar = bar

    @contextmanager
    def stage(self, description: str, total: int):
        if self.bar is None:
            yield lambda n=1: None
            return
        task = self.bar.add_task(description, total=total)
        yield lambda n=1: self.bar.advance(task, n)
        self.bar.update(task, completed=total)


def _run_builder(name: str, workdir: Path, progress: bool, target: Path | None = None) -> dict:
    module, func = ORGANISMS[name].builder.split(":")
    builder = getattr(importlib.import_module(f".{module}", __package__), func)
    if not progress:
        return builder(name, workdir, Reporter())
    from ..core.spine.console import info, progress_bar

    info(f"building organism {name!r} into {target or workdir} (once; ~20 s on 2 CPU cores)")
    with progress_bar() as bar:
        return builder(name, workdir, Reporter(bar))


def build_into(name: str, target: Path, force: bool, progress: bool) -> Organism:
    """Build `name` into `target` via a temporary sibling; an existing complete build is kept unless `force`.

    Concurrent builders of the same target (parallel test sessions) wait on a lock file; the later one then
    finds the finished build and reuses it.
    """
    target = Path(target)
    if target.exists() and is_complete(target) and not force:
        return Organism.load(name, target)
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / MARKER).exists())):
        from ..core.errors import UserError

        raise UserError(f"{target} exists and is not an organism directory; refusing to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target):
        if target.exists() and is_complete(target) and not force:
            return Organism.load(name, target)  # built by another process meanwhile
        started = time.perf_counter()
        _build(name, target, progress)
    if progress:
        print(f"built organism {name!r} in {time.perf_counter() - started:.1f} s: {target}", file=sys.stderr)
    return Organism.load(name, target)


@contextmanager
def _locked(target: Path):
    """An exclusive lock per target directory (a file under the cache root's `.locks/`)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no cross-process lock
        yield
        return
    locks = organism_root() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:16]
    with open(locks / f"{target.name}-{key}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(name: str, target: Path, progress: bool) -> None:
    tmp = target.parent / f".{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        truth = _run_builder(name, tmp, progress, target)
        (tmp / "ground_truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
        marker = {"builder_version": BUILDER_VERSION, "source": source_fingerprint()}
        (tmp / MARKER).write_text(json.dumps(marker, sort_keys=True) + "\n")  # written last
        _replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _replace(tmp: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        target.rename(old)
    try:
        tmp.rename(target)
    except OSError:  # a concurrent build finished first: keep it if it is complete
        if not is_complete(target):
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
