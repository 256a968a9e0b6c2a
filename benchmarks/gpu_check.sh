#!/usr/bin/env bash
# The one prepared check for a lent GPU (issue 21). From the repo root, on the device machine, with .whl carried
# (made here by benchmarks/gpu_wheels.sh):
#
#   bash benchmarks/gpu_check.sh            # run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
#   bash benchmarks/gpu_check.sh --dry-run  # here, without a GPU: every step on --device cpu at tiny shapes
#
# Steps, each time-boxed with `timeout` (on the GPU: 30 + 140 + 130 + 170 s, so the whole script ends inside
# 8 minutes even when every step runs out its box); a failed step does not stop the later ones:
#   0. install the carried wheels into /tmp/site (PYTHONPATH=/tmp/site:$PWD), nvidia-smi -L, torch's view of the GPU
#   a. benchmarks/mine_process.py: mine as a whole process vs a bare two-forward script, llama-0.4b, bf16,
#      2048 texts x 256 tokens, batch 32
#   b. benchmarks/tokenlens_speed.py: native (batch 16) vs inseq (batch 1), SmolLM-135M shape, fp32,
#      16 prompts x 16 new tokens, saliency and integrated gradients (16 steps)
#   c. benchmarks/device_parity.py --device cuda: every number of every output file of each command, cpu vs cuda
# Everything is teed to $OUT/gpu_check.log (OUT defaults to /tmp/gpu_check); $OUT also gets device_parity.json
# and tokenlens_speed.json. A short summary table is printed last; the exit code is 0 only if every step passed.
set -u -o pipefail
cd "$(dirname "$0")/.."

DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "error: unknown argument ${1}: expected --dry-run or nothing" >&2; exit 2 ;;
esac
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
LOG=$OUT/gpu_check.log
: > "$LOG"
export PYTHONUNBUFFERED=1
T0=$(date +%s)
declare -a NAMES RCS SECS LIMITS

if [[ $DRY == 1 ]]; then
  PY=${PY:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3 )}
  DEV=cpu
else
  PY=${PY:-python3}
  DEV=cuda
fi

say() { echo "$*" | tee -a "$LOG"; }

# step NAME LIMIT_S CMD...: run CMD under `timeout`, tee its output to the log, record rc and seconds
step() {
  local name=$1 limit=$2; shift 2
  say ""
  say "=== $name (limit ${limit} s): $*"
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  local took=$(( SECONDS - start ))
  say "=== $name: exit $rc after ${took} s"
  NAMES+=("$name"); RCS+=("$rc"); SECS+=("$took"); LIMITS+=("$limit")
}

setup() {
  if [[ $DRY == 1 ]]; then
    echo "dry run: no wheels installed (this environment has them), python $PY, device cpu"
  else
    if compgen -G ".whl/*.whl" > /dev/null; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || return 1
    else
      echo "no .whl/*.whl: carry .whl (made by benchmarks/gpu_wheels.sh)"; return 1
    fi
  fi
  nvidia-smi -L || [[ $DRY == 1 ]] || return 1
  "$PY" - <<'EOF' || return 1
import sys, torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda available", torch.cuda.is_available(),
      "device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
import transformers, typer
print("transformers", transformers.__version__, "typer", getattr(typer, "__version__", "?"))
for mod in ("inseq", "captum", "torchnmf", "rank_bm25", "sparsify", "datasets"):
    try:
        m = __import__(mod)
        print(f"  {mod} {getattr(m, '__version__', '?')}")
    except Exception as err:  # noqa: BLE001 - report and go on: the steps that need it will fail on their own
        print(f"  {mod}: cannot import ({type(err).__name__}: {err})")
EOF
}

if [[ $DRY == 0 ]]; then
  export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
  if [[ -d .whl/organisms ]]; then  # carried built organisms: the device does not spend its minutes building them
    rm -rf /tmp/organisms && cp -r .whl/organisms /tmp/organisms && export MODELDIFF_ORGANISMS_DIR=/tmp/organisms
  fi
fi
export -f setup
export DRY PY
step setup 30 bash -c setup
rm -f /tmp/gpu_check_parity/device_parity.json

if [[ $DRY == 1 ]]; then
  step mine_process 300 "$PY" benchmarks/mine_process.py --device cpu --dtype float32 --shape tiny --texts 32 \
    --tokens 32 --batch-size 8 --repeats 1
  step tokenlens_speed 300 "$PY" benchmarks/tokenlens_speed.py --device cpu --dtype float32 --shape tiny --prompts 2 \
    --new-tokens 4 --batch-size 2 --methods saliency,integrated_gradients --ig-steps 4 --repeats 1 \
    --json "$OUT/tokenlens_speed.json"
  step device_parity 900 "$PY" benchmarks/device_parity.py --device cpu --quick --out /tmp/gpu_check_parity
else
  step mine_process 140 "$PY" benchmarks/mine_process.py --device cuda --dtype bfloat16 --shape llama-0.4b \
    --texts 2048 --tokens 256 --batch-size 32
  step tokenlens_speed 130 "$PY" benchmarks/tokenlens_speed.py --device cuda --dtype float32 --shape smollm-135m \
    --prompts 16 --new-tokens 16 --batch-size 16 --methods saliency,integrated_gradients --ig-steps 16 --repeats 2 \
    --json "$OUT/tokenlens_speed.json"
  step device_parity 170 "$PY" benchmarks/device_parity.py --device cuda --jobs 7 --out /tmp/gpu_check_parity
fi
cp /tmp/gpu_check_parity/device_parity.json "$OUT/" 2>/dev/null || true

say ""
say "=== summary ($([[ $DRY == 1 ]] && echo "dry run, cpu" || echo "$DEV")), $(( $(date +%s) - T0 )) s in all"
{
  printf "%-16s %7s %7s %5s  %s\n" step seconds limit exit result
  for i in "${!NAMES[@]}"; do
    rc=${RCS[$i]}
    if [[ $rc == 0 ]]; then res=PASS; elif [[ $rc == 124 || $rc == 137 ]]; then res=TIMEOUT; else res=FAIL; fi
    printf "%-16s %7s %7s %5s  %s\n" "${NAMES[$i]}" "${SECS[$i]}" "${LIMITS[$i]}" "$rc" "$res"
  done
} | tee -a "$LOG"
all=0
[[ "${RCS[*]}" =~ ^(0 ?)+$ ]] || all=1
if [[ -f "$OUT/device_parity.json" ]]; then
  "$PY" - "$OUT/device_parity.json" <<'EOF' 2>&1 | tee -a "$LOG"
import json, sys
r = json.load(open(sys.argv[1]))
for c in r["commands"]:
    print(f"  parity {c['command']:<10} {'PASS' if c['ok'] else 'FAIL'}  max abs {c['max_abs']}  max count {c['max_count']}"
          f"  ({c['files_compared']} files, {c['numbers'] + c['counts']} numbers)")
if r.get("pending"):
    print(f"  parity not finished (time box): {', '.join(r['pending'])}")
EOF
fi
say "log: $LOG"
exit $all
