"""Finding run directories under the given paths and reading them defensively.

A run directory is a folder holding ``summary.json``. Partial runs (hidden ``.name.partial-*`` folders, still
being written or abandoned) are skipped and listed. Reading never raises: an unreadable summary or a missing
or malformed artifact becomes a warning on the run's page, and the rest renders.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PARTIAL = re.compile(r"^\..*\.partial-")


@dataclass
class Run:
    """One run directory as the report sees it."""

    path: Path
    rel: str  # path relative to the scanned root, for display and ids
    summary: dict | None
    warnings: list[str] = field(default_factory=list)
    id: str = ""

    @property
    def parts(self) -> list[str]:
        return Path(self.rel).parts and list(Path(self.rel).parts) or [self.path.name]

    @property
    def command(self) -> str:
        if self.summary and isinstance(self.summary.get("command"), str):
            return self.summary["command"]
        parts = self.parts
        return parts[-3] if len(parts) >= 3 else "unknown"

    @property
    def models(self) -> str:
        """The pair (``base_vs_ft``) or the one model of the run, from its layout."""
        parts = self.parts
        return parts[-2] if len(parts) >= 2 else "?"

    @property
    def comparison(self) -> str:
        """The pair as figure titles name it (``base vs ft``), or the one model."""
        return self.models.replace("_vs_", " vs ")

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def datasets(self) -> str:
        fps = ((self.summary or {}).get("config") or {}).get("fingerprints") or {}
        data = fps.get("data")
        if isinstance(data, dict) and data:
            return "+".join(str(k) for k in data)
        stem = re.sub(r"-[0-9a-f]{8}$", "", self.name)
        return "-" if stem == self.command else stem  # the spine names a run without data after its command

    @property
    def headline(self) -> dict:
        h = (self.summary or {}).get("headline")
        return h if isinstance(h, dict) else {}

    @property
    def artifacts(self) -> list[dict]:
        arts = (self.summary or {}).get("artifacts")
        return [a for a in arts if isinstance(a, dict) and "path" in a] if isinstance(arts, list) else []

    # --- reading a declared artifact (core.spine.declared): the file, checked against its declaration ------
    def read(self, artifact, *, optional: bool = False, limit: int | None = None, **values: Any) -> Any:
        """The content of a declared artifact (CSV rows, JSON, JSONL records up to ``limit``, NPZ arrays or
        text, by suffix), or None. A missing file warns unless ``optional`` (a conditional artifact: the run may
        not have made it); a declared column, key or array missing from the file always warns."""
        name = artifact.path(**values)
        if (self.path / name).is_file() is False:
            if not optional:
                self.warn(f"missing artifact: {name}")
            return None
        suffix = Path(name).suffix
        if suffix == ".csv":
            data = self.csv(name)
            header = self._header(name)
            present = set(header) if header is not None else set()
        elif suffix == ".jsonl":
            data = self.jsonl(name, limit or 1_000_000)
            present = set(data[0]) if data and isinstance(data[0], dict) else None
        elif suffix == ".json":
            data = self.json(name)
            first = data[0] if isinstance(data, list) and data else data
            present = set(first) if isinstance(first, dict) else None
        elif suffix == ".npz":
            data = self.npz(name)
            present = set(data) if isinstance(data, dict) else None
        else:
            data, present = self.text(name, limit=limit), None
        if data is not None and artifact.columns and present is not None:
            missing = [c for c in artifact.columns if c not in present]
            if missing:
                self.warn(f"artifact {name} lacks {', '.join(missing)} (declared by {self.command})")
        return data

    def _header(self, name: str) -> list[str] | None:
        try:
            with (self.path / name).open(encoding="utf-8", newline="") as fh:
                return next(csv.reader(fh), [])
        except (OSError, csv.Error):
            return None

    # --- defensive readers: None plus a warning on failure -------------------------------------------------
    def file(self, name: str, *, warn: bool = True) -> Path | None:
        p = self.path / name
        if p.is_file():
            return p
        if warn:
            self.warn(f"missing artifact: {name}")
        return None

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def json(self, name: str, *, warn: bool = True) -> Any:
        p = self.file(name, warn=warn)
        if p is None:
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            self.warn(f"unreadable artifact {name}: {type(err).__name__}: {err}")
            return None

    def jsonl(self, name: str, limit: int) -> list[dict]:
        p = self.file(name)
        rows: list[dict] = []
        if p is None:
            return rows
        try:
            with p.open(encoding="utf-8") as fh:
                for line in fh:
                    if len(rows) >= limit:
                        break
                    if line.strip():
                        rows.append(json.loads(line))
        except (OSError, ValueError) as err:
            self.warn(f"unreadable artifact {name}: {type(err).__name__}: {err}")
        return rows

    def csv(self, name: str, *, warn: bool = True) -> list[dict] | None:
        p = self.file(name, warn=warn)
        if p is None:
            return None
        try:
            rows = list(csv.DictReader(io.StringIO(p.read_text(encoding="utf-8"))))
        except (OSError, ValueError, csv.Error) as err:
            self.warn(f"unreadable artifact {name}: {type(err).__name__}: {err}")
            return None
        return [{k: _num(v) for k, v in r.items()} for r in rows]

    def npz(self, name: str, *, warn: bool = True) -> dict | None:
        p = self.file(name, warn=warn)
        if p is None:
            return None
        try:
            import numpy as np

            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception as err:  # a truncated or foreign file: a warning, not a crash
            self.warn(f"unreadable artifact {name}: {type(err).__name__}: {err}")
            return None

    def text(self, name: str, *, warn: bool = True, limit: int | None = None) -> str | None:
        p = self.file(name, warn=warn)
        if p is None:
            return None
        if limit is not None and p.stat().st_size > limit:
            return None
        try:
            return p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            self.warn(f"unreadable artifact {name}: {err}")
            return None


def _num(v: Any) -> Any:
    if v is None or v == "":
        return None if v == "" else v
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return int(f) if f.is_integer() and re.fullmatch(r"[-+]?\d+", v.strip()) else f


def load_run(path: Path, root: Path) -> Run:
    rel = os.path.relpath(path, root) if path != root else path.name
    run = Run(path=path, rel=rel, summary=None)
    try:
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
        if not isinstance(summary, dict):
            raise ValueError("summary.json is not a JSON object")
        run.summary = summary
    except (OSError, ValueError) as err:
        run.warn(f"unreadable summary.json ({type(err).__name__}: {err}); showing what the directory holds")
        return run
    for key in ("command", "headline", "artifacts"):
        if key not in summary:
            run.warn(f"summary.json has no {key!r}")
    own = summary.get("warnings")  # the run's own (core.spine.command.Result.warnings), e.g. two identical models
    for message in own if isinstance(own, list) else []:
        run.warn(str(message))
    for art in run.artifacts:
        if not (path / art["path"]).exists() and not any(ch in art["path"] for ch in "*?["):
            run.warn(f"missing artifact: {art['path']}")
    return run


def scan(paths: list[Path]) -> tuple[list[Run], list[Path]]:
    """Every complete run directory under ``paths`` (sorted), and the partial ones skipped."""
    runs: list[Run] = []
    partial: list[Path] = []
    seen: set[Path] = set()
    for root in paths:
        root = Path(root)
        if (root / "summary.json").is_file():
            top = root.resolve()
            if top not in seen:
                seen.add(top)
                # a run directory given itself: its layout {command}/{pair}/{leaf} still names its pair
                parents = top.parents
                runs.append(load_run(top, parents[2] if len(parents) > 2 else top.parent))
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            keep = []
            for d in sorted(dirnames):
                if PARTIAL.match(d):
                    partial.append(Path(dirpath) / d)
                elif not d.startswith("."):
                    keep.append(d)
            dirnames[:] = keep
            if "summary.json" in filenames:
                here = Path(dirpath)
                real = here.resolve()
                if real not in seen:
                    seen.add(real)
                    runs.append(load_run(here, root))
                dirnames[:] = []  # a run's own sub-folders are its artifacts
    runs.sort(key=lambda r: (r.models, r.command, r.rel))
    used: set[str] = set()
    for r in runs:
        stem = re.sub(r"[^A-Za-z0-9_.+-]+", "_", "__".join(Path(r.rel).parts[-3:]))[:120] or "run"
        rid, n = stem, 1
        while rid in used:
            n += 1
            rid = f"{stem}-{n}"
        used.add(rid)
        r.id = rid
    return runs, sorted(partial)
