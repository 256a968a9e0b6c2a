"""`modeldiff nll`: per-layer language-modelling quality of two conditions (two models, or two inputs)."""

from __future__ import annotations

import typer

from .command import Nll


def register(app: typer.Typer) -> None:
    from ...core.spine.command import register as add

    add(app, Nll)
