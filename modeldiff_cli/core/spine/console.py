"""Terminal output: progress bars and messages on stderr, results on stdout.

Every command ends its normal output with the run directory it wrote (``done(path)``), so shell scripts can
capture it with ``$(modeldiff ... | tail -n 1)``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# soft_wrap: a message is one line whatever the width (a path in it is never split; a pipe or a log file at
# 80 columns gets the whole line, the terminal wraps it for display)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
out = Console(highlight=False, soft_wrap=True, emoji=False)

T = TypeVar("T")


def quiet() -> bool:
    """A non-zero rank of a data-parallel run (``core.spine.distributed``): it prints nothing but errors."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) != 0
    except ValueError:
        return False


def info(message: str) -> None:
    if not quiet():
        err.print(message, markup=False)


@contextmanager
def progress_bar() -> Iterator[Progress]:
    """A rich progress bar on stderr (silent when stderr is not a terminal, apart from nothing at all)."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=not sys.stderr.isatty() or quiet(),
    )
    with bar:
        yield bar


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on stderr."""
    with progress_bar() as bar:
        task = bar.add_task(description, total=total if total is not None else _len(items))
        for item in items:
            yield item
            bar.advance(task)


def _len(items) -> int | None:
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None


def result(message: str) -> None:
    """A line of the command's result on stdout (tables and headlines)."""
    if quiet():
        return
    out.print(message, markup=False)


def done(path) -> None:
    """The last line of normal output: where the command wrote."""
    if quiet():
        return
    print(str(path), flush=True)
