"""`modeldiff report` over 100 run directories: wall time (target < 10 s on 2 cores) and index.html size
(target < 2 MB).

The 100 runs are synthesised by copying a few real ones (made on the organisms with small --max-samples, or
taken from RUNS=path of existing runs) under distinct pair names. Usage:

    .venv/bin/python benchmarks/report_speed.py            # prints one JSON line; exit 1 past a target
    taskset -c 0,1 .venv/bin/python benchmarks/report_speed.py   # on 2 cores
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = Path(os.environ.get("RUNS") or ROOT / ".pytest_cache" / "modeldiff-report-runs")
N = int(os.environ.get("N_RUNS", "100"))


def _sources() -> list[Path]:
    if not any(SOURCE.rglob("summary.json")):
        from typer.testing import CliRunner

        from modeldiff_cli.cli import app

        runner = CliRunner()
        for args in (("mine", "--max-samples", "8"), ("lens", "--max-samples", "4"), ("nll", "--max-samples", "4"),
                     ("routing", "--max-samples", "4"), ("tokenlens", "attribute", "--max-samples", "2")):
            res = runner.invoke(app, [*args, "--out", str(SOURCE)])
            assert res.exit_code == 0, res.stderr
    return sorted(p.parent for p in SOURCE.rglob("summary.json") if ".partial-" not in str(p))


def main() -> int:
    from modeldiff_cli.report import build_report

    sources = _sources()
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        for i in range(N):
            src = sources[i % len(sources)]
            command, pair, leaf = src.parts[-3:]
            shutil.copytree(src, runs / command / f"{pair}-copy{i // len(sources)}" / leaf)
        t0 = time.perf_counter()
        res = build_report([runs], Path(tmp) / "report")
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = build_report([runs], Path(tmp) / "report")
        warm = time.perf_counter() - t0
        index_bytes = res.index.stat().st_size
        pages = sorted((Path(tmp) / "report" / "runs").glob("*.html"))
        out = {"runs": len(res.runs), "sources": len(sources), "cold_s": round(cold, 3), "rerun_s": round(warm, 3),
               "rerun_written": len(again.written), "index_bytes": index_bytes,
               "largest_page_bytes": max(p.stat().st_size for p in pages), "cpus": len(os.sched_getaffinity(0))}
    print(json.dumps(out))
    ok = out["runs"] == N and cold < 10 and index_bytes < 2_000_000 and out["rerun_written"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
