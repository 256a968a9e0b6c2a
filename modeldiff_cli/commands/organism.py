"""`modeldiff organism`: list and build the tiny, really trained model pairs with a planted difference."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Tiny trained model pairs with a known, planted difference (built deterministically, then cached).",
    no_args_is_help=True,
)


@app.command("list")
def list_organisms() -> None:
    """Each organism: architecture, what was planted, and whether it is built (directory under the cache)."""
    from rich.table import Table

    from ..core.spine import console
    from ..organisms import ORGANISMS, cached_path, organism_root

    table = Table(title=f"organisms (cache: {organism_root()})", show_header=True)
    for column in ("name", "architecture", "description", "built", "path"):
        table.add_column(column, overflow="fold", no_wrap=column in ("name", "path"))
    for name, spec in ORGANISMS.items():
        path = cached_path(name)
        table.add_row(name, spec.architecture, spec.description, "yes" if path else "no", path.name if path else "")
    console.out.print(table)


@app.command("build")
def build(
    name: Annotated[str, typer.Argument(help="Organism name (see `modeldiff organism list`).")],
    out: Annotated[Path | None, typer.Option("--out", help="Build into this directory instead of the cache.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Rebuild even if a complete build exists (the "
                                            "same flag as every command's).")] = False,
    force: Annotated[bool, typer.Option("--force", hidden=True, help="Old spelling of --overwrite.")] = False,
) -> None:
    """Build an organism (about 15-30 s on 2 CPU cores) and print its directory as the last line."""
    from ..core.spine import console
    from ..organisms import build_organism

    organism = build_organism(name, out=out, force=overwrite or force, progress=True)
    console.result(f"{organism.name}: base={organism.base.name}/ ft={organism.ft.name}/ "
                   f"data={','.join(organism.data_keys())}")
    console.done(organism.path)
