"""`modeldiff attribute`: which training documents made the new checkpoint (--ft) answer a query differently
from the old one (--base)? Scores every (query, training document) pair by comparing pooled Δh / gradient
vectors, by causal patching, or by text baselines, and scores the rankings against ground truth. Light imports
only."""

from __future__ import annotations

import typer

from .command import Attribute, AttributeQueries

HELP = __doc__.split("Light imports")[0]


def register(app: typer.Typer) -> None:
    from ...core.spine.command import register as add

    group = add(app, Attribute, group=HELP)
    add(group, AttributeQueries, name="queries")


__all__ = ["Attribute", "AttributeQueries", "register"]
