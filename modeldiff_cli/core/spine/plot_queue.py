"""Figures off the critical path: plots rendered by worker processes while the run goes on.

``submit(fn, *args, **kwargs)`` queues a module-level plotting function (its arguments picklable: dicts, lists,
paths, numpy arrays). Inside ``plotting()`` — the spine opens it around a command's ``execute`` — the call goes to
a pool of spawned processes, started with the run so that their matplotlib import overlaps model loading and
the forward loop; ``wait()`` (the spine calls it before summary.json lists the artifacts) blocks until every
figure is written and re-raises the first failure. Outside ``plotting()``, or with no workers, ``fn`` runs at
once in this process. Either way the PNG bytes are the same: the same code draws them with the same style on
the Agg backend.

Workers: ``MODELDIFF_PLOT_WORKERS`` when set (0 = inline), else ``min(8, cores // 2)`` on machines with at
least 4 cores and none below (on 2 cores the workers would only compete with the run itself).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager

from ..errors import UserError

_pool: list[ProcessPoolExecutor] = []
_pending: list[Future] = []


def default_workers() -> int:
    """Worker processes for figures: ``MODELDIFF_PLOT_WORKERS``, else half the cores (at most 8) from 4 cores."""
    text = os.environ.get("MODELDIFF_PLOT_WORKERS")
    if text is not None:
        try:
            return max(0, int(text))
        except ValueError:
            raise UserError(f"MODELDIFF_PLOT_WORKERS={text!r}: expected a whole number of worker processes") from None
    cores = os.cpu_count() or 1
    return min(8, cores // 2) if cores >= 4 else 0


def _warm() -> None:
    """Run in each worker as it starts: import matplotlib (the slow part of a first figure)."""
    from .artifacts import pyplot

    pyplot()


def _noop() -> None:
    return None


@contextmanager
def plotting(workers: int | None = None) -> Iterator[None]:
    """Send ``submit`` calls to ``workers`` processes for the duration (see the module docstring); on exit the
    queue is drained (``wait``) unless an exception is on its way, then the pool is shut down."""
    n = default_workers() if workers is None else workers
    if n <= 0 or _pool:
        yield
        return
    import multiprocessing

    from .timing import stage

    with stage("start plot workers"):
        pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"), initializer=_warm)
        for _ in range(n):  # a worker is spawned per submitted task: start them all now, so they warm up early
            pool.submit(_noop)
    _pool.append(pool)
    try:
        yield
        wait()
    finally:
        _pool.clear()
        for f in _pending:
            f.cancel()
        _pending.clear()
        with stage("wait for plots"):
            pool.shutdown(wait=True, cancel_futures=True)


def submit(fn: Callable, *args, **kwargs) -> None:
    """Draw a figure: queued to the workers inside ``plotting()``, else at once."""
    if not _pool:
        fn(*args, **kwargs)
        return
    _pending.append(_pool[0].submit(fn, *args, **kwargs))


def wait() -> None:
    """Block until every queued figure is written; re-raise the first failure (in submission order)."""
    from .timing import stage

    if not _pending:
        return
    with stage("wait for plots"):
        futures = list(_pending)
        _pending.clear()
        for f in futures:
            f.result()
