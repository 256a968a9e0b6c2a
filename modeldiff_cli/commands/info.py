"""`modeldiff info`: what two models are, and whether they can be diffed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar

import typer

from ..core.ingredients import Pair
from ..core.spec import option, typer_callback


@dataclass(frozen=True)
class Info:
    """Architecture, parameters, layers, sizes, dtype and tokenizer relation of a model pair; exit 2 if they
    cannot be diffed (tokenizers disagree on shared ids, different layer counts or hidden sizes)."""

    name: ClassVar[str] = "info"
    defaults: ClassVar[dict] = {
        "device": ("cpu", "info only reads the weights' facts"),
        "dtype": ("auto", "the checkpoint's own dtype is the one to report"),
    }
    pair: Pair = field(default_factory=Pair)
    as_json: bool = option(False, "--json", "Print the report as JSON.")


def register(app: typer.Typer) -> None:
    app.command("info")(typer_callback(Info, info))


def info(cmd: Info) -> None:
    from ..core import console
    from ..core.errors import UserError
    from ..core.models import check_pair, describe, load_config, load_tokenizer

    base_src, ft_src = cmd.pair.sources
    report = check_pair(
        load_config(base_src, "--base"), load_config(ft_src, "--ft"),
        load_tokenizer(base_src, "--base"), load_tokenizer(ft_src, "--ft"),
    )
    rows = {"base": describe(cmd.pair.load_one("base")), "ft": describe(cmd.pair.load_one("ft"))}
    payload = {
        **rows,
        "tokenizer_relation": report.tokenizer_relation,
        "shared_vocab": report.shared_vocab,
        "compatible": report.compatible,
        "reasons": report.reasons,
        "notes": report.notes,
    }
    if cmd.as_json:
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
