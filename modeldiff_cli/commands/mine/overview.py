"""`modeldiff mine overview RUN_DIR`: the agent payload of a mine run (built by ``commands.mine.payload``), written beside
the run directory (a complete run is never modified) or to --output.

Stdout is the JSON document alone (``| jq`` works); where it was written goes to stderr (``overview: PATH``),
as `info --json` does with its run directory."""

from __future__ import annotations

import json
from pathlib import Path

from ...core.spine import console
from .command import Overview


def overview_path(run_dir: Path, opts: Overview) -> Path:
    if opts.output is not None:
        return Path(opts.output)
    return run_dir.parent / f"{run_dir.name}.overview_budget{opts.token_budget}.json"


def run_overview(run_dir: Path, opts: Overview) -> Path:
    from ...core.spine.artifacts import write_json  # numpy: not at start-up
    from .payload import build_payload

    run_dir = Path(run_dir)
    payload = build_payload(run_dir, opts.token_budget, command="mine", flag="RUN_DIR")
    path = write_json(overview_path(run_dir, opts), payload)
    console.out.print_json(json.dumps(payload))  # stdout: the JSON only
    console.info(f"overview: {path}")
    return path
