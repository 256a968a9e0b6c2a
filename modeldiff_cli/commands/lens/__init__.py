"""`modeldiff lens`: at which layer does the fine-tuning difference appear, and what does each layer "think"?"""

from __future__ import annotations

import typer

from .command import Lens


def register(app: typer.Typer) -> None:
    from ...core.spine.command import register as add

    add(app, Lens)
