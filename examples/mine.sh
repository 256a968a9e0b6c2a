#!/usr/bin/env bash
# `modeldiff mine` on the cake organism: mine promoted tokens, then build the agent overview of the run.
set -euo pipefail
MD=${MODELDIFF:-$(command -v modeldiff || echo .venv/bin/modeldiff)}
OUT=${OUT:-runs/examples}

"$MD" organism build cake
# base corpus of the organism (default data), small K so the planted baking words stand out
RUN=$("$MD" mine --top-k 20 --nmf-topics 3 --likelihood-ratios --out "$OUT" | tail -n 1)
echo "mine run: $RUN"
# the same data at the last layer through the logit lens, one model at a time, punctuation left out
"$MD" mine --top-k 20 --readout logit-lens --layers -1 --two-pass --orderings top-k-occurring \
  --drop-punctuation --out "$OUT" | tail -n 1
# an anonymised, budgeted payload for an LLM agent: stdout is the JSON alone (pipe it to jq or an agent); the file
# it was also written to (beside the run directory) is named on stderr
"$MD" mine overview "$RUN" --token-budget 60 | python3 -c 'import json, sys; print(sorted(json.load(sys.stdin)))'
