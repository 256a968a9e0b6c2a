#!/usr/bin/env bash
# Prepare, HERE (a machine with PyPI, no GPU needed), what benchmarks/gpu_check.sh needs on the lent GPU machine,
# whose image has torch / transformers / numpy / pandas / pyarrow / typer ... but not these packages:
#
#   inseq captum typeguard==2.13.3 torchnmf rank-bm25 eai-sparsify    (tokenlens' inseq side, IG, mine's NMF,
#                                                                      attribute's bm25, interpret's crosscoder)
#   datasets dill multiprocess             imported by inseq and by sparsify at import time (checked by blocking
#                                          them: `import inseq` / `from sparsify import SparseCoder` fail without)
#   simple-parsing docstring-parser natsort schedulefree               imported by sparsify
#
# inseq's other declared needs (authlib, cryptography, marshmallow, tornado) are not imported by what the check
# runs (tokenlens --engine inseq ran here with them blocked), so they stay behind. Versions: those installed in
# .venv (pip freeze). Wheels for CPython 3.12, manylinux x86_64 (the device image's python3), --no-deps, one
# version each, into .whl/ (git-ignored through .git/info/exclude; never committed).
#
# Also copies the built organisms that the parity check uses (cake, moe, hops; ~5 MB) into .whl/organisms/, so
# the device does not spend its minutes building them (gpu_check.sh uses them when present).
#
# Usage: bash benchmarks/gpu_wheels.sh        then: run(command="bash benchmarks/gpu_check.sh", carry=[".whl"])
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p .git/info
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude

PKGS=(inseq captum typeguard torchnmf rank-bm25 eai-sparsify datasets dill multiprocess simple-parsing
      docstring-parser natsort schedulefree)
norm() { echo "$1" | tr 'A-Z_.' 'a-z--'; }
freeze=$("$PY" -m pip freeze 2>/dev/null)
specs=()
for p in "${PKGS[@]}"; do
  v=$(echo "$freeze" | awk -F'==' -v want="$(norm "$p")" \
        'NF == 2 { n = tolower($1); gsub(/[_.]/, "-", n); if (n == want) { print $2; exit } }')
  if [[ -z "$v" ]]; then echo "error: $p is not installed in $PY's environment (pip freeze)" >&2; exit 2; fi
  specs+=("$p==$v")
done
echo "wheels: ${specs[*]}"

mkdir -p .whl
rm -f .whl/*.whl   # one version of each: two stop the whole install there
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${specs[@]}"

rm -rf .whl/organisms
mkdir -p .whl/organisms
for org in cake moe hops; do
  dir=$("$PY" -m modeldiff_cli organism build "$org" 2>/dev/null | tail -1)
  cp -r "$dir" .whl/organisms/
done

ls -l .whl/*.whl | awk '{printf "  %8.1f KiB  %s\n", $5 / 1024, $9}'
echo "organisms: $(ls .whl/organisms | tr '\n' ' ')"
echo ".whl total: $(du -sh .whl | cut -f1)"
tree=$(git ls-files -co --exclude-standard -z | du -c --apparent-size -k --files0-from=- 2>/dev/null | tail -1 | cut -f1)
echo "working tree that travels (tracked + untracked-not-ignored): ${tree} KiB; with .whl: $(( tree + $(du -sk --apparent-size .whl | cut -f1) )) KiB (limit 65536 KiB)"
