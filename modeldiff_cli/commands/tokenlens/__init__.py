"""`modeldiff tokenlens`: which input tokens drove each generated token, for one model or base vs fine-tuned.

Sub-commands ``attribute``, ``methods`` and ``bench``; their options are generated from the dataclasses in
``command.py`` (light imports: ``--help`` loads no torch)."""

from __future__ import annotations

import typer


def register(root: typer.Typer) -> None:
    from ...core.spine.command import launch
    from ...core.spine.spec import typer_callback
    from .command import TokenlensAttribute, TokenlensBench, TokenlensMethods, list_methods, run_attribute

    group = typer.Typer(name="tokenlens", no_args_is_help=True, add_completion=False,
                        help="Token-level input attribution (native batched gradients or inseq), diff mode, benchmarks.",
                        context_settings={"help_option_names": ["-h", "--help"]})
    group.command("attribute")(typer_callback(TokenlensAttribute, run_attribute))
    group.command("methods")(typer_callback(TokenlensMethods, list_methods))
    group.command("bench")(typer_callback(TokenlensBench, launch))
    root.add_typer(group, name="tokenlens")
