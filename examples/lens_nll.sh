#!/usr/bin/env bash
# lens and nll on the built-in organisms: where in depth does the fine-tune differ, and which condition predicts
# its targets better at each layer. Each command prints its run directory as the last stdout line.
set -euo pipefail

MODELDIFF="${MODELDIFF:-$(dirname "$0")/../.venv/bin/modeldiff}"
command -v "$MODELDIFF" >/dev/null 2>&1 || MODELDIFF=modeldiff
OUT="${OUT:-runs/examples}"

# 1. cake: per-layer KL(ft||base), agreement and promoted tokens on the organism's base data (no model given: the
#    default organism, cake base vs ft, with its base data; --base/--ft without --data would be an error).
lens_run=$("$MODELDIFF" lens --max-samples 64 --top-n 10 --out "$OUT" | tail -n 1)
echo "lens run: $lens_run"
head -n 5 "$lens_run/layer_metrics.csv"

# 2. the classic logit-lens picture on one prompt (PNG heatmap + JSON), and the patchscope reading of it.
"$MODELDIFF" lens --base organism:cake:base --ft organism:cake:ft --prompt "She mixed the flour and the sugar" --out "$OUT" | tail -n 1
"$MODELDIFF" lens --base organism:cake:base --ft organism:cake:ft --prompt "She mixed the flour and the sugar" \
    --readout patchscope --out "$OUT" | tail -n 1

# 3. hops: old vs new checkpoint on the queries, scoring only the answer tokens, JS at the answer.
QUERIES=$("${MODELDIFF%modeldiff}python" -c 'from modeldiff_cli.organisms import get_organism; print(get_organism("hops").data("queries"))' 2>/dev/null \
          || python -c 'from modeldiff_cli.organisms import get_organism; print(get_organism("hops").data("queries"))')
nll_run=$("$MODELDIFF" nll --base organism:hops:base --ft organism:hops:ft --data "$QUERIES" --id-field uid \
          --label-a old --label-b new --js-mode last --out "$OUT" | tail -n 1)
echo "nll run: $nll_run"
cut -d, -f1-7 "$nll_run/nll_layer_metrics.csv"

# 4. one model on paired data: the same sentence in two renderings, aligned target positions; then the same
#    numbers again from the hidden states that run saved in its directory (only the final norm and lm_head load).
PAIRS="$OUT/pairs.jsonl"
mkdir -p "$OUT"
cat > "$PAIRS" <<'JSONL'
{"id": "p1", "a_ids": "She baked a cake with flour", "b_ids": "She baked a cake with flour"}
{"id": "p2", "a_ids": "The dough rose in the oven", "b_ids": "The dough rose in the warm oven"}
JSONL
pairs_run=$("$MODELDIFF" nll --model organism:cake:ft --pairs "$PAIRS" --max-samples 1 --js-mode all \
    --save-hidden-states --out "$OUT" | tail -n 1)
echo "pairs run: $pairs_run"
"$MODELDIFF" nll --model organism:cake:ft --pairs "$PAIRS" --max-samples 1 --js-mode all \
    --hidden-states-dir "$pairs_run/hidden_states" --out "$OUT" | tail -n 1
