#!/usr/bin/env bash
# tokenlens on the cake organism: list methods, attribute a greedy continuation, diff base vs fine-tuned on a
# given target, run an inseq-only method, then benchmark two models x two methods.
set -euo pipefail
cd "$(dirname "$0")/.."
MD=${MODELDIFF:-$( [ -x .venv/bin/modeldiff ] && echo .venv/bin/modeldiff || echo modeldiff )}
OUT=${OUT:-runs}

"$MD" tokenlens methods

# 1. which prompt tokens drove each of 8 greedy tokens of the fine-tuned model (native batched saliency);
#    --html-out exports a copy of the finished page out of the run directory
RUN=$("$MD" tokenlens attribute --prompt "I baked a" --max-new-tokens 8 --out "$OUT" \
      --html-out "$OUT/tokenlens_view.html" | tail -n 1)
echo "single model: $RUN/prompt_000.html (copy: $OUT/tokenlens_view.html)"

# 2. diff mode: the same continuation attributed by the base and the fine-tuned model (input x gradient)
DIFF=$("$MD" tokenlens attribute --base organism:cake:base --ft organism:cake:ft \
        --prompt "My favourite dessert is" --target " chocolate cake" --method input_x_gradient \
        --out "$OUT" | tail -n 1)
echo "diff (ft - base): $DIFF/prompt_000.html"

# 3. a prompts file, integrated gradients with 16 steps, and a method only inseq offers
printf 'I baked a\nThe recipe calls for\nMy favourite\n' > "$OUT/tokenlens_prompts.txt"
"$MD" tokenlens attribute --prompts "$OUT/tokenlens_prompts.txt" --method integrated_gradients --ig-steps 16 \
      --max-new-tokens 6 --out "$OUT" | tail -n 3
"$MD" tokenlens attribute --prompt "I baked a" --method attention --max-new-tokens 4 --out "$OUT" | tail -n 1

# 4. benchmark: every model x method pair, timings CSV, success rates, errors, system info
BENCH=$("$MD" tokenlens bench --model organism:cake:base --model organism:cake:ft --method saliency --method input_x_gradient \
         --prompts "$OUT/tokenlens_prompts.txt" --max-new-tokens 6 --out "$OUT" | tail -n 1)
cat "$BENCH/summary.txt"
