"""Resumable long runs (``--checkpoint-every N``): accumulators and the shard position, kept in the partial run
directory.

``core.spine.command.launch`` makes a resumable run's partial directory deterministic (``.{name}.partial``), keeps it
when the run fails or is interrupted, and activates its ``.checkpoint/`` folder here. A pipeline asks for a
:func:`store`; every ``N`` batches it saves its state (accumulators + how many of its shard's batches are done)
as ``.checkpoint/rank{r}-of-{w}.pt`` (written beside, then renamed: a kill mid-write leaves the previous one). A
re-run of the same command (same configuration: same run directory) loads it and continues with the next batch;
since the state is saved exactly (float64 sums, int64 counts, the records as they were), the result equals an
uninterrupted run's. A checkpoint of another world size or another shard is ignored (the run starts over).
The folder is removed before ``summary.json`` is written; without the flag nothing of this happens.

Most loops need no more than :func:`progress`: a :class:`Progress` says how many of the rank's batches a saved
checkpoint had done (0: start over) and with which state, and ``step(state)`` after each batch saves the state
when a checkpoint is due (``state`` is a callable: nothing is built between checkpoints)::

    prog = checkpoint.progress(cmd.checkpoint_every, {"command": "lens", "batches": len(batches)})
    acc = prog.state["acc"] if prog.state else LensAccumulator(...)
    for batch in batches[prog.done:]:
        ...  # fold the batch into acc
        prog.step(lambda: {"acc": acc})
    prog.finish(lambda: {"acc": acc})  # a kill after the loop re-runs no forward
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
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
            part = f" ({self.key['part']})" if self.key.get("part") else ""
            console.info(f"resuming from the checkpoint{part} in {self.path.parent.parent} (step {blob['step']})")
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


def store(every: int, key: dict, part: str = "") -> Store | None:
    """This rank's checkpoint store, or None when checkpointing is off (``every`` 0 or no resumable run).
    ``part`` names a second loop of the same run (e.g. routing's mask sweep): its own file beside the first."""
    if every <= 0 or not _ACTIVE:
        return None
    r, w = distributed.rank(), distributed.world_size()
    name = f"{part + '-' if part else ''}rank{r}-of-{w}.pt"
    return Store(every, _ACTIVE[0] / name, {**key, **({"part": part} if part else {}), "world_size": w, "rank": r})


@dataclass
class Progress:
    """One rank's resumable loop over its shard's batches: ``done`` batches and the ``state`` saved with them
    (``done`` 0 and ``state`` None: start over, also when checkpointing is off)."""

    store: Store | None
    done: int = 0
    state: dict[str, Any] | None = None

    def step(self, state: Callable[[], dict[str, Any]]) -> None:
        """One more batch done: save ``state()`` when a checkpoint is due (every N batches of the shard)."""
        self.done += 1
        if self.store is not None and self.store.due(self.done):
            self.store.save(self.done, {"done": self.done, "state": state()})

    def finish(self, state: Callable[[], dict[str, Any]]) -> None:
        """The loop is over: save the final state (unless just saved), so a re-run skips every batch."""
        if self.store is not None and self.store.saved_at != self.done:
            self.store.save(self.done, {"done": self.done, "state": state()})


def progress(every: int, key: dict, part: str = "") -> Progress:
    """The loop's position: resumed from this rank's checkpoint when there is one of the same ``key``."""
    st = store(every, key, part)
    saved = st.load() if st is not None else None
    if not saved:
        return Progress(st)
    return Progress(st, int(saved["done"]), saved["state"])


__all__ = ["FOLDER", "Progress", "Store", "activate", "clear", "progress", "store"]
