#!/usr/bin/env bash
# A full diff of one model pair on one data file, end to end: info, mine, lens, nll, routing (only when the pair
# is MoE), interpret (when this install has it), then one static HTML report over the runs.
#
#   examples/full_diff.sh BASE FT DATA
#   e.g. examples/full_diff.sh organism:cake:base organism:cake:ft \
#            "$(.venv/bin/modeldiff organism build cake | tail -n 1)/data/base.jsonl"
#        examples/full_diff.sh my_pair/base my_pair/ft prompts.jsonl
# BASE/FT: local model directories, hub ids or organism:NAME:base|ft. interpret reads DATA as one data source
# (the pair's difference on it, no category contrast: docs/interpret.md); on the cake organism it contrasts
# the built-in baking / everyday categories instead.
# Stops at the first failing step with its message; prints the report's index.html last.
# Environment: OUT (default runs/full_diff), MAX_SAMPLES (default 64), MODELDIFF (the CLI), SWEEP (routing's
# mask sweep counts, default 1,2,4; empty: no sweep), INTERPRET_ARGS (more interpret options, e.g.
# "--steps 50 --latents 256"; one with --categories or --data replaces DATA / the cake categories as its categories).
set -euo pipefail

if [ "$#" -ne 3 ]; then
    echo "usage: $0 BASE FT DATA" >&2
    exit 2
fi
BASE="$1"; FT="$2"; DATA="$3"
MODELDIFF="${MODELDIFF:-$(dirname "$0")/../.venv/bin/modeldiff}"
command -v "$MODELDIFF" >/dev/null 2>&1 || MODELDIFF=modeldiff
OUT="${OUT:-runs/full_diff}"
MAX_SAMPLES="${MAX_SAMPLES:-64}"
PAIR=(--base "$BASE" --ft "$FT")
ERR="$(mktemp)"
trap 'rm -f "$ERR"' EXIT

# step NAME ARGS...: run one modeldiff command; on failure print its error and stop; else echo its last line
step() {
    local name="$1"; shift
    echo "== $name" >&2
    local out
    if ! out="$("$MODELDIFF" "$@" 2>"$ERR")"; then
        echo "full_diff: step '$name' failed: $(grep -v '^\s*$' "$ERR" | tail -n 1)" >&2
        exit 1
    fi
    printf '%s\n' "$out" | tail -n 3 >&2
    LAST="$(printf '%s\n' "$out" | tail -n 1)"
}

mkdir -p "$OUT"
# info writes its run directory (info.json: the pair's facts, shown on the report's index) and prints it last
step info info "${PAIR[@]}" --out "$OUT"
MOE="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1] + "/info.json"))["base"].get("moe_routers", 0))' "$LAST")"

step mine mine "${PAIR[@]}" --data "$DATA" --max-samples "$MAX_SAMPLES" --out "$OUT"
step lens lens "${PAIR[@]}" --data "$DATA" --max-samples "$MAX_SAMPLES" --out "$OUT"
step nll nll "${PAIR[@]}" --data "$DATA" --max-samples "$MAX_SAMPLES" --out "$OUT"
if [ "${MOE:-0}" != "0" ]; then
    SWEEP="${SWEEP-1,2,4}"
    step routing routing "${PAIR[@]}" --data "$DATA" --max-samples "$MAX_SAMPLES" ${SWEEP:+--sweep "$SWEEP"} --out "$OUT"
else
    echo "== routing skipped (not a mixture-of-experts pair)" >&2
fi
if "$MODELDIFF" interpret --help >/dev/null 2>&1; then
    # interpret's categories: a --categories/--data in INTERPRET_ARGS; else on the cake organism the categories file
    # shipped with the command; else DATA as one data source
    read -r -a EXTRA <<< "${INTERPRET_ARGS:-}"
    CATS=(--data "$DATA")
    for arg in ${EXTRA[@]+"${EXTRA[@]}"}; do
        case "$arg" in --categories|--categories=*|--prompts|--prompts=*|--data|--data=*) CATS=() ;; esac
    done
    if [ "${#CATS[@]}" -gt 0 ] && [[ "$BASE" == organism:cake* ]]; then
        PY="$(dirname "$MODELDIFF")/python"
        [ -x "$PY" ] || PY=python3
        CATS=(--categories "$("$PY" -c 'import modeldiff_cli, pathlib; print(pathlib.Path(modeldiff_cli.__file__).parent / "commands/interpret/categories_cake.json")')")
    fi
    step interpret interpret "${PAIR[@]}" ${CATS[@]+"${CATS[@]}"} ${EXTRA[@]+"${EXTRA[@]}"} \
        --max-samples "$MAX_SAMPLES" --out "$OUT"
else
    echo "== interpret skipped (not in this install)" >&2
fi
step report report "$OUT" --out "$OUT/report"
echo "$LAST"
