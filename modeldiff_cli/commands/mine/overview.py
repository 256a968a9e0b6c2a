"""`modeldiff mine overview RUN_DIR`: the agent payload of a mine run (built by ``core.payload``), printed and
written beside the run directory (a complete run is never modified)."""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path
from typing import Annotated

from ...core import console
from ...core.spec import typer_callback
from .command import Overview


def overview_path(run_dir: Path, opts: Overview) -> Path:
    if opts.output is not None:
        return Path(opts.output)
    return run_dir.parent / f"{run_dir.name}.overview_budget{opts.token_budget}.json"


def run_overview(run_dir: Path, opts: Overview) -> Path:
    from ...core.artifacts import write_json  # numpy: not at start-up
    from ...core.payload import build_payload

    run_dir = Path(run_dir)
    payload = build_payload(run_dir, opts.token_budget, command="mine", flag="RUN_DIR")
    path = write_json(overview_path(run_dir, opts), payload)
    console.out.print_json(json.dumps(payload))
    console.done(path)
    return path


@typing.no_type_check  # Typer's own objects come in here
def overview_callback():
    """The Typer callback of `mine overview`: the RUN_DIR argument, then the options generated from Overview."""
    import typer

    options = typer_callback(Overview, lambda opts: opts)
    run_dir = inspect.Parameter(
        "run_dir", inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[Path, typer.Argument(help="A complete `modeldiff mine` run directory.", metavar="RUN_DIR", show_default=False)],
    )

    def overview(run_dir: Path, **values):
        return run_overview(run_dir, options(**values))

    sig = inspect.signature(options)
    overview.__signature__ = sig.replace(parameters=[run_dir, *sig.parameters.values()])
    overview.__annotations__ = {p.name: p.annotation for p in overview.__signature__.parameters.values()}
    overview.__doc__ = options.__doc__
    return overview
