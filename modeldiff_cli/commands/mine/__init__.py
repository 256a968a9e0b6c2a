"""`modeldiff mine`: which tokens did fine-tuning promote or suppress? (Registers a light Typer group.)"""

from __future__ import annotations

from .command import Mine

HELP = ("Which tokens did fine-tuning promote or suppress? Streaming logit-diff mining with orderings; "
        "`mine overview RUN_DIR` builds the agent payload of a run.")


def register(app) -> None:
    from pathlib import Path

    from ...core.spine.command import register as add
    from .overview import Overview, run_overview

    group = add(app, Mine, group=HELP)
    add(group, Overview, name="overview", run=run_overview,
        argument=("run_dir", Path, "A complete `modeldiff mine` run directory.", "RUN_DIR"))


__all__ = ["Mine", "register"]
