"""`modeldiff routing`: which experts a mixture-of-experts model uses, compared between two models or two
conditions, and the mask sweep that tests whether those experts carry the difference."""

from __future__ import annotations

import typer

from .command import Routing


def register(app: typer.Typer) -> None:
    from ...core.spine.command import register as add

    add(app, Routing)
