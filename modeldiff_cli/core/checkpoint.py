"""Resumable long runs (``--checkpoint-every N``): accumulators and the shard position, kept in the partial run
directory.

``core.command.launch`` makes a resumable run's partial directory deterministic (``.{name}.partial``), keeps it
when the run fails or is interrupted, and activates its ``.checkpoint/`` folder here. A pipeline asks for a
:func:`store`; every ``N`` batches it saves its state (accumulators + how many of its shard's batches are done)
as ``.checkpoint/rank{r}-of-{w}.pt`` (written beside, then renamed: a kill mid-write leaves the previous one). A
re-run of the same command (same configuration: same run directory) loads it and continues with the next batch;
since the state is saved exactly (float64 sums, int64 counts, the records as they were), the result equals an
uninterrupted run's. A checkpoint of another world size or another shard is ignored (the run starts over).
The folder is removed before ``summary.json`` is written; without the flag nothing of this happens.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import console, distributed

FOLDER = ".checkpoint"
_ACTIVE: list[Path] = []


def activate(directory: Path | None) -> None:
    """Where this process's checkpoints go (the shared partial directory), or None (no checkpointing)."""
    _ACTIVE.clear()
    if directory is not None:
        _ACTIVE.append(Path(directory) / FOLDER)


def clear() -> None:
    """Remove the checkpoints (rank 0, once the run's results are reduced)."""
    for folder in _ACTIVE:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Store:
    every: int
    path: Path
    key: dict  # what the checkpoint is of (command, shard sizes): a mismatch means start over
    saved_at: int = -1

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None (no checkpoint, or one of another shard / world size)."""
        if not self.path.is_file():
            return None
        import torch

        try:
            blob = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as err:  # a corrupt file: start over rather than fail
            console.info(f"warning: ignoring unreadable checkpoint {self.path.name}: {type(err).__name__}")
            return None
        if blob.get("key") != self.key:
            if distributed.is_main():
                console.info(f"warning: ignoring checkpoint {self.path.name} of another shard or world size")
            return None
        if distributed.is_main():
            console.info(f"resuming from the checkpoint in {self.path.parent.parent} (step {blob['step']})")
        return blob["state"]

    def due(self, step: int) -> bool:
        return step > 0 and step % self.every == 0 and step != self.saved_at

    def save(self, step: int, state: dict[str, Any]) -> None:
        import torch

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".tmp-{os.getpid()}")
        torch.save({"key": self.key, "step": step, "state": state}, tmp)
        os.replace(tmp, self.path)
        self.saved_at = step


def store(every: int, key: dict) -> Store | None:
    """This rank's checkpoint store, or None when checkpointing is off (``every`` 0 or no resumable run)."""
    if every <= 0 or not _ACTIVE:
        return None
    r, w = distributed.rank(), distributed.world_size()
    return Store(every, _ACTIVE[0] / f"rank{r}-of-{w}.pt", {**key, "world_size": w, "rank": r})


__all__ = ["FOLDER", "Store", "activate", "clear", "store"]
