"""`modeldiff info`: what two models are, and whether they can be diffed."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..core import options as opt


def register(app: typer.Typer) -> None:
    app.command("info")(info)


def info(
    base: opt.Base = None,
    ft: opt.Ft = None,
    device: opt.Device = "cpu",
    dtype: opt.Dtype = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Architecture, parameters, layers, sizes, dtype and tokenizer relation of a model pair; exit 2 if they
    cannot be diffed (tokenizers disagree on shared ids, different layer counts or hidden sizes)."""
    from ..core import console
    from ..core.errors import UserError
    from ..core.models import check_pair, describe, load_config, load_model, load_tokenizer, resolve_source

    base_src = resolve_source(base, role="base", flag="--base")
    ft_src = resolve_source(ft, role="ft", flag="--ft")
    report = check_pair(
        load_config(base_src, "--base"), load_config(ft_src, "--ft"),
        load_tokenizer(base_src, "--base"), load_tokenizer(ft_src, "--ft"),
    )
    rows = {
        "base": describe(load_model(base_src, dtype=dtype, device=device, flag="--base")),
        "ft": describe(load_model(ft_src, dtype=dtype, device=device, flag="--ft")),
    }
    payload = {
        **rows,
        "tokenizer_relation": report.tokenizer_relation,
        "shared_vocab": report.shared_vocab,
        "compatible": report.compatible,
        "reasons": report.reasons,
        "notes": report.notes,
    }
    if as_json:
        print(json.dumps(payload, indent=2))
    else:
        from rich.table import Table

        table = Table(title="modeldiff info", show_header=True)
        table.add_column("")
        table.add_column("base")
        table.add_column("ft")
        for key in rows["base"]:
            table.add_row(key, str(rows["base"][key]), str(rows["ft"][key]))
        console.out.print(table)
        console.result(f"tokenizers: {report.tokenizer_relation} (shared ids: {report.shared_vocab})")
        for note in report.notes:
            console.result(f"note: {note}")
        if report.compatible:
            console.result("compatible: yes, the pair can be diffed")
    if not report.compatible:
        raise UserError("the pair cannot be diffed: " + "; ".join(report.reasons))
