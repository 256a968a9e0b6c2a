#!/usr/bin/env bash
# Which experts the moe organism's fine-tune (--ft) routes its planted data to, compared with its base, and the mask
# sweep that checks those experts carry the fine-tuning gain.
set -euo pipefail
MD=${MODELDIFF:-$(command -v modeldiff || echo .venv/bin/modeldiff)}
OUT=${OUT:-runs/examples}

# 0. The organism's directory (built once, then cached): data/a.jsonl (everyday text), data/b.jsonl (planted data).
ORG=$($MD organism build moe | tail -n 1)

# 1. Base vs ft on the planted data (the defaults), with the mask sweep: the planted (layer 1, expert 5) comes first.
RUN=$($MD routing --sweep 1,2,4 --sweep-mode keep-topk,replace-topk,deactivate --out "$OUT" | tail -n 1)
head -c 300 "$RUN/points_ft_minus_base.json"; echo
cat "$RUN/mask_sweep.csv" | head -4

# 2. One model, two conditions: does ft route the planted data differently from everyday text?
RUN2=$($MD routing --model organism:moe:ft --data-a "$ORG/data/a.jsonl" --data-b "$ORG/data/b.jsonl" \
        --label-a everyday --label-b planted --sweep 1 --out "$OUT" | tail -n 1)
head -c 300 "$RUN2/points_b_minus_a.json"; echo

# 3. The same sweep ordered by another run's points (e.g. masks found on another model).
$MD routing --sweep 1,2 --mask "$RUN2/points_b_minus_a.json" --out "$OUT" | tail -n 1
