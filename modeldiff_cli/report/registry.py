"""One registry of renderers, keyed by command name.

A renderer is a function ``render(run, ctx) -> str`` (the command-specific HTML of the run's page; the
summary, headline and artifacts list are added around it by the report) registered with
``@renderer("cmd")``. Optionally ``@comparer("cmd")`` registers ``compare(run) -> dict``: small JSON the
comparison page shows side by side (``{"tokens": [...], "curves": {label: [[x...], [y...]]}, "ylabel": str}``).
``@headliner("cmd")`` registers ``finding(run) -> list[(label, text)]``: the run's finding in a few short
items for the index's headline column (the top promoted tokens, the top cell, base vs ft ...), read from the
headline of summary.json.
A command with no renderer gets the generic page; with no comparer, its runs compare by headline numbers; with
no headliner (or one that finds nothing), the index shows its first scalar headline figures.
"""

from __future__ import annotations

from collections.abc import Callable

RENDERERS: dict[str, Callable] = {}
COMPARERS: dict[str, Callable] = {}
HEADLINERS: dict[str, Callable] = {}


def renderer(command: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        RENDERERS[command] = fn
        return fn

    return deco


def comparer(command: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        COMPARERS[command] = fn
        return fn

    return deco


def headliner(command: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        HEADLINERS[command] = fn
        return fn

    return deco


def load_all() -> None:
    """Import every renderer module (each registers itself)."""
    from . import renderers  # noqa: F401


class Ctx:
    """What a renderer gets besides its run: unique element ids and links to artifact files."""

    def __init__(self, ids, link: Callable[[str], str]) -> None:
        self.ids = ids
        self.link = link
