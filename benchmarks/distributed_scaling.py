"""`mine` data-parallel scaling: 1 vs N CPU processes (one thread each) on the same work, and the time in reductions.

Usage: .venv/bin/python benchmarks/distributed_scaling.py [--samples 16] [--tokens 64] [--batch-size 4] [--procs 1,2]
       [--top-k 100] [--records]

Pair: the SmolLM-135M-shaped Llama of mine_overhead.py (vocab 49152, 30 layers, random weights, two seeds). For
each process count P the script re-launches itself under ``torchrun --nproc_per_node P`` (gloo, OMP_NUM_THREADS=1);
every rank builds the pair, takes its contiguous block of the batches (``core.spine.distributed.shard``), runs mine's
streaming loop (``accumulate``: core.model.forward + readout + statistics) and then ``reduce_ranks`` (the all-reduce of
the per-vocabulary float64 / int64 accumulators, plus the gather of the NMF records with --records). Reported per
P: wall time of the slowest rank's loop + reduction, the reduction's time, its share of the run, the bytes
reduced, and the speed-up over P=1. ``--checkpoint`` also times one ``--checkpoint-every`` save of each rank's
accumulators (``core.spine.checkpoint.Store.save``: torch.save beside, then rename) and reports its size. Prints one
JSON line per P, then a summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def worker(a) -> None:
    import torch
    from mine_overhead import batches, build_pair

    from modeldiff_cli.commands.mine.accumulate import accumulate, reduce_ranks
    from modeldiff_cli.commands.mine.extract import make_extractor
    from modeldiff_cli.core.spine import distributed as dist

    torch.set_num_threads(1)
    dist.init()
    base, ft = build_pair()
    allb = batches(a.samples, a.tokens, a.batch_size)
    mine = dist.shard(allb)
    eb, ef = make_extractor(base, "logits"), make_extractor(ft, "logits")
    accumulate(batches(1, 8, 1), eb, ef, vocab=49152, top_k=a.top_k, n_samples=1, max_len=8)  # warm-up
    dist.gather_objects(0)  # start together
    t0 = time.perf_counter()
    acc = accumulate(mine, eb, ef, vocab=49152, top_k=a.top_k, n_samples=a.samples, max_len=a.tokens,
                     collect_records=a.records)
    dist.gather_objects(0)  # wait for the slowest rank: the reduction's own time starts here
    t1b = time.perf_counter()
    acc = reduce_ranks(acc)
    t2 = time.perf_counter()
    s = acc.stats
    nbytes = sum(t.numel() * t.element_size() for t in (s.sum_diff, s.count_positive, s.count_topk_pos,
                                                        s.count_topk_neg, s.position_hist))
    ck = (0.0, 0)
    if a.checkpoint:  # what one checkpoint of this rank's (unreduced) accumulators costs
        import tempfile

        from modeldiff_cli.core.spine.checkpoint import Store

        with tempfile.TemporaryDirectory() as tmp:
            store = Store(1, Path(tmp) / f"rank{dist.rank()}-of-{dist.world_size()}.pt", {"command": "mine"})
            t3 = time.perf_counter()
            store.save(1, {"accs": [acc], "position": (1, 0)})
            ck = (time.perf_counter() - t3, store.path.stat().st_size)
    times = dist.gather_objects((t1b - t0, t2 - t1b, len(mine), *ck))
    if dist.is_main():
        loop = max(t[0] for t in times)
        reduce = max(t[1] for t in times)
        print("RESULT " + json.dumps({"procs": dist.world_size(), "loop_s": loop, "reduce_s": reduce,
                                      "total_s": loop + reduce, "reduce_share": reduce / (loop + reduce),
                                      "reduced_bytes": nbytes * (dist.world_size() > 1), "batches": [t[2] for t in times],
                                      "positions": s.total_positions,
                                      **({"checkpoint_s": max(t[3] for t in times), "checkpoint_bytes": times[0][4]}
                                         if a.checkpoint else {})}), flush=True)
    dist.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--procs", default="1,2")
    p.add_argument("--records", action="store_true", help="also collect and gather the NMF top-K records")
    p.add_argument("--checkpoint", action="store_true", help="also time one checkpoint save per rank")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a)
        return
    torchrun = Path(sys.executable).with_name("torchrun")
    rows = []
    for procs in [int(x) for x in a.procs.split(",")]:
        args = [str(torchrun), "--standalone", "--nproc_per_node", str(procs), __file__, "--worker",
                "--samples", str(a.samples), "--tokens", str(a.tokens), "--batch-size", str(a.batch_size),
                "--top-k", str(a.top_k), *(["--records"] if a.records else []),
                *(["--checkpoint"] if a.checkpoint else [])]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        res = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        line = next((x for x in res.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"torchrun with {procs} processes failed:\n{res.stderr[-3000:]}")
        row = json.loads(line[7:])
        print(json.dumps(row), flush=True)
        rows.append(row)
    one = next((r for r in rows if r["procs"] == 1), rows[0])
    print(f"\n{a.samples} samples x {a.tokens} tokens, batch {a.batch_size}, top-k {a.top_k}"
          f"{', NMF records gathered' if a.records else ''}")
    print("procs  total_s  loop_s  reduce_s  reduce_share  speed-up  reduced_MB" + ("  ckpt_s  ckpt_MB" if a.checkpoint else ""))
    for r in rows:
        ck = f"  {r['checkpoint_s']:6.3f}  {r['checkpoint_bytes'] / 1e6:7.2f}" if a.checkpoint else ""
        print(f"{r['procs']:>5}  {r['total_s']:7.2f}  {r['loop_s']:6.2f}  {r['reduce_s']:8.4f}  {r['reduce_share']:11.2%}  "
              f"{one['total_s'] / r['total_s']:7.2f}x  {r['reduced_bytes'] / 1e6:10.2f}{ck}")


if __name__ == "__main__":
    main()
