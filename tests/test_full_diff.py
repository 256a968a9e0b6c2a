"""examples/full_diff.sh end to end: the whole chain and a report on the cake organism (two prompt categories),
the moe organism (routing included) and a local pair directory with one data file (interpret's one-source mode).

Kept cheap through the script's environment: few samples, a tiny crosscoder, a short causal check."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "full_diff.sh"
MODELDIFF = Path(sys.executable).parent / "modeldiff"
SMALL = {"MAX_SAMPLES": "16", "SWEEP": "1",
         "INTERPRET_ARGS": "--steps 20 --latents 64 --active-latents 4 --max-vectors 512 --crosscoder-batch 64 "
                           "--causal-samples 4 --features 2 --random-directions 32"}
CHAIN = {"info", "mine", "lens", "nll", "interpret"}


def full_diff(out: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "MODELDIFF": str(MODELDIFF), "OUT": str(out), **SMALL, **env}
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=environ,
                          timeout=900)


def check_chain(proc, out: Path, commands: set[str]) -> dict[str, dict]:
    """The script succeeded, printed the report's index last, and the report holds one run of each command;
    returns each command's summary.json."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    index = Path(proc.stdout.strip().splitlines()[-1])
    assert index == out / "report" / "index.html" and index.is_file(), proc.stdout
    runs = json.loads((out / "report" / "report.json").read_text())["runs"]
    assert sorted(r["command"] for r in runs) == sorted(commands), runs
    html = index.read_text()
    summaries = {}
    for r in runs:
        assert f"runs/{r['id']}.html" in html, r["id"]
        summaries[r["command"]] = json.loads((Path(r["path"]) / "summary.json").read_text())
        assert summaries[r["command"]]["command"] == r["command"]
    return summaries


def test_header_usage_line_runs():
    """The example in the script's header is a command that works as written (it needs `| tail -n 1`)."""
    header = SCRIPT.read_text().split("set -euo pipefail")[0]
    sub = re.search(r'"\$\((.+?)\)/data/base\.jsonl"', header)
    assert sub, header
    cmd = sub.group(1).replace(".venv/bin/modeldiff", str(MODELDIFF))
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert (Path(proc.stdout.strip()) / "data" / "base.jsonl").is_file(), proc.stdout


def test_wrong_argument_count_exit_2(tmp_path):
    proc = full_diff(tmp_path / "runs", "organism:cake:base", "organism:cake:ft")
    assert proc.returncode == 2 and proc.stderr.strip().startswith("usage:"), proc.stderr
    assert not (tmp_path / "runs").exists()


def test_local_pair_one_data_file(tmp_path):
    """A user's own pair (two local directories) and one data file: the whole chain and a report; interpret
    reads the one file as one data source and still finds the planted difference (a copy of the cake pair)."""
    from modeldiff_cli.organisms import get_organism

    org = get_organism("cake")
    pair = tmp_path / "my_pair"
    for role in ("base", "ft"):
        shutil.copytree(org.path / role, pair / role)
    data = tmp_path / "prompts.jsonl"
    shutil.copy(org.data("ft"), data)
    out = tmp_path / "runs"
    proc = full_diff(out, pair / "base", pair / "ft", data)
    summaries = check_chain(proc, out, CHAIN)
    assert "routing skipped (not a mixture-of-experts pair)" in proc.stderr
    head = summaries["interpret"]["headline"]
    assert head["categories"] == ["prompts"] and head["mode"] == "one data source", head
    run = next((out / "interpret").glob("*/*"))
    feats = json.loads((run / "features.json").read_text())["features"]
    every = feats + [m for f in feats for m in f["merged"]]
    assert every and not [f for f in every if f.get("basis") == "specific"], [f.get("basis") for f in every]
    assert all(f["support"] == 0 and set(f["categories"]) == {"prompts"} for f in feats), feats
    assert json.loads((run / "token_relevance.json").read_text())["categories"] == {}
    report = (run / "report.md").read_text()
    assert "one data source (`prompts`" in report and "| n/a |" in report  # no other category: no dCE others
    # the planted baking vocabulary: the data's mean difference reads it and is among the features
    planted = {" " + w for w in org.ground_truth["planted_words"]}
    mean = next(f for f in every if f.get("basis") == "mean")
    assert len(set(mean["tokens"][:10]) & planted) >= 6, mean["tokens"][:10]


@pytest.mark.slow
def test_moe_organism(tmp_path):
    """The moe organism with one of its data files: routing joins the chain; interpret on one data source."""
    from modeldiff_cli.organisms import get_organism

    org = get_organism("moe")
    out = tmp_path / "runs"
    proc = full_diff(out, "organism:moe:base", "organism:moe:ft", org.data("a"))
    summaries = check_chain(proc, out, CHAIN | {"routing"})
    head = summaries["interpret"]["headline"]
    assert head["categories"] == ["a"] and head["mode"] == "one data source", head
    routing = next((out / "routing").glob("*/*"))
    tv = summaries["routing"]["headline"]["tv_topk"]
    assert tv and (routing / "mask_sweep.csv").is_file(), summaries["routing"]["headline"]


@pytest.mark.slow
def test_cake_organism(tmp_path):
    """cake: interpret contrasts the built-in baking / everyday categories (not the one data file)."""
    from modeldiff_cli.organisms import get_organism

    out = tmp_path / "runs"
    proc = full_diff(out, "organism:cake:base", "organism:cake:ft", get_organism("cake").data("base"))
    summaries = check_chain(proc, out, CHAIN)
    head = summaries["interpret"]["headline"]
    assert head["categories"] == ["baking", "everyday"] and "mode" not in head, head
