"""`modeldiff interpret`: named, feature-level differences between two models, grounded in data, with a report."""

from __future__ import annotations

import typer

from .command import Interpret


def register(app: typer.Typer) -> None:
    from ...core.spine.command import register as add

    add(app, Interpret)
