"""`modeldiff report PATH... --out DIR`: one static HTML dashboard over run directories (see docs/report.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import typer

from ..core.spine.spec import option


@dataclass(frozen=True)
class Report:
    """Find every complete run directory under PATH... (partial ones are skipped and listed) and write
    index.html plus one page per run into --out: static, self-contained, opens from disk. Re-running
    rewrites only what changed; prints the index path last."""

    name: ClassVar[str] = "report"
    out: str = option("report", "--out", "Folder the report is written to (index.html, runs/, files/).")
    copy_limit: int = option(1_000_000, "--copy-limit",
                             "Artifacts up to this many bytes are copied into the report folder; larger ones are linked "
                             "to the run directory.", min=0)


def register(app: typer.Typer) -> None:
    from ..core.spine.command import register as add

    add(app, Report, run=run_report,
        argument=("paths", list[Path], "Run directories or folders holding them (e.g. runs/).", "PATH..."))


def run_report(paths: list[Path], opts: Report) -> Path:
    from ..core.errors import UserError
    from ..core.spine import console
    from ..report import build_report
    from ..report.finding import plural

    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise UserError(f"PATH: no such file or directory: {', '.join(missing)}")
    result = build_report([Path(p) for p in paths], Path(opts.out), copy_limit=opts.copy_limit)
    if not result.runs:
        raise UserError(f"no run directories (folders with summary.json) under {', '.join(str(p) for p in paths)}")
    console.result(f"report: {plural(len(result.runs), 'run')}, {plural(len(result.written), 'file')} written, "
                   f"{result.unchanged} unchanged"
                   + (f", {result.removed} stale removed" if result.removed else ""))
    for p in result.partial:
        console.result(f"skipped partial run: {p}")
    for r in result.runs:
        if r.warnings:
            console.result(f"warning: {r.rel}: {r.warnings[0]}" + (f" (+{len(r.warnings) - 1} more)" if len(r.warnings) > 1 else ""))
    console.done(result.index)
    return result.index
