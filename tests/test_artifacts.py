"""Every command's declared artifacts (its ``artifacts.py``, ``core.spine.declared``) against what it writes.

Each case runs one command in one of its modes on an organism (tiny settings, in-process). Then: every declared
artifact the run makes exists, with every declared column / key / array; every file the run wrote is declared
(summary.json's descriptions come from the declarations); and the report's renderer of the command reads the
run without a warning (a missing file, column or key is a warning on the run's page). A renamed column fails here.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

PAIRS = [{"id": f"p{i}", "a_ids": [5 + (7 * i + 3 * t) % 50 for t in range(12)],
          "b_ids": [5 + (7 * i + 3 * t + (t % 3 == 0)) % 50 for t in range(12)]} for i in range(4)]


def _cases() -> dict[str, tuple[str, str, dict]]:
    """name -> (module of the command class, class name, options); "{pairs}", "{moe_a}", "{moe_b}" filled in."""
    small = {"max_samples": 6, "max_tokens": 24}
    return {
        "mine": ("mine", "Mine", {**small, "top_k": 10, "likelihood_ratios": True, "nmf_max_iter": 10,
                                  "nmf_topics": 2}),
        "lens": ("lens", "Lens", small),
        "lens-prompt": ("lens", "Lens", {"prompt": "The baker put the cake in the"}),
        "nll": ("nll", "Nll", {**small, "js_mode": "all"}),
        "nll-pairs": ("nll", "Nll", {"pairs": "{pairs}", "js_mode": "last", "save_hidden_states": True}),
        "routing": ("routing", "Routing", {**small, "sweep": "1", "bootstrap": 10}),
        "routing-data": ("routing", "Routing", {**small, "model": "organism:moe:ft", "data_a": "{moe_a}",
                                                "data_b": "{moe_b}", "bootstrap": 10}),
        "routing-pairs": ("routing", "Routing", {"pairs": "{pairs}", "bootstrap": 10}),
        "tokenlens": ("tokenlens.command", "TokenlensAttribute", {"max_samples": 2, "max_new_tokens": 3}),
        "tokenlens-diff": ("tokenlens.command", "TokenlensAttribute", {"base": "organism:cake:base", "ft": "organism:cake:ft",
                                                               "prompt": "The baker put the", "max_new_tokens": 2}),
        "tokenlens-inseq": ("tokenlens.command", "TokenlensAttribute", {"base": "organism:cake:base",
                                                                        "ft": "organism:cake:ft", "engine": "inseq",
                                                                        "prompt": "The baker put the",
                                                                        "max_new_tokens": 2}),
        "tokenlens-bench": ("tokenlens.command", "TokenlensBench", {"max_samples": 1, "max_new_tokens": 2}),
        "interpret": ("interpret", "Interpret", {"features": 1, "causal_samples": 2, "steps": 10, "latents": 32,
                                                 "max_vectors": 200, "crosscoder_batch": 64,
                                                 "random_directions": 32, "max_tokens": 24}),
        "attribute": ("attribute", "Attribute", {"method": "delta-h,grad,bm25,random,zfused:bm25+grad",
                                                 "max_tokens": 32}),
        "attribute-queries": ("attribute", "AttributeQueries", {}),
        "info": ("info", "Info", {}),
    }


CASES = _cases()


def _run(name: str, root: Path):
    """Run one case in-process into ``root/runs``; returns (the command, its run directory)."""
    import importlib

    from modeldiff_cli.core.spine.command import launch
    from modeldiff_cli.organisms import get_organism

    pairs = root / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    moe = get_organism("moe")
    subs = {"pairs": str(pairs), "moe_a": str(moe.data("a")), "moe_b": str(moe.data("b"))}
    module, cls_name, opts = CASES[name]
    cls = getattr(importlib.import_module("modeldiff_cli.commands." + module), cls_name)
    values = {k: v.format(**subs) if isinstance(v, str) else v for k, v in opts.items()}
    cmd = cls.make(**values, device="cpu", out=root / "runs")
    return cmd, launch(cmd)


def _present(path: Path) -> set[str] | None:
    """What a file holds by name: a CSV's header, a JSON object's keys (a list's first record's), a JSONL's
    first record's keys, an NPZ's arrays; None for other files."""
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            return set(next(csv.reader(fh), []))
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        first = data[0] if isinstance(data, list) and data else data
        return set(first) if isinstance(first, dict) else set()
    if path.suffix == ".jsonl":
        line = next((ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()), None)
        return set(json.loads(line)) if line else set()
    if path.suffix == ".npz":
        with np.load(path) as z:
            return set(z.files)
    return None


@pytest.mark.parametrize("name", list(CASES))
def test_declared_artifacts_are_written_with_their_columns_and_rendered(name, tmp_path):
    """One run per case (the cases spread over the xdist workers): what it wrote against its declarations, then
    what the report's renderer read of it."""
    cmd, run_dir = _run(name, tmp_path)
    declared = type(cmd).artifacts
    assert declared, f"{type(cmd).__name__} declares no artifacts"
    written = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()
                     and p.name not in ("summary.json", "run_metadata.json"))
    from fnmatch import fnmatch

    # as summary.json describes a file: by the first declaration whose glob matches it
    owner = {f: next((a for a in declared if fnmatch(f, a.glob)), None) for f in written}
    undeclared = [f for f, a in owner.items() if a is None]
    assert not undeclared, f"{name}: written but not declared: {undeclared}"
    for art in declared:
        files = [f for f, a in owner.items() if a is art]
        if art.made_by(cmd):
            assert files, f"{name}: declared {art.pattern} was not written (files: {written})"
        for f in files:
            present = _present(run_dir / f)
            if present is not None and art.columns:
                missing = [c for c in art.columns if c not in present]
                assert not missing, f"{name}: {f} lacks declared {missing} (has {sorted(present)})"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert all(a["description"] for a in summary["artifacts"]), summary["artifacts"]

    from modeldiff_cli.report.build import render_run
    from modeldiff_cli.report.html import Ids
    from modeldiff_cli.report.registry import Ctx
    from modeldiff_cli.report.runs import load_run

    run = load_run(run_dir, tmp_path / "runs")
    html = render_run(run, Ctx(Ids(), lambda rel: rel))
    assert run.warnings == [], f"{name}: {run.warnings}"
    assert "renderer failed" not in html and len(html) > 500
