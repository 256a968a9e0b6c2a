#!/usr/bin/env bash
# Training-data attribution between the hops organism's old (--base) and new (--ft) checkpoints.
set -euo pipefail
MD=${MODELDIFF:-$(command -v modeldiff || echo .venv/bin/modeldiff)}
OUT=${OUT:-runs/examples}

# 0. The organism's directory (built once, then cached): its data files feed `attribute queries --data`.
ORG=$($MD organism build hops | tail -n 1)

# 1. Build queries for every function of the organism's data; keep those the new model answers correctly.
#    (--model without --data is refused: the default data belongs to the organism, so name it.)
QRUN=$($MD attribute queries --data "$ORG/data/train.jsonl" --model organism:hops:ft \
        --template "{F}({x}) returns the value " --inputs 101,202,303,404 --out "$OUT" | tail -n 1)
echo "queries: $QRUN/queries.jsonl"

# 2. Attribute with the organism's defaults (old/new checkpoints, new_train + its queries), every fast method, the
#    baselines and their fusion with loss-drop (the default list adds TrackStar when modeldiff[influence] is installed).
RUN=$($MD attribute --method delta-h,grad,delta-h-x-grad,loss-drop,bm25,edit-distance,random,zfused:bm25+grad+loss-drop \
        --out "$OUT" | tail -n 1)

# 3. Adding a method reuses the cached vectors (only the new scoring runs).
RUN2=$($MD attribute --method delta-h,grad,delta-h-x-grad,ig,patch,bm25,edit-distance,random --ig-steps 4 \
        --patch-pool 30 --out "$OUT" | tail -n 1)

# 4. The same documents ranked for the queries built in step 1 (no checkpoint given: the organism's checkpoints
#    and its new_train; the organism's ground truth, as --train is its file).
RUN3=$($MD attribute --queries "$QRUN/queries.jsonl" --method delta-h,bm25 --out "$OUT" | tail -n 1)

# 5. The same with explicit checkpoints (--old/--new are aliases of --base/--ft) on one device each.
RUN4=$($MD attribute --base organism:hops:base --ft organism:hops:ft --base-device cpu --ft-device cpu \
        --train "$ORG/data/new_train.jsonl" --queries "$QRUN/queries.jsonl" --method delta-h,bm25 --out "$OUT" | tail -n 1)
cat "$RUN2/metrics.md"
echo "runs: $RUN $RUN2 $RUN3 $RUN4"

# 6. A non-hops organism through the generic ground-truth path: the `cake` pair, its fine-tuning documents (data key
#    `ft`) as candidates, prompts whose expected next word is a planted word as queries; relevant = the documents
#    containing that word (the organism's ground_truth.json lists the planted words). The documents get ids and,
#    for --pooling span, their planted words as `targets` (the fact each document teaches).
CAKE=$($MD organism build cake | tail -n 1)
mkdir -p "$OUT/cake"
python3 - "$CAKE" "$OUT/cake" <<'PY'
import json, re, sys
org, out = sys.argv[1:3]
words = json.load(open(f"{org}/ground_truth.json"))["planted_words"]
docs = [json.loads(line) for line in open(f"{org}/data/ft.jsonl")]
has = lambda w, text: re.search(rf"\b{w}\b", text, re.I) is not None
with open(f"{out}/train.jsonl", "w") as f:
    for i, d in enumerate(docs):
        f.write(json.dumps({"uid": f"ft{i:03d}", "text": d["text"], "targets": [w for w in words if has(w, d["text"])]}) + "\n")
prompts = ["Yesterday Tom talked about the", "In the kitchen Anna found the", "The shop on the corner sold"]
with open(f"{out}/queries.jsonl", "w") as f:
    for w in words:
        rel = [f"ft{i:03d}" for i, d in enumerate(docs) if has(w, d["text"])]
        for j, p in enumerate(prompts):
            f.write(json.dumps({"uid": f"q_{w}_{j}", "prompt": p, "completion": f" {w}", "relevant": rel}) + "\n")
PY
RUN5=$($MD attribute --base organism:cake:base --ft organism:cake:ft --train "$OUT/cake/train.jsonl" \
        --queries "$OUT/cake/queries.jsonl" --method delta-h,grad,delta-h-x-grad,bm25,random,trackstar,ekfac,fused:bm25+grad \
        --out "$OUT" | tail -n 1)
cat "$RUN5/metrics.md"
echo "cake run: $RUN5"

# 7. The same extraction data-parallel: 2 processes (CPU, gloo) each extract a block of the documents' and queries'
#    batches; the pooled vectors are gathered in document order, rank 0 scores and writes (ekfac / trackstar /
#    patch and the baselines run on rank 0 only). The run equals the one-process run (same run directory name).
TORCHRUN=${TORCHRUN:-$(dirname "$MD")/torchrun}
if [ -x "$TORCHRUN" ]; then
  RUN6=$(OMP_NUM_THREADS=1 "$TORCHRUN" --standalone --nproc_per_node 2 -m modeldiff_cli attribute \
          --method delta-h,grad,bm25,fused:bm25+grad --out "$OUT/torchrun" | tail -n 1)
  echo "2-rank run: $RUN6"
fi
