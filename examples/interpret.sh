#!/usr/bin/env bash
# modeldiff interpret on the cake organism (built-in baking / everyday categories), then on the direction organism.
# The crosscoder needs the interpret extra: pip install "modeldiff[interpret]" (eai-sparsify), or pass --no-crosscoder.
set -euo pipefail
modeldiff interpret --out runs --features 4
ORG=$(python -c "from modeldiff_cli.organisms import get_organism as g; print(g('direction').path)")
modeldiff interpret --base organism:direction:base --ft organism:direction:ft \
  --data "$ORG/data/baking.jsonl" --data "$ORG/data/everyday.jsonl" --crosscoder-layers 1 --out runs
