"""The `modeldiff` command line: a thin Typer app, one sub-command per analysis.

Heavy libraries (torch, transformers) are imported inside the commands, never at start-up, so `--help`
and `--version` answer at once.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, no_type_check

import typer
from typer.core import TyperGroup

try:  # typer >= 0.20 vendors click as typer._click
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer on real click
    from click import exceptions as click_exc

from . import __version__
from .core.errors import UserError

_ABORT = (typer.Abort, getattr(click_exc, "Abort", typer.Abort))
_EXIT = (typer.Exit, getattr(click_exc, "Exit", typer.Exit))

# Module of each sub-command; each exposes `register(app)`.
COMMAND_MODULES = (
    "info",
    "organism",
    "mine",
    "lens",
    "nll",
    "tokenlens",
    "attribute",
    "routing",
    "interpret",
    "report",
)


def _fail(message: str, code: int, *, user: bool = False) -> None:
    from .core.spine.console import quiet

    # data-parallel runs: every rank reads the same input, so a bad input is reported once (rank 0) and every
    # rank exits 2; other failures are reported by the rank they happen on
    if user and quiet():
        sys.exit(code)
    rank = os.environ.get("RANK") if quiet() else None
    typer.echo(f"error: {f'rank {rank}: ' if rank else ''}{message}", err=True)
    sys.exit(code)


def _interrupted(exc: KeyboardInterrupt) -> None:
    """Ctrl-C: exit 130 with one line saying what was kept (``core.spine.command.Interrupted``'s text)."""
    from .core.spine.console import quiet

    if not quiet():
        typer.echo(f"interrupted: {str(exc) or 'nothing was written'}", err=True)
    sys.exit(130)


class ModeldiffGroup(TyperGroup):
    """Renders user errors as one line on stderr (exit 2) and internal failures as one line (exit 1); every
    command's ``--help`` in the layout of ``core.spine.help`` (readable at 80 columns, nothing cut)."""

    def __init__(self, *args, **kwargs):
        from .core.spine.help import readable_help

        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            readable_help(command)

    def format_help(self, ctx, formatter) -> None:
        from .core.spine.help import render

        render(self, ctx)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:  # here, before Typer turns it into a silent exit 130
            _interrupted(exc)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
        except UserError as exc:
            _fail(str(exc), 2, user=True)
        except click_exc.ClickException as exc:
            _fail(" ".join(exc.format_message().split()), exc.exit_code, user=True)
        except _ABORT:
            _fail("aborted", 130)
        except _EXIT as exc:
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            _interrupted(exc)
        except Exception as exc:  # an internal failure: one line, traceback on request
            if os.environ.get("MODELDIFF_DEBUG"):
                raise
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            _fail(f"internal error: {type(exc).__name__}: {first} (set MODELDIFF_DEBUG=1 for the traceback)", 1)
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv


app = typer.Typer(
    name="modeldiff",
    cls=ModeldiffGroup,
    help="Model diffing: what changed between a base and a fine-tuned language model, where, and why.",
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@no_type_check  # Typer passes its own types here (and None for an absent flag)
def _version(value: bool | None) -> None:
    if value:
        typer.echo(f"modeldiff {__version__}")
        raise typer.Exit()


@app.callback()
@no_type_check
def _root(
    ctx: typer.Context,
    version: Annotated[bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """Model diffing: what changed between a base and a fine-tuned language model, where, and why."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


for _name in COMMAND_MODULES:
    _module = importlib.import_module(f".commands.{_name}", __package__)
    if hasattr(_module, "register"):
        _module.register(app)
    else:
        app.add_typer(_module.app, name=_name)


def main() -> None:
    from .core.spine import timing

    timing.started_by_cli()  # the run's stage table counts this process's start-up
    app()


if __name__ == "__main__":
    main()
