"""Output identity across a code change: the same command lines, before and after, write the same files.

    python benchmarks/output_identity.py record OUT_BEFORE      # at the old commit
    python benchmarks/output_identity.py record OUT_AFTER       # at the new one
    python benchmarks/output_identity.py compare OUT_BEFORE OUT_AFTER
    python benchmarks/output_identity.py record OUT --only mine,lens   # some runs (compare takes those)

``record`` runs every command in each of its modes on the organisms (small settings, ``--device cpu``, fresh
processes) into ``OUT/runs`` and writes ``OUT/runs.json``: per invocation, the exit code and the run directory
relative to ``OUT/runs``. ``compare`` checks that every invocation wrote the same run directory name (so runs
made before the change are found by the new code) and that every file in it is byte-identical, except
``run_metadata.json`` (timings, code digest: its ``config`` is compared) and, in JSON and text files, what is a
timing or clock (keys such as ``seconds`` or ``timestamp``, rates such as ``978.0 samples/s``, file sizes) or the
run root's own path; tokenlens bench's timing files are skipped. Exits 1 on any difference and prints one line per run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [{"id": f"p{i}", "a_ids": [5 + (7 * i + 3 * t) % 50 for t in range(12)],
          "b_ids": [5 + (7 * i + 3 * t + (t % 3 == 0)) % 50 for t in range(12)]} for i in range(6)]
# (name, arguments); "{pairs}" is a small aligned-pairs file, "{moe_a}" / "{moe_b}" the moe organism's two data files
RUNS: list[tuple[str, list[str]]] = [
    ("mine", ["mine", "--max-samples", "40", "--top-k", "20", "--likelihood-ratios", "--nmf-max-iter", "20"]),
    ("mine-lens", ["mine", "--max-samples", "16", "--readout", "logit-lens", "--layers", "0", "--orderings",
                   "top-k-occurring", "--no-plots"]),
    ("lens", ["lens", "--max-samples", "16"]),
    ("lens-prompt", ["lens", "--prompt", "The baker put the cake in the"]),
    ("nll", ["nll", "--max-samples", "16", "--js-mode", "all"]),
    ("nll-pairs", ["nll", "--pairs", "{pairs}", "--js-mode", "last"]),
    ("routing", ["routing", "--max-samples", "24", "--sweep", "1,2", "--bootstrap", "20", "--random-draws", "8"]),
    ("routing-data", ["routing", "--model", "organism:moe:ft", "--data-a", "{moe_a}", "--data-b", "{moe_b}",
                      "--max-samples", "16", "--bootstrap", "20"]),
    ("routing-pairs", ["routing", "--pairs", "{pairs}", "--bootstrap", "20"]),
    ("tokenlens", ["tokenlens", "attribute", "--max-new-tokens", "4"]),
    ("tokenlens-ig", ["tokenlens", "attribute", "--method", "integrated_gradients", "--ig-steps", "4",
                      "--max-new-tokens", "3", "--prompt", "The baker put the"]),
    ("tokenlens-diff", ["tokenlens", "attribute", "--base", "organism:cake:base", "--model", "organism:cake:ft",
                        "--prompt", "The baker put the", "--max-new-tokens", "3"]),
    ("tokenlens-bench", ["tokenlens", "bench", "--max-new-tokens", "2", "--max-samples", "2"]),
    ("interpret", ["interpret", "--features", "2", "--causal-samples", "4", "--steps", "20", "--latents", "64",
                   "--max-vectors", "500", "--crosscoder-batch", "128", "--random-directions", "32"]),
    ("attribute", ["attribute", "--method", "delta-h,grad,bm25,random,zfused:bm25+grad", "--max-tokens", "32"]),
    ("attribute-queries", ["attribute", "queries"]),
    ("info", ["info"]),
]
# timings, clocks, file sizes (a file holding a timing changes size) and machine load: not results
TIMING_KEYS = ("timings", "seconds", "samples_per_s", "wall_s", "timestamp", "bytes", "load_average", "extraction",
               "finished_at", "started_at")
RATE = re.compile(r"[0-9.]+ (samples/s|tok/s)")
# tokenlens bench measures time: its timing files are not results (its structure is compared through summary.json)
TIMING_FILES = {"tokenlens-bench": ("timings.csv", "summary.txt", "system_info.json")}
TIMING_FIELDS = {"tokenlens-bench": ("headline", "lines")}


def _organism_file(name: str, key: str) -> str:
    sys.path.insert(0, str(ROOT))
    from modeldiff_cli.organisms import get_organism

    return str(get_organism(name).data(key))


def record(out: Path, only: set[str] | None = None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    pairs = out / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    subs = {"pairs": str(pairs), "moe_a": _organism_file("moe", "a"), "moe_b": _organism_file("moe", "b")}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    rows = {}
    for name, args in RUNS:
        if only and name not in only:
            continue
        argv = [a.format(**subs) for a in args]
        extra = ["--device", "cpu"]
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "modeldiff_cli", *argv, *extra, "--out", str(out / "runs")],
                              capture_output=True, text=True, env=env, cwd=ROOT)
        last = (proc.stdout.strip().splitlines() or [""])[-1]
        rel = os.path.relpath(last, out / "runs") if proc.returncode == 0 else None
        rows[name] = {"argv": argv, "rc": proc.returncode, "run": rel, "stderr": proc.stderr[-400:]}
        print(f"{name:18s} rc {proc.returncode}  {time.perf_counter() - t0:5.1f} s  {rel}", flush=True)
    (out / "runs.json").write_text(json.dumps(rows, indent=1))
    return 0 if all(r["rc"] == 0 for r in rows.values()) else 1


def _masked(obj, root: str, drop: tuple[str, ...] = ()):
    """A JSON value without timing keys (and ``drop``), the run root replaced by <OUT>, rates masked."""
    if isinstance(obj, dict):
        return {k: _masked(v, root) for k, v in obj.items() if k not in TIMING_KEYS and k not in drop}
    if isinstance(obj, list):
        return [_masked(v, root) for v in obj]
    if isinstance(obj, str):
        return RATE.sub("<rate>", obj.replace(root, "<OUT>"))
    return obj


def _same(a: Path, b: Path, roots: tuple[str, str], drop: tuple[str, ...] = ()) -> str | None:
    """None when equal; else why not."""
    if a.name == "run_metadata.json":
        ca, cb = (json.loads(p.read_text()).get("config") for p in (a, b))
        return None if ca == cb else "config differs"
    if a.read_bytes() == b.read_bytes():
        return None
    if a.suffix == ".json":
        ja, jb = (_masked(json.loads(p.read_text()), r, drop) for p, r in zip((a, b), roots))
        if ja == jb:
            return None
        keys = sorted(set(ja) ^ set(jb)) if isinstance(ja, dict) and isinstance(jb, dict) else []
        diff = [k for k in ja if isinstance(jb, dict) and k in jb and ja[k] != jb[k]] if isinstance(ja, dict) else []
        return f"json differs (keys only in one: {keys}; values: {diff[:6]})"
    if a.suffix in (".md", ".csv", ".jsonl", ".txt", ".html"):
        la, lb = ([RATE.sub("<rate>", line.replace(r, "<OUT>")) for line in p.read_text().splitlines()]
                  for p, r in zip((a, b), roots))
        if la == lb:
            return None
        first = next((i for i, (x, y) in enumerate(zip(la, lb)) if x != y), min(len(la), len(lb)))
        return f"text differs at line {first + 1}"
    return "bytes differ"


def compare(before: Path, after: Path) -> int:
    ra, rb = (json.loads((d / "runs.json").read_text()) for d in (before, after))
    failed = 0
    names = [n for n in ra if n in rb]  # a record of some runs (--only) compares those
    for name in names:
        a, b = ra[name], rb.get(name)
        if b is None or a["rc"] != b["rc"]:
            print(f"FAIL {name}: exit {a['rc']} before, {b and b['rc']} after")
            failed += 1
            continue
        if a["run"] != b["run"]:
            print(f"FAIL {name}: run directory {a['run']} before, {b['run']} after")
            failed += 1
            continue
        if a["run"] is None:
            print(f"same {name}: failed alike (exit {a['rc']})")
            continue
        da, db = before / "runs" / a["run"], after / "runs" / b["run"]
        fa = sorted(p.relative_to(da).as_posix() for p in da.rglob("*") if p.is_file())
        fb = sorted(p.relative_to(db).as_posix() for p in db.rglob("*") if p.is_file())
        problems = [f"only before: {f}" for f in sorted(set(fa) - set(fb))] + \
                   [f"only after: {f}" for f in sorted(set(fb) - set(fa))]
        roots = (str(before / "runs"), str(after / "runs"))
        for f in sorted(set(fa) & set(fb)):
            if f in TIMING_FILES.get(name, ()):
                continue
            why = _same(da / f, db / f, roots, TIMING_FIELDS.get(name, ()) if f == "summary.json" else ())
            if why:
                problems.append(f"{f}: {why}")
        if problems:
            failed += 1
            print(f"FAIL {name} ({len(fa)} files): " + "; ".join(problems[:8]))
        else:
            print(f"same {name}: {len(fa)} files")
    print(f"{len(names) - failed} of {len(names)} runs identical")
    return 1 if failed else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("record")
    r.add_argument("out", type=Path)
    r.add_argument("--only", default="", help="comma list of run names (default: every one)")
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = ap.parse_args()
    if args.what == "record":
        sys.exit(record(args.out, {n for n in args.only.split(",") if n} or None))
    sys.exit(compare(args.before, args.after))


if __name__ == "__main__":
    main()
