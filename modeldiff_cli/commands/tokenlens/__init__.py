"""`modeldiff tokenlens`: which input tokens drove each generated token, for one model or base vs fine-tuned.

Sub-commands ``attribute``, ``methods`` and ``bench``; their options are generated from the dataclasses in
``command.py`` (light imports: ``--help`` loads no torch)."""

from __future__ import annotations

import typer


def register(root: typer.Typer) -> None:
    from ...core.spine.command import register as add
    from .command import TokenlensAttribute, TokenlensBench, TokenlensMethods, list_methods, run_attribute

    group = add(root, None, name="tokenlens",
                group="Token-level input attribution (native batched gradients or inseq), diff mode, benchmarks.")
    add(group, TokenlensAttribute, name="attribute", run=run_attribute)
    add(group, TokenlensMethods, run=list_methods)
    add(group, TokenlensBench, name="bench")
