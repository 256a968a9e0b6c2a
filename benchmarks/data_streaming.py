"""`--max-samples` streams: reading 1000 records from a 10-million-row Parquet file costs about 1000 rows.

Writes a Parquet file of N short texts (default 10 million, row groups of 100k rows, with pyarrow) into a temp
directory (deleted afterwards), then, each in a fresh subprocess for a clean peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``):
- ``baseline``: imports modeldiff_cli.core.data.datasets and pyarrow, reads nothing;
- ``stream``: ``read_records(path, max_samples=1000)``;
- ``full`` (unless --skip-full): ``pyarrow.parquet.read_table(path)``, what reading the whole file would cost.
Prints wall time and peak RSS of each, and the stream/full ratios.

    .venv/bin/python benchmarks/data_streaming.py [--rows 10000000] [--max-samples 1000] [--skip-full]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_parquet(path: Path, rows: int, group: int = 100_000) -> None:
    """``rows`` texts like ``sample 123 of the streaming benchmark``, written one row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("text", pa.string()), ("id", pa.int64())])
    with pq.ParquetWriter(path, schema) as writer:
        for lo in range(0, rows, group):
            ids = range(lo, min(rows, lo + group))
            texts = [f"sample {i} of the streaming benchmark" for i in ids]
            writer.write_table(pa.table({"text": texts, "id": list(ids)}, schema=schema))


def child(mode: str, path: str, max_samples: int) -> dict:
    """Runs in a fresh interpreter: one measurement, as JSON."""
    import pyarrow.parquet as pq

    from modeldiff_cli.core.data.datasets import read_records

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    n = 0
    if mode == "stream":
        n = len(read_records(path, max_samples=max_samples))
    elif mode == "full":
        n = pq.read_table(path).num_rows
    wall = time.perf_counter() - start
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"mode": mode, "rows": n, "wall_s": wall, "peak_rss_mib": rss1 / 1024, "rss_delta_mib": (rss1 - rss0) / 1024}


def measure(mode: str, path: Path, max_samples: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--path", str(path), "--max-samples", str(max_samples)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--max-samples", type=int, default=1000)
    ap.add_argument("--skip-full", action="store_true", help="do not measure reading the whole file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.path, args.max_samples)))
        return
    with tempfile.TemporaryDirectory(prefix="modeldiff-bench-") as tmp:
        path = Path(tmp) / "big.parquet"
        start = time.perf_counter()
        write_parquet(path, args.rows)
        size = path.stat().st_size / (1 << 20)
        print(f"wrote {args.rows:,} rows ({size:.0f} MiB) in {time.perf_counter() - start:.1f} s")
        modes = ["baseline", "stream"] + ([] if args.skip_full else ["full"])
        results = {m: measure(m, path, args.max_samples) for m in modes}
    print(f"{'mode':<9} {'rows':>11} {'wall s':>8} {'peak RSS MiB':>13} {'RSS delta MiB':>14}")
    for r in results.values():
        print(f"{r['mode']:<9} {r['rows']:>11,} {r['wall_s']:>8.3f} {r['peak_rss_mib']:>13.1f} {r['rss_delta_mib']:>14.1f}")
    s = results["stream"]
    line = f"stream: {s['rows']:,} of {args.rows:,} rows in {s['wall_s']:.3f} s, peak RSS {s['peak_rss_mib']:.0f} MiB"
    line += f" (+{s['peak_rss_mib'] - results['baseline']['peak_rss_mib']:.1f} MiB over the import baseline)"
    if "full" in results:
        f = results["full"]
        line += f"; vs reading it all: {s['wall_s'] / f['wall_s']:.4f}x time, {s['rss_delta_mib'] / max(f['rss_delta_mib'], 1e-9):.4f}x RSS growth"
    print(line)


if __name__ == "__main__":
    main()
