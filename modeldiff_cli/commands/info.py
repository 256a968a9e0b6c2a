"""`modeldiff info`: what two models are, and whether they can be diffed.

A spine command: it writes a small run directory (``info.json`` with the pair's facts, ``summary.json``),
reused like every run, so that ``modeldiff report`` can show the pair's facts on its index. The terminal
output is the side-by-side table, the tokenizer relation and the verdict (``--json``: the facts as JSON only).
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import typer

from ..core.errors import UserError
from ..core.spine.command import Command, Fingerprints, Result, launch
from ..core.spine.compared import Compared
from ..core.spine.spec import option
from .info_artifacts import ARTIFACTS, INFO

# the facts of each side the headline keeps (the report's index shows them in the pair's header)
HEADLINE_FACTS = ("architecture", "layers", "hidden_size", "vocab_size", "tokenizer_size", "parameters", "dtype",
                  "moe_routers")


class Incompatible(UserError):
    """The pair cannot be diffed (exit 2); it carries the facts, which --json still prints."""

    def __init__(self, message: str, payload: dict):
        super().__init__(message)
        self.payload = payload


@dataclass(frozen=True)
class Info(Command):
    """Architecture, parameters, layers, sizes, dtype and tokenizer relation of a model pair; exit 2 if they
    cannot be diffed (tokenizers disagree on shared ids, different layer counts or hidden sizes). The facts, as
    --json prints them, go into a run directory, printed last."""

    name = "info"
    artifacts = ARTIFACTS
    defaults = {
        "device": ("cpu", "info only reads the weights' facts"),
        "dtype": ("auto", "the checkpoint's own dtype is the one to report"),
    }
    organism_fill = {"base": "base", "ft": "ft"}

    compared: Compared = field(default_factory=Compared)
    as_json: bool = option(False, "--json", "Print the facts as JSON only (the run directory goes to stderr).",
                           result=False)

    def fingerprints(self) -> Fingerprints:
        return Fingerprints(self.compared.labels, (), self.compared.fingerprint())

    def execute(self, run) -> Result:
        from ..core.spine import console
        from ..core.spine.artifacts import write_json
        from ..core.spine.timing import stage

        with stage("load models and describe them"):
            payload = facts(self.compared)
        if not payload["compatible"]:  # the table still shows what differs; no run directory is written
            if not self.as_json:
                for line in terminal_lines(payload):
                    console.result(line)
            raise Incompatible("the pair cannot be diffed: " + "; ".join(payload["reasons"]), payload)
        write_json(run.file(INFO.path()), payload)
        return Result(headline=headline(payload), lines=terminal_lines(payload),
                      metadata={"tokenizer_relation": payload["tokenizer_relation"],
                                "shared_vocab": payload["shared_vocab"]})


def facts(pair: Compared) -> dict:
    """Load both models (and their configs and tokenizers) and describe them: the payload of ``INFO`` (its keys:
    ``info_artifacts.KEYS``)."""
    from ..core.model.loading import check_pair, describe, load_config, load_tokenizer

    base_src, ft_src = pair.sources
    base_tok, ft_tok = load_tokenizer(base_src, "--base"), load_tokenizer(ft_src, "--ft")
    report = check_pair(load_config(base_src, "--base"), load_config(ft_src, "--ft"), base_tok, ft_tok)
    rows = {"base": describe(pair.load_one("base")), "ft": describe(pair.load_one("ft"))}
    return {
        **rows,
        "tokenizer_relation": report.tokenizer_relation,
        "shared_vocab": report.shared_vocab,
        "tokenizer_class": {"base": type(base_tok).__name__, "ft": type(ft_tok).__name__},
        "compatible": report.compatible,
        "reasons": report.reasons,
        "notes": report.notes,
    }


def headline(payload: dict) -> dict:
    """Scalars first (the report's index shows the first ones), then each side's facts."""
    base, ft = payload["base"], payload["ft"]
    same = {k: base.get(k) for k in HEADLINE_FACTS if base.get(k) == ft.get(k)}
    return {
        "architecture": base.get("architecture"),
        "layers": base.get("layers"),
        "hidden_size": base.get("hidden_size"),
        "tokenizer_relation": payload["tokenizer_relation"],
        "shared_vocab": payload["shared_vocab"],
        "parameters": {"base": base.get("parameters"), "ft": ft.get("parameters")},
        "compatible": payload["compatible"],
        "same": same,
        "sides": {side: {k: payload[side].get(k) for k in HEADLINE_FACTS} for side in ("base", "ft")},
    }


def terminal_lines(payload: dict) -> list[str]:
    """The side-by-side table (rendered as text at the terminal's width), the tokenizer line, notes, verdict.

    They are the run's ``lines``, so a reused run prints exactly what the first one did."""
    from rich.console import Console
    from rich.table import Table

    from ..core.spine import console

    table = Table(title="modeldiff info", show_header=True)
    table.add_column("")
    table.add_column("base")
    table.add_column("ft")
    for key in payload["base"]:
        table.add_row(key, str(payload["base"][key]), str(payload["ft"][key]))
    buf = io.StringIO()
    Console(file=buf, width=console.out.width, highlight=False, emoji=False, color_system=None,
            force_terminal=False).print(table)
    lines = [line.rstrip() for line in buf.getvalue().rstrip("\n").splitlines()]
    lines.append(f"tokenizers: {payload['tokenizer_relation']} (shared ids: {payload['shared_vocab']})")
    lines.extend(f"note: {note}" for note in payload["notes"])
    if payload["compatible"]:
        lines.append("compatible: yes, the pair can be diffed")
    return lines


def register(app: typer.Typer) -> None:
    from ..core.spine.command import register as add

    add(app, Info, run=info)


def info(cmd: Info) -> Path:
    """The spine's launch; with --json stdout holds the JSON document alone."""
    from ..core.spine import console
    from ..core.spine.artifacts import read_json

    if not cmd.as_json:
        return launch(cmd)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            path = launch(cmd)
    except Incompatible as err:  # --json prints the facts even when the pair cannot be diffed
        print(json.dumps(err.payload, indent=2))
        raise
    print(json.dumps(read_json(path / INFO.path()), indent=2))
    console.info(f"run directory: {path}")
    return path
