"""Data-parallel runs: one process per device under torchrun / accelerate, exact reductions, rank 0 writes.

A launcher (``torchrun``, ``accelerate launch``) starts ``WORLD_SIZE`` processes and sets ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR`` / ``MASTER_PORT`` in each one's environment. :func:`init` (called by
``core.spine.command.launch``) joins them into one process group (gloo: the reductions are of CPU accumulators, small
beside the forwards; ``MODELDIFF_DIST_BACKEND`` overrides it) and pins each rank to ``cuda:LOCAL_RANK`` when there
are GPUs. Then:

- :func:`shard` gives each rank a contiguous, deterministic block of the BATCHES the one-process run would make
  (same tokenisation, same padding, same batch shapes: each forward is the forward of the one-process run, so
  integer statistics are exactly equal and float sums differ only in the order the per-batch sums are added);
- :func:`all_sum` sums accumulators over ranks (floats in float64, integers in int64), :func:`gather_rows` /
  :func:`gather_objects` collect per-sample rows or top-K records in rank order, which is sample order;
- :func:`handoff` ends a non-zero rank's work once its shard is reduced (:class:`WorkerDone`): rank 0 alone
  orders, writes the run directory and prints;
- a process group that cannot be reached (a rank died) raises within ``MODELDIFF_DIST_TIMEOUT`` seconds
  (default 1800; a dead peer's closed socket is usually seen at once).

With one process (no launcher, or ``WORLD_SIZE=1``) every function is the identity and torch is never imported
here, so a reused run stays torch-free.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TIMEOUT_S = 1800


class WorkerDone(Exception):  # noqa: N818 - a signal, not an error
    """Raised on a non-zero rank once its shard has been reduced: the rest of the command is rank 0's."""


@dataclass
class _State:
    initialized: bool = False
    group: Any = None  # the gloo group the reductions use
    samples: int = 0  # samples this rank processed (all datasets of the run)
    counted: bool = False  # the command shards its samples (count_samples was called)
    rank_samples: list[int] = field(default_factory=list)  # filled on rank 0 by handoff()


_STATE = _State()


def env_world_size() -> int:
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def env_rank() -> int:
    try:
        return int(os.environ.get("RANK", "0")) if env_world_size() > 1 else 0
    except ValueError:
        return 0


def world_size() -> int:
    return env_world_size()


def rank() -> int:
    return env_rank()


def local_rank() -> int:
    try:
        return int(os.environ.get("LOCAL_RANK", str(rank())))
    except ValueError:
        return 0


def active() -> bool:
    """More than one process in this run."""
    return env_world_size() > 1


def is_main() -> bool:
    return rank() == 0


