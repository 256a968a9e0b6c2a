"""``--json-out`` / ``--html-out``: exports of a COMPLETE run directory.

Every file of a run is written inside its run directory. These options only copy the finished per-prompt
record / page out of it, after the run directory is complete (a fresh run or a reused one alike); the paths are
checked before any work. Torch-free: a reused run exports without importing torch.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ...core.errors import UserError
from .artifacts import PROMPT_HTML, PROMPT_JSON, prompt_index


def check_export(path: Path | None, flag: str) -> None:
    """Before any work: an export path must name a file in a place that can be written (nothing is left behind)."""
    if path is None:
        return
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory (give a file path)")
    place = path.parent
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir():
        raise UserError(f"{flag} {path}: {place} is not a directory")
    try:  # a temporary file in the nearest existing directory, removed at once
        with tempfile.TemporaryFile(dir=place, prefix=".tokenlens-probe-"):
            pass
    except OSError as err:
        raise UserError(f"{flag} {path}: cannot write there ({err.strerror or err})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {path}: file is not writable")


def export_paths(path: Path, n_prompts: int) -> list[Path]:
    """Where the copies of prompt ``i`` go: the path itself (one prompt) or ``stem_<iii>.suffix`` beside it."""
    path = Path(path).expanduser()
    if n_prompts == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{i:03d}{path.suffix}") for i in range(n_prompts)]


def export(run_path: Path, prompts: list[dict], json_out: Path | None, html_out: Path | None) -> list[Path]:
    """Copy the finished per-prompt files of a complete run directory (fresh or reused) to the export paths."""
    from ...core.spine import console
    from ...core.spine.artifacts import write_text

    written = []
    for flag, dest, artifact in (("--json-out", json_out, PROMPT_JSON), ("--html-out", html_out, PROMPT_HTML)):
        if dest is None:
            continue
        targets = export_paths(dest, len(prompts))
        for p in prompts:
            if p["status"] != "ok":
                continue
            src = Path(run_path) / artifact.path(index=prompt_index(p["index"]))
            try:
                written.append(write_text(targets[p["index"]], src.read_text(encoding="utf-8")))
            except (UserError, OSError) as err:
                raise UserError(f"{flag} {targets[p['index']]}: export failed ({err})") from None
            console.info(f"exported {src.name} -> {targets[p['index']]}")
    return written
