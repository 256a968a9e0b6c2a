"""`modeldiff mine`: which tokens did fine-tuning promote or suppress? (Registers a light Typer group.)"""

from __future__ import annotations

from .command import Mine

HELP = ("Which tokens did fine-tuning promote or suppress? Streaming logit-diff mining with orderings; "
        "`mine overview RUN_DIR` builds the agent payload of a run.")


def register(app) -> None:
    from ...core.spine.command import register as add
    from .overview import overview_callback

    group = add(app, Mine, group_help=HELP)
    group.command("overview")(overview_callback())


__all__ = ["Mine", "register"]