def timeout_s() -> float:
    try:
        return float(os.environ.get("MODELDIFF_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
    except ValueError:
        return float(DEFAULT_TIMEOUT_S)


def init() -> None:
    """Join the launcher's process group (idempotent; nothing with one process)."""
    _STATE.samples, _STATE.counted, _STATE.rank_samples = 0, False, []
    if not active() or _STATE.initialized:
        return
    from datetime import timedelta

    import torch
    import torch.distributed as td

    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        torch.cuda.set_device(local_rank() % torch.cuda.device_count())
    backend = os.environ.get("MODELDIFF_DIST_BACKEND", "gloo")
    timeout = timedelta(seconds=timeout_s())
    if not td.is_initialized():
        td.init_process_group(backend=backend, timeout=timeout)
        import atexit

        # leave the group before the interpreter tears down: a rank that exits with gloo's threads still up (a
        # worker done with its shard while rank 0 still scores) could abort ("terminate called without an active
        # exception"); at exit, not after each command, as one process may run several commands in the group
        atexit.register(shutdown)
    _STATE.group = td.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    _STATE.initialized = True


def shutdown() -> None:
    if _STATE.initialized:
        import torch.distributed as td

        if td.is_initialized():
            td.destroy_process_group()
        _STATE.initialized = False
        _STATE.group = None


def span(n: int, r: int | None = None, w: int | None = None) -> tuple[int, int]:
    """The contiguous block ``[lo, hi)`` of ``n`` items of rank ``r`` of ``w`` (sizes differ by at most one;
    the first ``n % w`` ranks get one more; a rank beyond ``n`` gets an empty block)."""
    r = rank() if r is None else r
    w = world_size() if w is None else w
    base, extra = divmod(n, w)
    lo = r * base + min(r, extra)
    return lo, lo + base + (1 if r < extra else 0)


def shard(items: Sequence) -> list:
    """This rank's contiguous block of ``items`` (all of them with one process)."""
    lo, hi = span(len(items))
    return list(items[lo:hi])


def shard_indexed(items: Sequence) -> list[tuple[int, Any]]:
    """This rank's block as ``(global index, item)`` pairs (for per-batch seeds that must not depend on ranks)."""
    lo, hi = span(len(items))
    return [(i, items[i]) for i in range(lo, hi)]


def count_samples(n: int) -> None:
    """Tally the samples this rank processes (recorded as ``rank_samples`` in run_metadata.json)."""
    _STATE.samples += int(n)
    _STATE.counted = True


def _require():
    if not _STATE.initialized:  # pragma: no cover - launch() always initialises first
        init()


def all_sum(*tensors):
    """Sum each tensor over ranks, in place (floating tensors must be float64, integer ones int64: the dtypes
    the accumulators keep, so that the reduction adds no rounding of its own). Returns the tensors."""
    if not active():
        return tensors
    import torch
    import torch.distributed as td

    _require()
    for t in tensors:
        if t.dtype not in (torch.float64, torch.int64):
            raise TypeError(f"all_sum: {t.dtype} tensor; accumulators are reduced in float64 / int64")
        if t.device.type != "cpu":
            buf = t.cpu()
            td.all_reduce(buf, group=_STATE.group)
            t.copy_(buf)
        else:
            td.all_reduce(t, group=_STATE.group)
    return tensors


def sum_int(value: int) -> int:
    """An integer summed over ranks."""
    if not active():
        return int(value)
    import torch

    t = torch.tensor([int(value)], dtype=torch.int64)
    all_sum(t)
    return int(t.item())


def gather_objects(obj: Any) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not active():
        return [obj]
    import torch.distributed as td

    _require()
    out: list = [None] * world_size()
    td.all_gather_object(out, obj, group=_STATE.group)
    return out


def gather_rows(t):
    """Tensors ``[n_r, ...]`` of every rank concatenated along dim 0 in rank order (sample order when each rank
    holds a contiguous shard), on every rank. Trailing dims must agree; ``n_r`` may be 0."""
    if not active():
        return t
    import torch
    import torch.distributed as td

    _require()
    t = t.cpu().contiguous()
    sizes = gather_objects(tuple(t.shape))
    shapes = [s for s in sizes if s[0] > 0]
    if not shapes:
        return t
    tail = shapes[0][1:]
    if any(s[1:] != tail for s in shapes):
        raise ValueError(f"gather_rows: ranks hold rows of different shapes {sizes}")
    most = max(s[0] for s in sizes)
    buf = torch.zeros((most, *tail), dtype=t.dtype)
    if t.shape[0]:
        buf[: t.shape[0]] = t.reshape(t.shape[0], *tail)
    parts = [torch.zeros_like(buf) for _ in range(world_size())]
    td.all_gather(parts, buf, group=_STATE.group)
    return torch.cat([p[: s[0]] for p, s in zip(parts, sizes, strict=True)])


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not active():
        return obj
    import torch.distributed as td

    _require()
    box = [obj]
    td.broadcast_object_list(box, src=0, group=_STATE.group)
    return box[0]


def handoff() -> None:
    """The end of a rank's share: collect every rank's sample count on rank 0; a non-zero rank stops here."""
    _STATE.rank_samples = [int(n) for n in gather_objects(_STATE.samples)]
    if not is_main():
        raise WorkerDone()


def run_facts() -> dict:
    """``world_size`` and ``rank_samples`` for run_metadata.json (after :func:`handoff`)."""
    if not _STATE.counted:
        return {}
    counts = _STATE.rank_samples or [_STATE.samples]
    return {"world_size": world_size(), "rank_samples": counts}


def agree(fn, *args, **kwargs):
    """Run ``fn`` on rank 0 only and hand its value (or its :class:`UserError`, raised on every rank) to all."""
    from ..errors import UserError

    if not active():
        return fn(*args, **kwargs)
    outcome: tuple = ("ok", None)
    failure: BaseException | None = None
    if is_main():
        try:
            outcome = ("ok", fn(*args, **kwargs))
        except UserError as err:
            outcome = ("user", str(err))
        except Exception as err:
            failure, outcome = err, ("internal", f"{type(err).__name__}: {err}")
    kind, value = broadcast(outcome)
    if kind == "user":
        raise UserError(value)
    if kind == "internal":
        raise failure if failure is not None else RuntimeError(f"rank 0 failed: {value}")
    return value


__all__ = [
    "WorkerDone", "active", "agree", "all_sum", "broadcast", "count_samples", "gather_objects", "gather_rows",
    "handoff", "init", "is_main", "local_rank", "rank", "run_facts", "shard", "shard_indexed", "span", "sum_int",
    "world_size",
]
